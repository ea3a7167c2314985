"""Type stubs of the native extension (src/native/bindings.cpp)."""

import numpy as np
import numpy.typing as npt

def available_kernels() -> list[str]: ...
def probe(kernel: str, seconds: float = 0.3) -> float: ...

class Network:
    def __init__(
        self,
        layers: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]],
        activation_bits: int,
        n_classes: int,
        pixels: int,
        kernel: str = "",
        pixel_thresholds: list[int] = [128],  # one threshold (bits) or two (3 levels, W1A2): bnn.bits.pixel_values
    ) -> None: ...
    def run(
        self, images: npt.NDArray[np.uint8], threads: int, argmax: bool, want_scores: bool
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.uint8]]: ...
    @property
    def kernel(self) -> str: ...
