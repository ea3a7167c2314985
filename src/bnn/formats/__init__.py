"""File formats: how images and parameter sets are read and written.

`idx` (MNIST's IDX files), `images` (PNG/JPEG pictures and their
preprocessing), `folders` (labelled picture folders: one subfolder per
class), `pynq` (BNN-PYNQ parameter folders), `qonnx` (QONNX models, in and
out; needs onnx). A new format is a module here.
"""

from __future__ import annotations

from . import idx

__all__ = ["idx"]
