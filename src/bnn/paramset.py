"""The in-memory model of a parameter set: networks, layers, decision rules.

A `ParamSet` holds a network's logical matrices (the hardware folding
undone) and what the BNN-PYNQ files cannot say: class names, decision rule,
provenance. Reading and writing them is `bnn.formats`' job; finding them by
name is `bnn.params`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bits import PIXEL_THRESHOLD
from .errors import ParamsError, UnknownNameError

__all__ = [
    "DECISION_RULES",
    "NETWORKS",
    "PIXELS",
    "Layer",
    "NetworkSpec",
    "ParamSet",
    "network_spec",
    "network_with_bits",
]

#: "highest_bit": index of the highest set output bit, 0 when none (the original's batch rule).
#: "argmax": index of the largest last-layer accumulator, the lowest index on ties.
DECISION_RULES = ("highest_bit", "argmax")
PIXELS = 28 * 28


@dataclass(frozen=True)
class NetworkSpec:
    """What the original hardware fixes for a network: activation bits and folding."""

    name: str
    activation_bits: int
    simd: tuple[int, ...]
    pe: tuple[int, ...]
    #: thresholds per neuron, per layer (2 for a 3-level activation, 1 for a bit).
    thresholds: tuple[int, ...]
    hidden: int = 1024

    @property
    def n_layers(self) -> int:
        """Layers of the original hardware's network (imported sets may have other depths)."""
        return len(self.simd)

    def layer_thresholds(self, index: int, n_layers: int) -> int:
        """Thresholds per neuron of layer `index` of `n_layers`: the hidden activation's, 1 for the last."""
        return 1 if index == n_layers - 1 else self.thresholds[0]


NETWORKS: dict[str, NetworkSpec] = {
    "lfcW1A1": NetworkSpec("lfcW1A1", 1, (64, 32, 64, 8), (32, 64, 32, 16), (1, 1, 1, 1)),
    "lfcW1A2": NetworkSpec("lfcW1A2", 2, (64, 32, 64, 8), (32, 64, 32, 16), (2, 2, 2, 1)),
}


def network_spec(name: str) -> NetworkSpec:
    """The `NetworkSpec` called `name`; UnknownNameError listing the known ones otherwise."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown network {name!r}; known networks: {', '.join(NETWORKS)}") from None


def network_with_bits(activation_bits: int) -> NetworkSpec:
    """The `NetworkSpec` whose hidden activations have `activation_bits` bits."""
    for spec in NETWORKS.values():
        if spec.activation_bits == activation_bits:
            return spec
    raise UnknownNameError(f"no network with {activation_bits}-bit activations; known networks: {', '.join(NETWORKS)}")


@dataclass
class Layer:
    """One fully connected layer, unfolded from the hardware layout.

    weights: (MH, MW) uint8, 1 for weight +1 and 0 for -1 (row = output neuron).
    thresholds: (MH, NT) int64 as stored in the files; the hardware uses their
        low 16 bits as a signed number (`effective_thresholds`).
    pe, simd: the hardware folding the files were written with.
    """

    weights: np.ndarray
    thresholds: np.ndarray
    pe: int
    simd: int

    @property
    def mh(self) -> int:
        """Output neurons."""
        return self.weights.shape[0]

    @property
    def mw(self) -> int:
        """Input columns (padding included)."""
        return self.weights.shape[1]

    @property
    def n_thresholds(self) -> int:
        return self.thresholds.shape[1]

    def effective_thresholds(self) -> np.ndarray:
        """Thresholds as the hardware compares them: int16 wrap-around of the stored int64, as int32."""
        return self.thresholds.astype(np.int16).astype(np.int32)

    def check(self, where: str) -> None:
        mh, mw = self.weights.shape
        if self.pe < 1 or mh % self.pe:
            raise ParamsError(f"{where}: {mh} neurons do not fold onto PE={self.pe}")
        if not 1 <= self.simd <= 64 or mw % self.simd:
            raise ParamsError(f"{where}: {mw} columns do not fold onto SIMD={self.simd} (1..64)")
        if self.thresholds.shape[0] != mh:
            raise ParamsError(f"{where}: {self.thresholds.shape[0]} threshold rows for {mh} neurons")


@dataclass
class ParamSet:
    """A network's parameters: layers, class names, decision rule and metadata."""

    network: str
    layers: list[Layer]
    classes: list[str]
    decision: str = "highest_bit"
    metadata: dict = field(default_factory=dict)
    source: Path | None = None
    # How classes.txt was laid out, so that writing it back gives the same bytes.
    classes_newline: str = "\n"
    classes_final_newline: bool = True
    #: How layer 0 quantizes a pixel (`bnn.bits.pixel_values`): (128,), the original's p >= 128, or two
    #: thresholds for 3 levels (W1A2 sets imported from Brevitas' 2-bit input quantizer).
    pixel_thresholds: tuple[int, ...] = (PIXEL_THRESHOLD,)

    @property
    def spec(self) -> NetworkSpec:
        return network_spec(self.network)

    @property
    def activation_bits(self) -> int:
        return self.spec.activation_bits

    def validate(self) -> None:
        """Check that the layers chain and fit the network; ParamsError otherwise."""
        where = str(self.source or self.network)
        spec = network_spec(self.network)
        if self.decision not in DECISION_RULES:
            raise ParamsError(f"{where}: unknown decision rule {self.decision!r}; known: {', '.join(DECISION_RULES)}")
        if len(self.layers) < 2:  # other depths than the original's 4 are fine (Brevitas' FC family)
            raise ParamsError(f"{where}: a network needs hidden layers and a last layer, found {len(self.layers)}")
        for i, layer in enumerate(self.layers):
            layer.check(f"{where}: layer {i}")
            want = spec.layer_thresholds(i, len(self.layers))
            if layer.n_thresholds != want:
                raise ParamsError(
                    f"{where}: layer {i} of {self.network} needs {want} threshold(s) "
                    f"per neuron, found {layer.n_thresholds}"
                )
            if i == 0 and layer.mw < PIXELS:
                raise ParamsError(f"{where}: layer 0 has {layer.mw} inputs, fewer than the {PIXELS} pixels")
            if i > 0 and layer.mw != self.layers[i - 1].mh:
                raise ParamsError(
                    f"{where}: layer {i} has {layer.mw} inputs but layer {i - 1} has {self.layers[i - 1].mh} outputs"
                )
        t = self.pixel_thresholds
        if len(t) not in (1, 2) or any(not 0 <= v <= 256 for v in t) or list(t) != sorted(t):
            raise ParamsError(f"{where}: pixel thresholds {list(t)}: one or two rising values in 0..256")
        if len(t) == 2 and spec.activation_bits != 2:
            raise ParamsError(f"{where}: 3-level pixels (two pixel thresholds) need a W1A2 network, not {self.network}")
        if not self.classes:
            raise ParamsError(f"{where}: no class names")
        if len(self.classes) > self.layers[-1].mh:
            raise ParamsError(
                f"{where}: {len(self.classes)} classes but the last layer has only {self.layers[-1].mh} outputs"
            )
