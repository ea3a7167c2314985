"""The in-memory model of a parameter set: networks, layers, decision rules.

A network is a sequence of layers, each a matrix of weights (one row per
output neuron) with its thresholds: a fully connected layer applies it to
its input vector; a convolution (`Conv`) to every window of its input
feature map, then perhaps a 2x2 max pool. The LFC networks are fully
connected layers only; the CNV networks are six convolutions (two of them
pooled) and three fully connected layers. The arithmetic of both is stated
once, in `bnn.bits`.

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
    "CNV_NETWORKS",
    "CNV_PIXELS",
    "DECISION_RULES",
    "LFC_NETWORKS",
    "Conv",
    "NETWORKS",
    "PIXELS",
    "Layer",
    "NetworkSpec",
    "ParamSet",
    "default_set",
    "network_spec",
    "network_with_bits",
]

#: "highest_bit": index of the highest set output bit, 0 when none (the original LFC's batch rule).
#: "argmax": index of the largest last-layer accumulator, the lowest index on ties.
#: "positive_max": the largest accumulator if it is above 0 (lowest index on ties), else class 0
#: (the original CNV's batch rule; its single-image calls take argmax).
DECISION_RULES = ("highest_bit", "argmax", "positive_max")
PIXELS = 28 * 28
#: Bytes of one CNV input image: 32 x 32 pixels x 3 channels (RGB), pixel-interleaved (HWC).
CNV_PIXELS = 32 * 32 * 3


@dataclass(frozen=True)
class Conv:
    """A convolution layer's geometry: a `kernel` x `kernel` window, stride 1, no padding, over a square
    `size` x `size` input of `channels` channels, then a 2x2 stride-2 max pool when `pool`.

    Its weight row has kernel * kernel * channels columns, column (ky * kernel + kx) * channels + ch
    reading input pixel (y + ky, x + kx), channel ch (the original's sliding-window order).
    """

    channels: int
    size: int
    kernel: int = 3
    pool: bool = False

    @property
    def columns(self) -> int:
        return self.kernel * self.kernel * self.channels

    @property
    def out_size(self) -> int:
        """Output side, after the pool when there is one."""
        side = self.size - self.kernel + 1
        return side // 2 if self.pool else side


@dataclass(frozen=True)
class NetworkSpec:
    """What the original hardware fixes for a network: bits, geometry, folding, decision rules."""

    name: str
    activation_bits: int
    simd: tuple[int, ...]
    pe: tuple[int, ...]
    #: thresholds per neuron, per layer (2 for a 3-level activation, 1 for a bit).
    thresholds: tuple[int, ...]
    hidden: int = 1024
    #: bits per weight: 1 (+-1, stored as a bit) or 2 (two's complement -2..1)
    weight_bits: int = 1
    #: the convolutions that come first (the rest are fully connected); none for an LFC
    convs: tuple[Conv, ...] = ()
    #: the rule of the original's batch calls; its single-image calls take "argmax" for CNV
    batch_decision: str = "highest_bit"
    #: the last layer's thresholds per neuron in the files (CNV: none, its scores are read directly)
    last_thresholds: int = 1

    @property
    def n_layers(self) -> int:
        """Layers of the original hardware's network (imported sets may have other depths)."""
        return len(self.simd)

    @property
    def convolutional(self) -> bool:
        return bool(self.convs)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One input image: (28, 28) grey pixels, or (32, 32, 3) RGB pixels (height, width, channel)."""
        return (self.convs[0].size, self.convs[0].size, self.convs[0].channels) if self.convs else (28, 28)

    @property
    def image_bytes(self) -> int:
        return int(np.prod(self.image_shape))

    def layer_thresholds(self, index: int, n_layers: int) -> int:
        """Thresholds per neuron of layer `index` of `n_layers`: the hidden activation's, or the last layer's."""
        return self.last_thresholds if index == n_layers - 1 else self.thresholds[0]


def _cnv(name: str, activation_bits: int, weight_bits: int, simd, pe) -> NetworkSpec:
    """The CNV geometry (BNN-PYNQ's cnv*/hw/config.h): six 3x3 valid convolutions, pools after the
    second and fourth, then three fully connected layers (256 -> 512 -> 512 -> 64 rows)."""
    convs = (
        Conv(3, 32),
        Conv(64, 30, pool=True),
        Conv(64, 14),
        Conv(128, 12, pool=True),
        Conv(128, 5),
        Conv(256, 3),
    )
    nt = 1 if activation_bits == 1 else 2
    return NetworkSpec(
        name,
        activation_bits,
        simd,
        pe,
        (nt,) * 8 + (0,),
        hidden=512,
        weight_bits=weight_bits,
        convs=convs,
        batch_decision="positive_max",
        last_thresholds=0,
    )


NETWORKS: dict[str, NetworkSpec] = {
    "lfcW1A1": NetworkSpec("lfcW1A1", 1, (64, 32, 64, 8), (32, 64, 32, 16), (1, 1, 1, 1)),
    "lfcW1A2": NetworkSpec("lfcW1A2", 2, (64, 32, 64, 8), (32, 64, 32, 16), (2, 2, 2, 1)),
    "cnvW1A1": _cnv("cnvW1A1", 1, 1, (3, 32, 32, 32, 32, 32, 4, 8, 1), (16, 32, 16, 16, 4, 1, 1, 1, 4)),
    "cnvW1A2": _cnv("cnvW1A2", 2, 1, (3, 32, 32, 32, 32, 32, 4, 8, 1), (16, 32, 16, 16, 4, 1, 1, 1, 4)),
    "cnvW2A2": _cnv("cnvW2A2", 2, 2, (3, 16, 16, 16, 8, 8, 2, 2, 1), (8, 16, 8, 8, 4, 1, 1, 2, 4)),
}


#: The fully connected networks (MNIST) and the convolutional ones (CIFAR-10, road signs, house numbers).
LFC_NETWORKS = tuple(name for name, spec in NETWORKS.items() if not spec.convolutional)
CNV_NETWORKS = tuple(name for name, spec in NETWORKS.items() if spec.convolutional)


def default_set(network: str | None) -> str:
    """The parameter set a network takes when none is named: "mnist" for an LFC, "cifar10" for a CNV."""
    return "cifar10" if network in CNV_NETWORKS else "mnist"


def network_spec(name: str) -> NetworkSpec:
    """The `NetworkSpec` called `name`; UnknownNameError listing the known ones otherwise."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown network {name!r}; known networks: {', '.join(NETWORKS)}") from None


def network_with_bits(activation_bits: int) -> NetworkSpec:
    """The fully connected `NetworkSpec` whose hidden activations have `activation_bits` bits."""
    for spec in NETWORKS.values():
        if spec.activation_bits == activation_bits and not spec.convolutional:
            return spec
    raise UnknownNameError(f"no network with {activation_bits}-bit activations; known networks: {', '.join(NETWORKS)}")


@dataclass
class Layer:
    """One layer, unfolded from the hardware layout.

    weights: (MH, MW), row = output neuron. 1-bit weights: uint8, 1 for +1
        and 0 for -1; 2-bit weights: int8 values -2..1 (`weight_values`).
    thresholds: (MH, NT) int64 as stored in the files; the hardware uses
        their low `threshold_bits` bits as a signed number
        (`effective_thresholds`): 16, or 24 for a CNV's layer 0, whose
        thresholds are in 1/256 units of its fixed-point accumulator.
        NT = 0 for a last layer without thresholds (CNV).
    pe, simd: the hardware folding the files were written with.
    conv: the geometry of a convolution layer; None for a fully connected one.
    """

    weights: np.ndarray
    thresholds: np.ndarray
    pe: int
    simd: int
    conv: Conv | None = None
    threshold_bits: int = 16

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

    @property
    def weight_bits(self) -> int:
        return 2 if self.weights.dtype == np.int8 else 1

    def weight_values(self) -> np.ndarray:
        """(MH, MW) int8 weight values: +-1 for 1-bit weights, -2..1 for 2-bit ones."""
        if self.weight_bits == 2:
            return self.weights
        return (self.weights.astype(np.int8) * 2 - 1).astype(np.int8)

    def effective_thresholds(self) -> np.ndarray:
        """Thresholds as the hardware compares them: the stored int64 wrapped to `threshold_bits`, as int32."""
        if self.threshold_bits == 16:
            return self.thresholds.astype(np.int16).astype(np.int32)
        span = np.int64(1) << self.threshold_bits
        return ((self.thresholds + span // 2) % span - span // 2).astype(np.int32)

    def check(self, where: str) -> None:
        mh, mw = self.weights.shape
        if self.pe < 1 or mh % self.pe:
            raise ParamsError(f"{where}: {mh} neurons do not fold onto PE={self.pe}")
        most = 64 // self.weight_bits  # SIMD weights share one 64-bit word
        if not 1 <= self.simd <= most or mw % self.simd:
            raise ParamsError(f"{where}: {mw} columns do not fold onto SIMD={self.simd} (1..{most})")
        if self.conv is not None and mw != self.conv.columns:
            raise ParamsError(
                f"{where}: a {self.conv.kernel}x{self.conv.kernel} convolution over {self.conv.channels} channels "
                f"has {self.conv.columns} columns, not {mw}"
            )
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
    classes_trailing_newlines: int = 1  # after the last name: 0, 1, or more (empty lines)
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
            unused = want == 0 and i == len(self.layers) - 1  # thresholds stored but never read (bnn.formats.pynq)
            if layer.n_thresholds != want and not unused:
                raise ParamsError(
                    f"{where}: layer {i} of {self.network} needs {want} threshold(s) "
                    f"per neuron, found {layer.n_thresholds}"
                )
            if layer.weight_bits != spec.weight_bits:
                raise ParamsError(
                    f"{where}: layer {i} has {layer.weight_bits}-bit weights, {self.network} {spec.weight_bits}-bit"
                )
        if spec.convolutional:
            self._check_convolutions(where)
        else:
            self._check_fully_connected(where)
        t = self.pixel_thresholds
        if len(t) not in (1, 2) or any(not 0 <= v <= 256 for v in t) or list(t) != sorted(t):
            raise ParamsError(f"{where}: pixel thresholds {list(t)}: one or two rising values in 0..256")
        if spec.convolutional and t != (PIXEL_THRESHOLD,):
            raise ParamsError(
                f"{where}: {self.network} takes 8-bit pixels (bnn.bits.cnv_pixel_values): no pixel thresholds"
            )
        if len(t) == 2 and spec.activation_bits != 2:
            raise ParamsError(f"{where}: 3-level pixels (two pixel thresholds) need a W1A2 network, not {self.network}")
        if not self.classes:
            raise ParamsError(f"{where}: no class names")
        if len(self.classes) > self.layers[-1].mh:
            raise ParamsError(
                f"{where}: {len(self.classes)} classes but the last layer has only {self.layers[-1].mh} outputs"
            )

    @property
    def image_shape(self) -> tuple[int, ...]:
        """One input image's shape: (28, 28) for an LFC, (32, 32, 3) RGB (height, width, channel) for a CNV."""
        if self.layers and self.layers[0].conv is not None:
            c = self.layers[0].conv
            return (c.size, c.size, c.channels)
        return self.spec.image_shape if self.spec.convolutional else (28, 28)

    @property
    def image_bytes(self) -> int:
        return int(np.prod(self.image_shape))

    def _check_fully_connected(self, where: str) -> None:
        for i, layer in enumerate(self.layers):
            if layer.conv is not None:
                raise ParamsError(f"{where}: layer {i} is a convolution, but {self.network} is fully connected")
            if i == 0 and layer.mw < PIXELS:
                raise ParamsError(f"{where}: layer 0 has {layer.mw} inputs, fewer than the {PIXELS} pixels")
            if i > 0 and layer.mw != self.layers[i - 1].mh:
                raise ParamsError(
                    f"{where}: layer {i} has {layer.mw} inputs but layer {i - 1} has {self.layers[i - 1].mh} outputs"
                )

    def _check_convolutions(self, where: str) -> None:
        """Convolutions first, each fed by the one before (channels = its neurons, size = its output side),
        then fully connected layers, the first taking the last feature map flattened."""
        if self.layers[0].conv is None:
            raise ParamsError(f"{where}: {self.network} starts with a convolution; layer 0 has no geometry")
        if self.layers[-1].conv is not None:
            raise ParamsError(f"{where}: {self.network} ends with a fully connected layer")
        channels, size = self.layers[0].conv.channels, self.layers[0].conv.size
        for i, layer in enumerate(self.layers):
            c = layer.conv
            if c is None:
                if i and self.layers[i - 1].conv is not None and layer.mw != channels * size * size:
                    raise ParamsError(
                        f"{where}: layer {i} has {layer.mw} inputs but layer {i - 1}'s feature map "
                        f"holds {channels} x {size} x {size}"
                    )
                before = self.layers[i - 1]
                if i and before.conv is None and layer.mw != before.mh:
                    raise ParamsError(
                        f"{where}: layer {i} has {layer.mw} inputs but layer {i - 1} has {before.mh} outputs"
                    )
                channels, size = layer.mh, 1
                continue
            if i and self.layers[i - 1].conv is None:
                raise ParamsError(f"{where}: layer {i} is a convolution after a fully connected layer")
            if (c.channels, c.size) != (channels, size):
                raise ParamsError(
                    f"{where}: layer {i} convolves {c.channels} channels of {c.size} x {c.size}, "
                    f"but its input is {channels} channels of {size} x {size}"
                )
            side = c.size - c.kernel + 1
            if side < 1 or (c.pool and side % 2):
                raise ParamsError(
                    f"{where}: layer {i}: a {c.kernel}x{c.kernel} window over {c.size} x {c.size} "
                    + ("leaves nothing" if side < 1 else f"leaves {side} x {side}, which a 2x2 pool cannot halve")
                )
            channels, size = layer.mh, c.out_size
