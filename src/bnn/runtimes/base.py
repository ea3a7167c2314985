"""What every runtime is: the `Runtime` protocol and its `Outputs`.

A leaf module: runtimes import it, it imports no runtime.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

__all__ = ["Outputs", "Runtime"]


class Outputs(NamedTuple):
    """Result of running a batch: classes (N,) int32, scores (N, C) int32, bits (N, C) bool."""

    classes: np.ndarray
    scores: np.ndarray
    bits: np.ndarray


class Runtime(Protocol):
    """A `ParamSet` prepared for one way of computing the network.

    ``run`` takes (N, 784) C-contiguous uint8 images and a decision rule
    (None: the set's own) and returns `Outputs`; with ``scores=False`` a
    runtime may skip the scores and bits. ``chunk`` is the largest batch one
    call should get (about 0.1 s of work, so that Ctrl-C is served quickly).
    """

    name: str
    kernel: str
    chunk: int

    def run(self, images: np.ndarray, rule: str | None = None, *, scores: bool = True) -> Outputs: ...

    def close(self) -> None: ...
