"""Train LFC W1A1 / W1A2 with PyTorch and export exact BNN-PYNQ parameter folders.

Needs the ``train`` extra (``pip install torch==2.13.0 'bitexact-bnn[train]'``);
importing it without torch raises `MissingExtraError`.

    >>> from bnn.train import TrainConfig, train
    >>> result = train(TrainConfig(network="lfcW1A1", epochs=60), "runs/w1a1")
    >>> result.params            # ParamSet, exact: its classes are the model's
    >>> bnn.params.write_params(result.params, "my-params/mnist/lfcW1A1")

The model is what the hardware runs: inputs are the pixels' bits (p >= 128)
as +-1, weights are sign(latent) with a straight-through estimator, each
hidden layer is BatchNorm followed by the hardware's activation, the sign
(W1A1) or the 3-level {-1, 0, +1} with steps at -0.5 and +0.5 (W1A2). The
last layer has no per-class normalisation, only one shared positive scale,
so the argmax of its integer accumulators is the model's prediction; the
exported set says so (``"decision": "argmax"`` in bnn-meta.json).

Export folds each BatchNorm and activation into integer thresholds by
evaluating the trained float function at every possible integer
accumulator, so the thresholds reproduce the model's own float32 decisions
exactly; a neuron whose output falls as its accumulator rises gets its
weight row flipped. Layer 0 keeps the hardware's 48 padding columns (input
-1) as fixed weights, so the model computes the hardware's sums literally.
"""

from __future__ import annotations

from ..errors import MissingExtraError

try:
    import torch  # noqa: F401
except ImportError:
    raise MissingExtraError("training needs PyTorch: pip install torch==2.13.0 'bitexact-bnn[train]'") from None

from .data import load_dataset, split_validation
from .export import export_params, import_params
from .loop import TrainConfig, TrainResult, export_run, train
from .model import LFC, pixels_to_inputs

__all__ = [
    "LFC",
    "TrainConfig",
    "TrainResult",
    "export_params",
    "export_run",
    "import_params",
    "load_dataset",
    "pixels_to_inputs",
    "split_validation",
    "train",
]
