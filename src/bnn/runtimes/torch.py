"""The torch runtime: the reference's exact integer arithmetic on any torch device (CUDA, MPS, CPU).

Each layer is one matrix product of +-1 (W1A2: -1/0/+1) values, whose
integer result is exact on every device because of how it is computed:

- CUDA: ``torch._int_mm`` (int8 x int8 -> int32 accumulation, the tensor
  cores' IMMA path), exact by construction. Its shape rules (more than 16
  rows, inner and output sizes multiples of 8) are met by padding with zero
  weights, which add nothing; batches of 16 or fewer use float32 instead.
- CPU and MPS: float32 products. Every partial sum is an integer of
  magnitude at most the layer's width (<= 2**24), so float32 holds it
  exactly; TF32 and reduced-precision reductions are never used (TF32 is
  CUDA-only and the CUDA path is integer).

Layer 0's padding columns (input bit 0, value -1) are not multiplied: their
fixed contribution per neuron, -sum(weights of the padding columns), is
added to the product of the 784 pixel columns, which gives the reference's
sums exactly. Accumulators, activations and the decision are `bnn.bits`'
rules, the same functions the reference runs.

Weights and thresholds go to the device once, when the runtime is made.
Images are binarized on the device; with ``packed=True`` (the default off
the CPU) the host sends their bits packed (98 bytes per image instead of
784). Tensors already on the device are used where they are.

    >>> clf = bnn.Classifier("lfcW1A1", "mnist", runtime="torch", device="cuda")
    >>> clf.predict(images)                     # numpy in, numpy out
    >>> clf.infer(images_on_gpu, as_tensors=True).classes   # stays on the GPU
"""

from __future__ import annotations

import warnings

import numpy as np

from ..bits import (
    PIXEL_THRESHOLD,
    accumulators,
    activate,
    cnv_accumulators,
    cnv_pixel_values,
    decide,
    max_pool,
    pixel_values,
    windows,
)
from ..errors import MissingExtraError, UnknownNameError
from ..paramset import PIXELS, ParamSet
from .base import Outputs

try:
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

__all__ = ["TorchRuntime", "available_devices", "best_device", "pack_images", "torch_threads"]

# Images per step on the CPU: about 0.1-0.3 s of work, so Ctrl-C is served quickly.
CPU_CHUNK = 8192
CPU_CNV_CHUNK = 64  # a CNV image's windows take about 2 MiB per layer
# At most this many images per step on an accelerator, and at most half its free memory.
DEVICE_CHUNK = 1 << 21


def _require_torch():
    if torch is None:
        raise MissingExtraError("the torch runtime needs PyTorch: pip install torch (or 'bitexact-bnn[train]')")
    return torch


def best_device() -> str:
    """ "cuda" when torch sees a CUDA GPU, else "mps" on Apple silicon, else "cpu"."""
    _require_torch()
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """Devices torch can run on here: "cpu", then "cuda:I" for each GPU, then "mps"; [] without torch."""
    if torch is None:
        return []
    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def torch_threads() -> int:
    """Threads torch uses on the CPU (its own setting: torch.set_num_threads)."""
    return torch.get_num_threads() if torch is not None else 0


def pack_images(images: np.ndarray, threshold: int = PIXEL_THRESHOLD) -> np.ndarray:
    """(N, 784) uint8 pixels -> (N, 98) uint8: their bits (p >= threshold), 8 per byte, first pixel in the high bit."""
    return np.packbits(images >= threshold, axis=1)


