"""Scores of predictions against labels: the numbers the CLI prints and the plots draw."""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix"]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, dtype=np.intp), np.asarray(predicted, dtype=np.intp)), 1)
    return cm
