"""Figures: time per image by runtime (log scale), confusion matrix, misclassified digits, training curves.

Needs matplotlib (``pip install 'bitexact-bnn[plot]'``). Each function writes a PNG
(atomically) and returns its path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .errors import MissingExtraError
from .original import ORIGINAL

__all__ = ["confusion_matrix", "misclassified_grid", "time_per_image", "training_curves"]


def _figure(**kwargs):
    """A matplotlib Figure that touches no global pyplot state (no backend switch)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("plots need matplotlib: pip install 'bitexact-bnn[plot]'") from None
    return Figure(**kwargs)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def time_per_image(ours: dict[tuple[str, str], float], path, *, include_original: bool = True) -> Path:
    """Bar chart, log scale: us per image for each (network, runtime), beside the original's figures."""
    data = {(f.network, f.runtime): f.usec_per_image for f in ORIGINAL} if include_original else {}
    data.update(ours)
    networks = sorted({n for n, _ in data})
    runtimes = list(dict.fromkeys(r for _, r in data))
    fig = _figure(figsize=(8, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(runtimes)
    x = np.arange(len(networks))
    for i, runtime in enumerate(runtimes):
        values = [data.get((n, runtime), np.nan) for n in networks]
        bars = ax.bar(x + (i - (len(runtimes) - 1) / 2) * width, values, width, label=runtime)
        for bar, v in zip(bars, values):
            if np.isfinite(v):
                ax.annotate(f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, networks)
    ax.set_yscale("log")
    ax.set_ylabel("time per image (us, log scale)")
    ax.set_title("LFC inference time per image")
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix(cm: np.ndarray, classes: list[str], path, *, title: str = "") -> Path:
    """Draw a confusion matrix (`bnn.metrics.confusion_matrix`: rows true, columns predicted), counts in the cells."""
    n = len(classes)
    fig = _figure(figsize=(0.5 * n + 2.5, 0.5 * n + 2))
    ax = fig.subplots()
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 3 else "black",
                )
    ax.set_xticks(range(n), classes)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {np.trace(cm) / max(cm.sum(), 1):.2%}")
    return _save(fig, path)


def misclassified_grid(images: np.ndarray, labels, predicted, classes, path, *, limit: int = 40) -> Path:
    """A grid of the first `limit` misclassified digits, each titled 'true -> predicted'.

    `images` may be a memory map: only the digits shown are read.
    """
    all_wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predicted))
    wrong = all_wrong[:limit]
    cols = 10
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure(figsize=(cols * 1.1, rows * 1.3))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"{classes[labels[i]]}->{classes[predicted[i]]}", fontsize=8)
    shown = f" (first {len(wrong)} shown)" if len(wrong) < len(all_wrong) else ""
    fig.suptitle(f"{len(all_wrong)} misclassified digits{shown}")
    return _save(fig, path)


def training_curves(history: list[dict], path, *, title: str = "training") -> Path:
    """Loss and train/test accuracy per epoch."""
    epochs = [h["epoch"] for h in history]
    fig = _figure(figsize=(10, 3.8))
    a, b = fig.subplots(1, 2)
    losses = [h["loss"] for h in history]
    a.plot(epochs, losses)
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    if min(losses) > 0:  # an epoch stopped before its first step records 0
        a.set_yscale("log")
    b.plot(epochs, [100 * h["train_accuracy"] for h in history], label="train")
    b.plot(epochs, [100 * h["test_accuracy"] for h in history], label="test")
    if any(h.get("validation_accuracy") is not None for h in history):
        b.plot(epochs, [100 * (h.get("validation_accuracy") or np.nan) for h in history], label="validation")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy (%)")
    # Zoom on the last half of training, where the curves differ; any dataset's range, not MNIST's.
    tail = [
        100 * h[k]
        for h in history[len(history) // 2 :]
        for k in ("train_accuracy", "test_accuracy")
        if h.get(k) is not None
    ]
    if tail:
        b.set_ylim(max(0.0, min(tail) - 1.0), min(100.0, max(tail) + 0.5))
    b.legend()
    fig.suptitle(title)
    return _save(fig, path)