def _tensor(array: np.ndarray):
    """A tensor sharing `array`'s memory, read-only arrays (memory-mapped files) included: nothing writes to it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return torch.from_numpy(array)


class TorchRuntime:
    """A `ParamSet` on a torch device (see the module docstring for how it stays exact)."""

    name = "torch"

    def __init__(
        self, params: ParamSet, *, device: str | None = None, packed: bool | None = None, matmul: str | None = None
    ):
        """`matmul`: "int8" (torch._int_mm) or "fp32"; None: int8 on CUDA, fp32 elsewhere (where int8
        products are slow: CPU _int_mm runs far below float32 BLAS). `packed`: upload bits, not bytes."""
        _require_torch()
        params.validate()
        self.params = params
        self.convolutional = params.spec.convolutional
        try:
            self.device = torch.device(device or best_device())
            torch.empty(0, device=self.device)  # fails here, clearly, for a device this torch lacks
        except (RuntimeError, AssertionError) as exc:
            raise UnknownNameError(f"torch device {device!r} is not available here: {exc}") from None
        if matmul not in (None, "int8", "fp32"):
            raise UnknownNameError(f"unknown matmul {matmul!r}; known: int8, fp32")
        self.integer = matmul == "int8" if matmul else self.device.type == "cuda"
        self._int8_checked = False  # the first int8 product is compared with float32 (see _product)
        self.kernel = f"{self.device}/{'int8' if self.integer else 'fp32'}"
        one_bit = len(params.pixel_thresholds) == 1 and not self.convolutional
        if packed and not one_bit:
            raise ValueError(
                "packed upload sends one bit per pixel; this set takes "
                + ("8-bit pixels" if self.convolutional else "pixels quantized to 3 levels")
            )
        self.packed = packed if packed is not None else self.device.type != "cpu" and one_bit
        cpu_chunk = CPU_CNV_CHUNK if self.convolutional else CPU_CHUNK
        self.chunk = cpu_chunk if self.device.type == "cpu" else self._device_chunk()
        self._bits = params.activation_bits
        self._layers = [self._prepare(i, layer) for i, layer in enumerate(params.layers)]

    # ------------------------------------------------------------------ set-up

    def _prepare(self, index: int, layer) -> dict:
        """One layer on the device: weights (K, N) for x @ W, thresholds, the padding's fixed sum."""
        signs = layer.weight_values().astype(np.int32)  # (MH, MW) +-1, or 2-bit values
        offset = np.zeros(layer.mh, dtype=np.int32)
        if index == 0 and not self.convolutional:  # the padding columns see input -1: a constant per neuron
            offset = -signs[:, PIXELS:].sum(axis=1).astype(np.int32)
            signs = signs[:, :PIXELS]
        n, k = signs.shape
        prepared = {
            "float": torch.from_numpy(np.ascontiguousarray(signs.T, dtype=np.float32)).to(self.device),
            "n": n,
            "mw": layer.mw,
            "offset": torch.from_numpy(offset).to(self.device),
            "thresholds": torch.from_numpy(layer.effective_thresholds()).to(self.device),
            "conv": layer.conv,
        }
        if self.integer:  # _int_mm wants K and N multiples of 8: zero weights add nothing
            # Kept (N, K) row-major and passed transposed: cuBLAS' int8 GEMM wants B column-major (a
            # row-major B is the case PyTorch's own tests skip on CUDA 13: CUBLAS_STATUS_NOT_SUPPORTED).
            padded = np.zeros((-(-n // 8) * 8, -(-k // 8) * 8), dtype=np.int8)
            padded[:n, :k] = signs
            prepared["int8"] = torch.from_numpy(padded).to(self.device)
        return prepared

    def _device_chunk(self) -> int:
        if self.device.type == "cuda":
            # Device bytes one image needs in flight: its pixels (and their +-1 values), then per layer
            # and output pixel its windows (int8 and a float32 copy) and int32 sums, float32/int8 values
            # and comparison masks, about 9 bytes per neuron.
            per_image = self.params.image_bytes * 5
            for layer in self.params.layers:
                pixels = (layer.conv.size - layer.conv.kernel + 1) ** 2 if layer.conv else 1
                per_image += pixels * (5 * layer.mw + 9 * layer.mh)
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(max(1024, min(DEVICE_CHUNK, free // 2 // per_image)))
        return 1 << 16

    # ------------------------------------------------------------------ inference

    def _product(self, x, layer: dict):
        """Exact integer dot products (N, MH) int32 of values x (N, K) with the layer's weights.

        int8: torch._int_mm's rules (more than 16 rows, K and N multiples of 8, A row-major, B
        column-major) are met here; its first product is checked against float32, and a device whose
        int8 GEMM fails or differs falls back to float32 for good, with a warning.
        """
        if self.integer and x.shape[0] > 16:
            w = layer["int8"]
            a = torch.nn.functional.pad(x, (0, w.shape[1] - x.shape[1])).contiguous()
            try:
                dot = torch._int_mm(a, w.t())[:, : layer["n"]]
            except RuntimeError as exc:
                return self._int8_failed(x, layer, f"torch._int_mm failed ({exc})")
            if not self._int8_checked:
                if not torch.equal(dot, self._float_product(x, layer)):
                    return self._int8_failed(x, layer, "torch._int_mm differs from the float32 product")
                self._int8_checked = True
            return dot
        return self._float_product(x, layer)

    def _float_product(self, x, layer: dict):
        return (x.to(torch.float32) @ layer["float"]).to(torch.int32)

    def _int8_failed(self, x, layer: dict, why: str):
        warnings.warn(f"{why} on {self.device}; using float32 products (exact too)", RuntimeWarning, stacklevel=4)
        self.integer = False
        self.kernel = f"{self.device}/fp32"
        return self._float_product(x, layer)

    def forward_tensor(self, pixels):
        """Last-layer (N, C) int32 scores and bool bits for (N, 784) or (N, 3072) uint8 pixels already on
        the device."""
        if self.convolutional:
            return self._forward_cnv(pixels)
        if max(self.params.pixel_thresholds) > 255:  # torch would wrap 256 to 0 in a uint8 comparison
            pixels = pixels.to(torch.int16)
        x = pixel_values(pixels, self.params.pixel_thresholds).to(torch.int8)
        for layer in self._layers:
            dot = self._product(x, layer) + layer["offset"]
            acc = accumulators(dot, layer["mw"], self._bits)
            values, bits = activate(acc, layer["thresholds"])
            x = values.to(torch.int8)
        c = len(self.params.classes)
        return acc[:, :c], bits[:, :c]

    def _forward_cnv(self, pixels):
        # The reference's steps (bnn.runtimes.reference), each layer one product over every window.
        n, c = pixels.shape[0], len(self.params.classes)
        x = cnv_pixel_values(pixels).reshape(n, *self.params.image_shape).to(torch.int8)
        for i, layer in enumerate(self._layers):
            conv = layer["conv"]
            if conv is not None:
                rows = windows(x, conv.kernel)  # (N, oh, ow, k*k*C)
                dot = self._product(rows.reshape(-1, rows.shape[-1]), layer).reshape(*rows.shape[:3], layer["n"])
            else:
                dot = self._product(x.reshape(n, layer["mw"]), layer)
            acc = cnv_accumulators(dot, i, len(self._layers), layer["mw"], self._bits)
            if i == len(self._layers) - 1:  # no activation: the accumulators are the scores
                acc = acc.to(torch.int32)
                return acc[:, :c], acc[:, :c] > 0
            values, _ = activate(acc, layer["thresholds"])
            if conv is not None and conv.pool:
                values = max_pool(values)
            x = values.to(torch.int8)

    def _upload(self, images: np.ndarray):
        """Host (N, 784) uint8 -> device (N, 784) uint8 pixels (0 or 255 when sent packed)."""
        if not self.packed:
            return _tensor(images).to(self.device, non_blocking=True)
        (threshold,) = self.params.pixel_thresholds
        packed = _tensor(pack_images(images, threshold)).to(self.device, non_blocking=True)
        shifts = torch.arange(7, -1, -1, device=self.device, dtype=torch.uint8)
        bits = (packed.unsqueeze(2) >> shifts) & 1
        # 255 is above and 0 below any threshold in 1..255; 0 or 256 make every pixel the same anyway.
        return bits.reshape(len(images), packed.shape[1] * 8)[:, :PIXELS] * 255

    def run_tensor(self, pixels, rule: str | None = None, *, scores: bool = True) -> Outputs:
        """`Outputs` as torch tensors on the device for (N, 784) or (N, 28, 28) uint8 pixels, or CNV's (N, 3072)
        or (N, 32, 32, 3) (tensor or array)."""
        size = self.params.image_bytes
        if not isinstance(pixels, torch.Tensor):
            pixels = self._upload(np.ascontiguousarray(pixels).reshape(len(pixels), size))
        pixels = pixels.to(self.device).reshape(pixels.shape[0], size)  # no copy when already there
        rule = rule or self.params.decision
        parts = []
        with torch.inference_mode():
            for start in range(0, max(pixels.shape[0], 1), self.chunk):
                acc, bits = self.forward_tensor(pixels[start : start + self.chunk])
                parts.append((decide(acc, bits, rule), acc, bits))
        classes, acc, bits = (torch.cat(p) for p in zip(*parts))
        return Outputs(classes, acc, bits)

    def run(self, images: np.ndarray, rule: str | None = None, *, scores: bool = True) -> Outputs:
        """Classes, accumulators and bits for (N, 784) or (N, 3072) uint8 images, as numpy arrays."""
        return Outputs(*(t.cpu().numpy() for t in self.run_tensor(images, rule)))

    def synchronize(self) -> None:
        """Wait for the device's queued work (CUDA runs asynchronously), so that timings are real."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self._layers = []
