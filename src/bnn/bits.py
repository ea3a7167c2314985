r"""Bit conventions of the LFC and CNV networks, stated once for every runtime.

Values and bits
    A binary value v in {-1, +1} is stored as the bit b = (v + 1) / 2:
    bit 1 is +1, bit 0 is -1. A pixel p (uint8) becomes the bit p >= 128
    (the original maps p to p/255*2-1 and takes the sign with sign(0) = +1).
    Layer 0 has MW >= 784 inputs: bits 0..783 are the pixels in IDX row-major
    order, bits 784..MW-1 are 0 (value -1), and they take part in the sums.
    A set may quantize pixels otherwise (`ParamSet.pixel_thresholds`): one
    threshold t gives the bit p >= t; two (W1A2 only, as Brevitas' 2-bit
    input quantizer) give the 3-level value (p >= t0) + (p >= t1) - 1, which
    layer 0 then takes like a hidden layer's 3-level activations.

3-level activations (W1A2)
    A hidden activation a in {-1, 0, +1} is (acc > T0) + (acc > T1) - 1. The
    native kernels carry it as two bit planes, m = (a != 0) and s = (a == +1),
    so that for a weight row w (bits, MW columns)
        sum(w * a) = popcount(m) - 2 * popcount(m & (w ^ s)),
    one VPTERNLOGQ + VPOPCNTQ per 512 columns, as cheap as a W1A1 layer.
    From the two threshold bits b0, b1: m = NOT(b0 XOR b1), s = b0 AND b1.

Accumulators (the values compared with the thresholds)
    W1A1: acc = popcount(XNOR(x, w)) = MW - popcount(x ^ w), in 0..MW.
    W1A2: acc = sum(w * x), signed; with bit inputs (layer 0) it is
          MW - 2 * popcount(x ^ w).
    Output: acc > T (strictly), T the stored threshold's low 16 bits, signed.

Packing (native runtime)
    Bit c of a vector lives in 64-bit word c // 64 at bit c % 64 (least
    significant first); columns past MW are 0 in both inputs and weights,
    so they add nothing to a popcount.

Convolutions (CNV)
    An image is 32 x 32 RGB pixels, height x width x channel (HWC). Layer 0
    takes each pixel byte p as the 8-bit fixed-point value q / 128 with
    q = min(round(256 p / 255) - 128, 127) (`cnv_pixel_values`: the
    original's ap_fixed<8,1> of 2p/255 - 1); its accumulator is
    2 * sum(w * q), the sum in 1/256 units (ap_fixed<24,16>), compared with
    the stored threshold wrapped to 24 bits. A convolution layer applies its
    weight row to every k x k window (`windows`: column (ky*k + kx)*C + ch);
    its outputs form the next feature map, neuron = channel. A pool takes
    the largest value of each 2x2 block (`max_pool`: OR of bits for W1A1).
    Layers after layer 0 follow the rules above, with 2-bit weights
    (W2A2: two's complement -2..1) summed as sum(w * x). The last layer has
    no thresholds: its accumulators, wrapped to 16 bits, are the scores, and
    its output bits are score > 0.

Decision
    "highest_bit": the highest set bit among the first C outputs, 0 when
    none (the original LFC's rule). "argmax": the first largest
    accumulator. "positive_max": the first largest accumulator if it is
    above 0, else 0 (the original CNV's batch rule).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PIXEL_THRESHOLD",
    "accumulator_thresholds",
    "accumulators",
    "activate",
    "cnv_accumulators",
    "cnv_pixel_values",
    "decide",
    "dot_thresholds",
    "input_values",
    "last_layer_thresholds",
    "max_pool",
    "pixel_values",
    "windows",
    "wrap",
]

#: A pixel is bit 1 (value +1) when it is at least this bright.
PIXEL_THRESHOLD = 128


def pixel_values(pixels, thresholds=(PIXEL_THRESHOLD,)):
    """Layer 0's input values of (N, P) uint8 pixels: +-1 (one threshold t: p >= t is +1) or
    -1/0/+1 (two: (p >= t0) + (p >= t1) - 1). numpy: int8; torch tensors: integer (the caller casts)."""
    if len(thresholds) == 1:
        values = (pixels >= thresholds[0]) * 2 - 1
    else:
        values = (pixels >= thresholds[0]) * 1 + (pixels >= thresholds[1]) - 1
    return values.astype(np.int8) if isinstance(values, np.ndarray) else values


def input_values(pixels: np.ndarray, mw: int, thresholds=(PIXEL_THRESHOLD,)) -> np.ndarray:
    """(N, P) uint8 pixels -> (N, mw) int8 layer-0 inputs: `pixel_values`, then -1 for the padding columns."""
    values = np.full((pixels.shape[0], mw), -1, dtype=np.int8)
    values[:, : pixels.shape[1]] = pixel_values(pixels, thresholds)
    return values


def cnv_pixel_values(pixels):
    """CNV layer 0's inputs: uint8 pixels p -> int16 q with q / 128 = ap_fixed<8,1>(2p/255 - 1), rounded
    (numpy arrays or torch tensors).

    round(128 (2p/255 - 1)) = round(256p/255) - 128 (never a tie), saturated at 127 (p = 255).
    """
    if isinstance(pixels, np.ndarray):
        p = pixels.astype(np.int32)
        return np.minimum((512 * p + 255) // 510 - 128, 127).astype(np.int16)
    p = pixels.int()  # a torch tensor
    return ((512 * p + 255) // 510 - 128).clamp(max=127).short()


def windows(x, kernel: int):
    """(N, H, W, C) feature maps -> (N, H-k+1, W-k+1, k*k*C) windows, column (ky*k + kx)*C + ch.

    Stride 1, no padding: the original's sliding-window generator. numpy arrays or torch tensors.
    """
    n, h, w, c = x.shape
    order = (0, 1, 2, 4, 5, 3)  # (N, oh, ow, C, ky, kx) -> (N, oh, ow, ky, kx, C)
    shape = (n, h - kernel + 1, w - kernel + 1, kernel * kernel * c)
    if isinstance(x, np.ndarray):
        return (
            np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(1, 2)).transpose(order).reshape(shape)
        )
    return x.unfold(1, kernel, 1).unfold(2, kernel, 1).permute(order).reshape(shape)


def max_pool(x: np.ndarray) -> np.ndarray:
    """2x2, stride 2 max pool of (N, H, W, C) values (H, W even): OR of bits, max of 3-level values.

    numpy arrays or torch tensors."""
    n, h, w, c = x.shape
    blocks = x.reshape(n, h // 2, 2, w // 2, 2, c)
    return blocks.max(axis=(2, 4)) if isinstance(x, np.ndarray) else blocks.amax(dim=(2, 4))


def wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Integers wrapped to `bits`-bit two's complement (what a hardware register of that width holds)."""
    span = 1 << bits
    return (values + span // 2) % span - span // 2


def accumulators(dot: np.ndarray, mw: int, activation_bits: int) -> np.ndarray:
    """Hardware accumulators from signed dot products sum(w * x) over `mw` columns.

    W1A1 counts agreements, popcount(XNOR) = (dot + mw) / 2; W1A2 keeps the
    signed sum. The one place this conversion is written (the C++ kernels
    compute the W1A1 count directly).
    """
    return (dot + mw) // 2 if activation_bits == 1 else dot


def cnv_accumulators(dot, index: int, n_layers: int, mw: int, activation_bits: int):
    """A CNV layer's hardware accumulators from its dot products (numpy arrays or torch tensors).

    Layer 0 sums 8-bit fixed-point pixels: its ap_fixed<24,16> accumulator holds 2 dot (1/256 units).
    The last layer has no activation: its accumulators, wrapped to 16 bits, are the scores (their bits:
    score > 0). The others are `accumulators`.
    """
    if index == 0:
        return 2 * dot
    acc = accumulators(dot, mw, activation_bits)
    return wrap(acc, 16) if index == n_layers - 1 else acc


def dot_thresholds(thresholds: np.ndarray, mw: int, activation_bits: int) -> np.ndarray:
    """Thresholds in dot-product units: ``accumulators(dot) > T`` exactly when ``dot > dot_thresholds(T)``.

    W1A1: (dot + mw) / 2 > T  <=>  dot > 2T - mw (dot and mw have the same parity).
    """
    return 2 * thresholds - mw if activation_bits == 1 else thresholds


def accumulator_thresholds(dot_thresholds: np.ndarray, mw: int, activation_bits: int) -> np.ndarray:
    """Inverse of `dot_thresholds`: the accumulator threshold T with acc > T exactly when dot > `dot_thresholds`.

    W1A1: dot > t  <=>  (dot + mw) / 2 > floor((t + mw) / 2), since dot + mw is even.
    """
    return np.floor_divide(dot_thresholds + mw, 2) if activation_bits == 1 else dot_thresholds


def last_layer_thresholds(rows: int, mw: int, activation_bits: int) -> np.ndarray:
    """(rows, 1) int64 thresholds of a last layer whose output bit is ``dot > 0``.

    The bits serve the highest-bit rule only (argmax reads the
    accumulators); training export and QONNX import both give their last
    layer these.
    """
    return np.full((rows, 1), accumulator_thresholds(0, mw, activation_bits), dtype=np.int64)


def activate(acc, thresholds):
    """A layer's outputs from its accumulators (N, MH) and thresholds (MH, NT): (values, first bits).

    One threshold per neuron: the bit acc > T as the value +-1. Two: the
    3-level value (acc > T0) + (acc > T1) - 1 in {-1, 0, +1}. The bits
    acc > T0 are what the last layer reports. numpy arrays or torch tensors
    (integer values; the caller casts them for its matrix product).
    """
    above = acc > thresholds[:, 0]
    if thresholds.shape[1] == 1:
        return above * 2 - 1, above
    return above * 1 + (acc > thresholds[:, 1]) - 1, above


def decide(scores, bits, rule: str):
    """Class per image from (N, C) accumulators and output bits, by `rule`; int32 (N,).

    numpy arrays or torch tensors on any device (the result is of the same kind).
    """
    if rule == "argmax":
        classes = scores.argmax(1)  # the first largest, in numpy and torch alike
    elif rule == "positive_max":
        top = scores.max(1) if isinstance(scores, np.ndarray) else scores.amax(1)
        classes = scores.argmax(1) * (top > 0)  # 0 unless the largest is above 0
    else:
        flipped = bits[:, ::-1] if isinstance(bits, np.ndarray) else bits.flip(1)
        highest = bits.shape[1] - 1 - (flipped * 1).argmax(1)
        classes = highest * bits.any(1)  # 0 when no bit is set
    return classes.astype(np.int32) if isinstance(classes, np.ndarray) else classes.int()
