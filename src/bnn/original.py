"""What the original BNN-PYNQ measured on its PYNQ-Z1 board, as its notebooks print it.

One table for every figure the package compares itself with (`bnn bench`,
the plots, the benchmarks): the FPGA's time per image and its printed rate
(``Classification rate: ... images per second``, the whole call's rate, so
not exactly 1e6 / usec), and the board's ARM core running the software
path where the notebook shows it.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ORIGINAL", "OriginalFigure", "fpga_rate"]


class OriginalFigure(NamedTuple):
    """One line of an original notebook: network, where it ran, us per image, images/s."""

    network: str
    runtime: str
    usec_per_image: float
    images_per_s: float


ORIGINAL: tuple[OriginalFigure, ...] = (
    # LFC-QNN_MNIST.ipynb
    OriginalFigure("lfcW1A1", "PYNQ FPGA", 2.80, 356_633.39),
    OriginalFigure("lfcW1A2", "PYNQ FPGA", 2.80, 356_633.39),
    OriginalFigure("lfcW1A1", "PYNQ ARM (software)", 17_189.20, 1e6 / 17_189.20),
    OriginalFigure("lfcW1A2", "PYNQ ARM (software)", 128_274.80, 1e6 / 128_274.80),
    # CNV-QNN_Cifar10_Testset.ipynb (10,000 CIFAR-10 test images)
    OriginalFigure("cnvW1A1", "PYNQ FPGA", 109.29, 9_149.98),
    OriginalFigure("cnvW1A2", "PYNQ FPGA", 109.28, 9_150.50),
    OriginalFigure("cnvW2A2", "PYNQ FPGA", 387.55, 2_580.30),
)


def fpga_rate(network: str) -> float:
    """The PYNQ FPGA's images/s for `network`, as its notebook printed it."""
    for figure in ORIGINAL:
        if figure.network == network and figure.runtime == "PYNQ FPGA":
            return figure.images_per_s
    raise KeyError(f"no FPGA figure for {network!r}")
