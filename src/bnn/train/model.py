"""The LFC network as PyTorch trains it: binary weights, the hardware's activations, straight-through gradients."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..bits import pixel_values
from ..paramset import PIXELS

__all__ = ["LFC", "levels", "pixels_to_inputs"]


def pixels_to_inputs(images: np.ndarray):
    """(N, 28, 28) or (N, 784) uint8 -> (N, 784) float32 tensor of +-1 (pixel >= 128 is +1, `bnn.bits`)."""
    flat = np.asarray(images).reshape(len(images), PIXELS)
    return torch.from_numpy(pixel_values(flat).astype(np.float32))


def levels(y, activation_bits: int):
    """The hardware's activation of a normalised value y: sign (y > 0) or 3 levels (steps at -0.5, +0.5)."""
    if activation_bits == 1:
        return torch.where(y > 0, 1.0, -1.0).to(y.dtype)
    return ((y > -0.5).to(y.dtype) + (y > 0.5).to(y.dtype)) - 1.0


class _QuantSTE(torch.autograd.Function):
    """Forward: the hardware's activation; backward: straight through where |y| <= 1."""

    @staticmethod
    def forward(ctx, y, activation_bits):
        ctx.save_for_backward(y)
        return levels(y, activation_bits)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (y.abs() <= 1).to(grad.dtype), None


class _SignSTE(torch.autograd.Function):
    """Weights: forward sign with sign(0) = +1 (bit 1), backward straight through."""

    @staticmethod
    def forward(ctx, w):
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class LFC(nn.Module):
    """The LFC network as trained: 784 -> hidden x3 -> classes, binary weights.

    `forward` takes +-1 pixel bits (N, 784) float32 and returns logits
    (N, classes) = scale * last-layer dot products.
    """

    def __init__(self, activation_bits: int, n_classes: int, hidden: int = 1024, pad_columns: int = 48):
        super().__init__()
        self.activation_bits = activation_bits
        sizes = [PIXELS, hidden, hidden, hidden, n_classes]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(o, i).uniform_(-1, 1)) for i, o in zip(sizes[:-1], sizes[1:])]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden) for _ in range(3)])
        # Layer 0's padding columns: fixed +-1 weights against a constant -1 input.
        self.register_buffer("pad_weights", -torch.ones(hidden, pad_columns))
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(hidden)))

    def binary_weights(self, index: int):
        return _SignSTE.apply(self.weights[index])

    def dots(self, x):
        """Yield each layer's integer dot products (as float32), running the network forward."""
        d = x @ self.binary_weights(0).t() - self.pad_weights.sum(dim=1)
        for i, norm in enumerate(self.norms):
            yield d
            x = _QuantSTE.apply(norm(d), self.activation_bits)
            d = x @ self.binary_weights(i + 1).t()
        yield d

    def forward(self, x):
        *_, d = self.dots(x)
        return d * self.log_scale.exp()

    def clip_(self) -> None:
        """Keep latent weights in [-1, 1] (beyond, the STE gradient would never flip them back)."""
        with torch.no_grad():
            for w in self.weights:
                w.clamp_(-1, 1)
