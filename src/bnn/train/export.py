"""Trained model <-> parameter set, exactly: BatchNorm and activation folded into integer thresholds.

Export evaluates each trained float BatchNorm at every reachable integer
dot product, so the thresholds reproduce the model's own float32 decisions
exactly (no algebra, no rounding); a neuron whose output falls as its sum
rises gets its weight row flipped. Import is the inverse, for fine-tuning.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..bits import accumulator_thresholds, dot_thresholds, last_layer_thresholds
from ..paramset import PIXELS, Layer, ParamSet, network_with_bits
from ..thresholding import fold_steps
from .model import LFC

__all__ = ["export_params", "import_params"]


def _output_bits(norm, d_values, boundary: float):
    """For each neuron (rows) and candidate dot value (columns): is the normalised value above `boundary`?"""
    with torch.no_grad():
        y = norm(d_values)  # eval-mode BatchNorm, the same float32 arithmetic as inference
    return (y > boundary).t().numpy()


def _fold_layer(norm, mw: int, activation_bits: int):
    """Integer thresholds in hardware accumulator units and the rows to flip, for one hidden layer.

    d ranges over every integer dot product -mw..mw. For a neuron whose
    output rises with d, T is the largest accumulator whose output is 0;
    a falling one is flipped (d -> -d) first.
    """
    norm = copy.deepcopy(norm).eval()
    d = torch.arange(-mw, mw + 1, dtype=torch.float32)
    grid = d.unsqueeze(1).expand(-1, norm.num_features).contiguous()
    boundaries = (0.0,) if activation_bits == 1 else (-0.5, 0.5)
    outs = [_output_bits(norm, grid, b) for b in boundaries]  # (neurons, 2mw+1)
    t_dot, falling = fold_steps(outs, d.numpy().astype(np.int64), where="a BatchNorm")
    thresholds = accumulator_thresholds(t_dot, mw, activation_bits)
    return np.clip(thresholds, -32768, 32767), falling


def export_params(
    model, classes: list[str], *, metadata: dict | None = None, template: ParamSet | None = None
) -> ParamSet:
    """The `ParamSet` that computes exactly what `model` computes in eval mode.

    `template` (a set this model was imported from) supplies what training
    does not change: the last layer's padding rows and output thresholds.
    """
    bits = model.activation_bits
    spec = network_with_bits(bits)
    network = spec.name
    layers = []
    with torch.no_grad():
        binary = [(model.weights[i] >= 0).numpy().astype(np.uint8) for i in range(4)]
    pad = (model.pad_weights > 0).numpy().astype(np.uint8)
    binary[0] = np.concatenate([binary[0], pad], axis=1)
    for i in range(3):
        w = binary[i]
        mw = w.shape[1]
        thresholds, flip = _fold_layer(model.norms[i], mw, bits)
        w = np.where(flip[:, None], 1 - w, w).astype(np.uint8)
        layers.append(Layer(w, thresholds, pe=spec.pe[i], simd=spec.simd[i]))
    n_classes, mw = binary[3].shape
    pe = spec.pe[3]
    mh = max(64, -(-n_classes // pe) * pe)
    last_w = np.zeros((mh, mw), dtype=np.uint8)
    last_w[:n_classes] = binary[3]
    last_t = last_layer_thresholds(mh, mw, bits)
    if template is not None and template.layers[3].mh == mh:
        last_w[n_classes:] = template.layers[3].weights[n_classes:]
        last_t = template.layers[3].thresholds.copy()
    layers.append(Layer(last_w, last_t, pe=pe, simd=spec.simd[3]))
    decision = template.decision if template is not None else "argmax"
    params = ParamSet(network, layers, list(classes), decision=decision, metadata=dict(metadata or {}))
    if template is not None:
        params.classes_newline = template.classes_newline
        params.classes_trailing_newlines = template.classes_trailing_newlines
    params.validate()
    return params


def import_params(params: ParamSet):
    """A `LFC` model that computes what `params` computes (to fine-tune an original set).

    Exporting it again without training gives the same parameter files.
    Each hidden layer's thresholds become a BatchNorm whose steps fall
    half-way between the integer accumulators that the thresholds separate.
    """
    params.validate()
    bits = params.activation_bits
    n_classes = len(params.classes)
    hidden = params.layers[0].mh
    model = LFC(bits, n_classes, hidden=hidden, pad_columns=params.layers[0].mw - PIXELS)
    with torch.no_grad():
        w0 = params.layers[0].weights.astype(np.float32) * 2 - 1
        model.weights[0].copy_(torch.from_numpy(w0[:, :PIXELS]))
        model.pad_weights.copy_(torch.from_numpy(w0[:, PIXELS:]))
        for i in (1, 2):
            model.weights[i].copy_(torch.from_numpy(params.layers[i].weights.astype(np.float32) * 2 - 1))
        model.weights[3].copy_(torch.from_numpy(params.layers[3].weights[:n_classes].astype(np.float32) * 2 - 1))
        for i in range(3):
            layer, norm = params.layers[i], model.norms[i]
            t = layer.effective_thresholds().astype(np.float64)
            t_dot = dot_thresholds(t, layer.mw, bits)
            if bits == 1:
                scale, shift = np.ones(len(t_dot)), -(t_dot[:, 0] + 0.5)
            else:
                lo, hi = np.minimum(t_dot[:, 0], t_dot[:, 1]), np.maximum(t_dot[:, 0], t_dot[:, 1])
                # Steps at lo + 0.5 -> -0.5 and hi + 0.5 -> +0.5; equal thresholds: one steep step.
                scale = np.where(hi > lo, 1.0 / np.maximum(hi - lo, 1), 1000.0)
                shift = -0.5 - scale * (lo + 0.5)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
            norm.weight.copy_(torch.from_numpy(scale.astype(np.float32)))
            norm.bias.copy_(torch.from_numpy(shift.astype(np.float32)))
    model.template = params
    return model
