"""Type stubs of the native extension (src/native/bindings.cpp)."""

import numpy as np
import numpy.typing as npt

def available_kernels() -> list[str]: ...
def probe(kernel: str, seconds: float = 0.3) -> float: ...

class Network:
    def __init__(
        self,
        # (weight values -2..1 (MH, MW), thresholds (MH, NT), (input side, channels, window, pool))
        layers: list[tuple[npt.NDArray[np.int8], npt.NDArray[np.int32], tuple[int, int, int, bool]]],
        activation_bits: int,
        n_classes: int,
        pixels: int,
        kernel: str = "",
        # one threshold (bits) or two (3 levels): bnn.bits.pixel_values; none: bnn.bits.cnv_pixel_values
        pixel_thresholds: list[int] = [128],
        score_bits: int = 0,  # the last layer's sums wrap to this many bits (0: none)
    ) -> None: ...
    def run(
        self, images: npt.NDArray[np.uint8], threads: int, rule: str, want_scores: bool
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint8]]: ...
    @property
    def kernel(self) -> str: ...
