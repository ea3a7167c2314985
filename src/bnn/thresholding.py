"""A trained layer's float function read as integer thresholds, exactly.

("Folding" in this project means what it means in FINN: a layer's PE x
SIMD layout on the hardware, `bnn.formats.pynq`. This is the other thing
BNN papers call folding: BatchNorm and activation into thresholds.)

Training export (`bnn.train`) and QONNX import (`bnn.formats.qonnx`) both
evaluate the float function (BatchNorm and the activation's quantizer) at
every reachable dot product and read the thresholds off the result, so the
integer network decides exactly as the float one did at those points: no
algebra, no rounding. This module does the reading.
"""

from __future__ import annotations

import numpy as np

from .errors import BnnError

__all__ = ["fold_steps"]


def fold_steps(above: list[np.ndarray], d: np.ndarray, *, where: str = "layer") -> tuple[np.ndarray, np.ndarray]:
    """(thresholds (MH, S) int64 in dot-product units, falling (MH,) bool) from S steps of an activation.

    above[k][n, j]: is neuron n's output past step k when its dot product is
    d[j]; `d` ascends and is symmetric about 0 (every reachable dot product),
    so a neuron whose output falls as d rises is flipped (d -> -d, its weight
    row negated) by reversing its row. Threshold k is then the last d whose
    output is not past step k (d[0] - 1 when every d is). BnnError names
    `where` when a neuron's output is not monotone.
    """
    falling = np.array([a[:, 0].astype(int) > a[:, -1].astype(int) for a in above]).any(axis=0)
    thresholds = np.empty((above[0].shape[0], len(above)), dtype=np.int64)
    for k, steps in enumerate(above):
        steps = np.where(falling[:, None], steps[:, ::-1], steps)
        if not (np.diff(steps.astype(np.int8), axis=1) >= 0).all():
            raise BnnError(f"{where}: the output is not monotone in the dot product: cannot fold it into thresholds")
        below = (~steps).sum(axis=1)
        thresholds[:, k] = np.where(below > 0, d[np.maximum(below - 1, 0)], d[0] - 1)
    return thresholds, falling
