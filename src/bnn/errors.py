"""Exception types raised by `bnn`.

Every error caused by the user's input (a file, an array, a name) is a
`BnnError`; each also derives from the builtin type a Python user would
catch for that kind of mistake (`ValueError`, `FileNotFoundError`), and its
message names the file or argument and says what is wrong with it.
"""

from __future__ import annotations

__all__ = [
    "BnnError",
    "CifarError",
    "DownloadError",
    "IdxError",
    "ImageError",
    "MissingExtraError",
    "NativeUnavailableError",
    "ParamsError",
    "ParamsNotFoundError",
    "UnknownNameError",
    "UnsupportedError",
]


class BnnError(Exception):
    """Base class of every error `bnn` raises about its input."""


class IdxError(BnnError, ValueError):
    """An IDX file is malformed: bad magic, truncated, wrong element type or shape."""


class CifarError(BnnError, ValueError):
    """A CIFAR-10 batch file is malformed: not whole records, or not a readable python batch."""


class ImageError(BnnError, ValueError):
    """Images given as an array or picture have the wrong dtype, shape or size."""


class ParamsError(BnnError, ValueError):
    """A parameter folder is incomplete or inconsistent (missing or mis-sized files)."""


class ParamsNotFoundError(ParamsError, FileNotFoundError):
    """A parameter-set name was not found in any of the places searched."""


class UnknownNameError(BnnError, ValueError):
    """An unknown network, runtime, kernel or decision-rule name."""


class NativeUnavailableError(BnnError, RuntimeError):
    """The native extension is not built, a requested kernel cannot run on this CPU, or the native
    runtime cannot run this kind of network (yet)."""


class UnsupportedError(BnnError, NotImplementedError):
    """A runtime or format cannot handle this kind of network (yet); the message says what can."""


class MissingExtraError(BnnError, ImportError):
    """An optional dependency (torch, matplotlib, Pillow, ...) is not installed; the message says what to install."""


class DownloadError(BnnError, OSError):
    """A dataset is missing, a download failed, or its checksum did not match."""
