"""The pure-numpy runtime (RUNTIME_SW): the executable specification.

Every faster runtime must give exactly its accumulators, output bits and
classes. It follows the spec literally in +-1 arithmetic (see `bnn.bits`):
each layer is one matrix product of +-1 (or -1/0/+1, or 2-bit) weights and
values, done in float32, which is exact here because every partial sum is
an integer below 2**24; a convolution is the same product over every
window of its input (`bnn.bits.windows`), a pool the largest of 2x2.

    >>> from bnn.params import read_params
    >>> from bnn.runtimes.reference import ReferenceRuntime
    >>> rt = ReferenceRuntime(read_params("params/mnist/lfcW1A1"))
    >>> out = rt.run(images)        # images: (N, 784) uint8
    >>> out.classes, out.scores, out.bits
"""

from __future__ import annotations

import numpy as np

from ..bits import accumulators, activate, cnv_accumulators, cnv_pixel_values, decide, input_values, max_pool, windows
from ..paramset import ParamSet
from .base import Outputs

__all__ = ["ReferenceRuntime", "forward"]

# Images per matrix product: bounds the working set (about 4 KiB per image per layer; a CNV image's
# windows take about 2 MiB, hence its smaller batches).
BATCH = 2048
CNV_BATCH = 64


def forward(params: ParamSet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run `params` on (N, 784) (LFC) or (N, 3072) (CNV, HWC) uint8 images; return the last layer's
    (N, C) int32 accumulators and bool bits."""
    return ReferenceRuntime(params).forward(images)


class ReferenceRuntime:
    """numpy implementation of the network; `run` works in batches of `BATCH` images."""

    name = "reference"
    kernel = "numpy"

    def __init__(self, params: ParamSet):
        params.validate()
        self.params = params
        # Weight values (+-1, or 2-bit), transposed for x @ W.
        self._weights = [layer.weight_values().T.astype(np.float32) for layer in params.layers]
        self._thresholds = [layer.effective_thresholds() for layer in params.layers]
        self.convolutional = params.layers[0].conv is not None
        self.chunk = CNV_BATCH if self.convolutional else BATCH

    def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_classes = len(self.params.classes)
        scores = np.empty((images.shape[0], n_classes), dtype=np.int32)
        bits = np.empty((images.shape[0], n_classes), dtype=bool)
        for start in range(0, images.shape[0], self.chunk):
            part = slice(start, start + self.chunk)
            scores[part], bits[part] = self._forward_batch(images[part])
        return scores, bits

    def trace(self, images: np.ndarray):
        """Yield per layer (acc, values, bits): its (N, MH) int32 accumulators, the values it passes on
        (+-1, or -1/0/+1 for 3-level activations) and its first threshold's bits (see `bnn.bits`).
        A convolution's are per output pixel, (N, H, W, MH), its values after the pool."""
        if self.convolutional:
            yield from self._trace_cnv(images)
            return
        x = input_values(images, self.params.layers[0].mw, self.params.pixel_thresholds).astype(np.float32)
        for weights, thresholds in zip(self._weights, self._thresholds):
            acc = accumulators((x @ weights).astype(np.int32), weights.shape[0], self.params.activation_bits)
            values, bits = activate(acc, thresholds)
            yield acc, values, bits
            x = values.astype(np.float32)

    def _trace_cnv(self, images: np.ndarray):
        layers = self.params.layers
        x = cnv_pixel_values(images).reshape(len(images), *self.params.image_shape).astype(np.float32)
        for i, (layer, weights, thresholds) in enumerate(zip(layers, self._weights, self._thresholds)):
            conv = layer.conv
            if conv is not None:
                dot = (windows(x, conv.kernel) @ weights).astype(np.int32)  # (N, oh, ow, MH)
            else:
                dot = (x.reshape(len(x), layer.mw) @ weights).astype(np.int32)  # feature maps flattened HWC
            acc = cnv_accumulators(dot, i, len(layers), layer.mw, self.params.activation_bits)
            if i == len(layers) - 1:  # no activation: the accumulators are the scores
                acc = acc.astype(np.int32)
                yield acc, acc, acc > 0
                return
            values, bits = activate(acc, thresholds)
            if conv is not None and conv.pool:
                values = max_pool(values)
            yield acc, values, bits
            x = values.astype(np.float32)

    def _forward_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        *_, (acc, _, bits) = self.trace(images)
        n_classes = len(self.params.classes)
        return acc[:, :n_classes], bits[:, :n_classes]

    def run(self, images: np.ndarray, rule: str | None = None, *, scores: bool = True) -> Outputs:
        """Classes, accumulators and bits for (N, 784) or (N, 3072) uint8 images (`scores` is accepted for
        symmetry with the native runtime: the reference computes them anyway)."""
        scores, bits = self.forward(images)
        return Outputs(decide(scores, bits, rule or self.params.decision), scores, bits)

    def close(self) -> None:
        self._weights = []
