"""`Classifier`: a parameter set on a runtime, classifying arrays and IDX files.

Thread safety: a Classifier may be used from any number of threads at once
(the parameters are read-only during inference and each call has its own
scratch memory); only `usec_per_image` is shared, and reports the call that
finished last. `close()` must not race with calls in flight.

    >>> import bnn
    >>> with bnn.Classifier("lfcW1A1", "mnist") as clf:
    ...     classes = clf.predict(images)          # (N, 28, 28) or (N, 784) uint8
    ...     out = clf.infer(images)                # classes, scores (N, C), bits (N, C)
    ...     clf.usec_per_image                     # inference time of the last call, us
    ...     clf.predict_file("t10k-images-idx3-ubyte.gz")

The decision rule is the parameter set's own (``bnn-meta.json``; the
original's highest-set-bit rule without it) unless `decision` names one.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .errors import ImageError, UnknownNameError
from .formats import idx
from .params import DECISION_RULES, PIXELS, ParamSet, load_params, network_spec
from .runtimes import Outputs, make_runtime

__all__ = ["Classifier", "as_images"]

# Images per read of an IDX file: bounds the memory whatever the file size.
CHUNK = 65536


def as_images(images, *, where: str = "images") -> np.ndarray:
    """Check and view `images` as a C-contiguous (N, 784) uint8 array; ImageError otherwise.

    Accepts (N, 28, 28) or (N, 784) uint8 arrays (or anything np.asarray makes one of).
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ImageError(f"{where}: expected uint8 pixels (0..255), got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[1:] == (28, 28):
        arr = arr.reshape(arr.shape[0], PIXELS)
    elif not (arr.ndim == 2 and arr.shape[1] == PIXELS):
        raise ImageError(f"{where}: expected shape (N, 28, 28) or (N, 784), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _is_tensor(images) -> bool:
    return type(images).__name__ == "Tensor" and type(images).__module__.startswith("torch")


def _check_tensor(images) -> None:
    """ImageError unless `images` is a uint8 tensor of shape (N, 28, 28) or (N, 784)."""
    if str(images.dtype) != "torch.uint8":
        raise ImageError(f"images: expected uint8 pixels (0..255), got dtype {images.dtype}")
    shape = tuple(images.shape)
    if not (len(shape) == 3 and shape[1:] == (28, 28) or len(shape) == 2 and shape[1] == PIXELS):
        raise ImageError(f"images: expected shape (N, 28, 28) or (N, 784), got {shape}")


def _progress_bar(total: int, name: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety: without tqdm, none
        return None
    return tqdm(total=total, unit="img", unit_scale=True, desc=name, leave=False)


class Classifier:
    """An LFC network with its parameters on one runtime.

    # Arguments
    network: "lfcW1A1" or "lfcW1A2"; None takes it from `params` (a QONNX file or `ParamSet`).
    params: a parameter-set name ("mnist", looked up by `bnn.params.find_params`),
        a folder path, a QONNX model (``*.onnx``, e.g. from Brevitas) or a `ParamSet`.
    runtime: "native" (alias "python_hw"), "reference" (alias "python_sw") or "torch".
    kernel: native kernel to force ("avx512", "avx2-bitslice", "avx2", "portable", ...: `bnn.runtimes.native`);
        None picks the fastest.
    threads: native threads; None uses every core.
    device: torch device for runtime="torch" ("cpu", "cuda", "cuda:1", "mps"); None: the best available.
    decision: "highest_bit" or "argmax"; None takes the parameter set's rule.
    params_path: extra folders to search for `params` names.
    """

    def __init__(
        self,
        network: str | None,
        params: str | os.PathLike | ParamSet = "mnist",
        runtime: str = "native",
        *,
        kernel: str | None = None,
        threads: int | None = None,
        decision: str | None = None,
        params_path=None,
        device: str | None = None,
    ):
        if network is not None:
            network_spec(network)
        self.params = load_params(network, params, params_path)
        if decision is not None and decision not in DECISION_RULES:
            raise UnknownNameError(f"unknown decision rule {decision!r}; known: {', '.join(DECISION_RULES)}")
        self.decision = decision or self.params.decision
        # How the runtime was asked for: a pickled classifier is rebuilt from this and its parameters.
        self._settings = {"runtime": runtime, "kernel": kernel, "threads": threads, "device": device}
        self._runtime = make_runtime(self.params, **self._settings)
        #: Inference time per image of the last call, in microseconds (file reading excluded).
        self.usec_per_image: float | None = None

    @property
    def network(self) -> str:
        return self.params.network

    @property
    def classes(self) -> list[str]:
        """Class names, index = class number."""
        return list(self.params.classes)

    @property
    def runtime(self) -> str:
        """The runtime that runs: "native" or "reference"."""
        return self._runtime.name

    @property
    def kernel(self) -> str:
        """The kernel that runs: a native one ("avx2-bitslice", "avx2", ...), "numpy", or torch's "device/dtype"."""
        return self._runtime.kernel

    def class_name(self, index: int) -> str:
        return self.params.classes[index]

    def infer(self, images, *, as_tensors: bool = False) -> Outputs:
        """Classes (N,) int32, scores (N, C) int32 (last-layer accumulators) and bits (N, C) bool.

        `images` may be a torch tensor: on the torch runtime's device it is
        used in place. `as_tensors` (torch runtime) returns torch tensors on
        that device instead of numpy arrays.
        """
        return self._infer(images, scores=True, as_tensors=as_tensors)

    def predict(self, images, *, as_tensors: bool = False) -> np.ndarray:
        """Class index of each image, (N,) int32 (a tensor on the device with `as_tensors`).

        A dask array of images gives a lazy dask array of classes, one task per
        block, this classifier sent once to each worker.
        """
        if type(images).__module__.startswith("dask."):
            return self._predict_dask(images)
        return self._infer(images, scores=False, as_tensors=as_tensors).classes

    def _predict_dask(self, images):
        """A lazy dask array of classes (N,) int32 for a dask array (N, 28, 28) or (N, 784) of uint8.

        One task per block of images; this classifier is one node of the
        graph, so each worker receives (and builds) it once.
        """
        import dask

        if images.dtype != np.uint8 or images.ndim not in (2, 3):
            raise ImageError(f"dask images: expected uint8 (N, 28, 28) or (N, 784), got {images.dtype} {images.shape}")
        images = images.rechunk({i: -1 for i in range(1, images.ndim)})
        node = dask.delayed(self, traverse=False)
        return images.map_blocks(
            _predict_block, node, drop_axis=list(range(1, images.ndim)), dtype=np.int32, meta=np.zeros(0, np.int32)
        )

    def _infer(self, images, *, scores: bool, as_tensors: bool) -> Outputs:
        on_device = hasattr(self._runtime, "run_tensor")  # the torch runtime
        if as_tensors and not on_device:
            raise UnknownNameError(f"as_tensors=True needs runtime='torch', not {self.runtime!r}")
        if _is_tensor(images):
            _check_tensor(images)
            if not on_device:
                images = images.cpu().numpy()
        if not (on_device and (as_tensors or _is_tensor(images))):
            return self._timed(as_images(images), scores=scores)
        start = time.perf_counter()
        out = self._runtime.run_tensor(images, self.decision)
        out = out if as_tensors else Outputs(*(t.cpu().numpy() for t in out))
        self._runtime.synchronize()  # the device's work is done when the time is taken
        n = len(out.classes)
        self.usec_per_image = (time.perf_counter() - start) * 1e6 / n if n else 0.0
        return out

    def classify_image(self, image) -> int:
        """Class of one picture of a digit (path, PIL image or array), MNIST-style preprocessed (`bnn.images`)."""
        from .formats.images import load_image

        return int(self.predict(load_image(image)[None])[0])

    def predict_file(self, path: str | os.PathLike, *, chunk_size: int = CHUNK, progress: bool = False) -> np.ndarray:
        """Classes of every image of an IDX3 file, read in chunks (memory independent of file size).

        `progress` shows a progress bar (tqdm, on stderr) when the file holds
        more than one chunk.
        """
        parts, elapsed, count = [], 0.0, 0
        total = idx.read_header(path).shape[0]
        bar = _progress_bar(total, str(path)) if progress and total > chunk_size else None
        for chunk in idx.iter_images(path, chunk_size=chunk_size):
            start = time.perf_counter()
            parts.append(self._run(np.ascontiguousarray(chunk.reshape(len(chunk), PIXELS)), scores=False).classes)
            elapsed += time.perf_counter() - start
            count += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        self.usec_per_image = elapsed * 1e6 / count if count else 0.0
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def _timed(self, images: np.ndarray, *, scores: bool) -> Outputs:
        start = time.perf_counter()
        out = self._run(images, scores=scores)
        n = images.shape[0]
        self.usec_per_image = (time.perf_counter() - start) * 1e6 / n if n else 0.0
        return out

    def _run(self, images: np.ndarray, *, scores: bool) -> Outputs:
        # Runtime calls of a bounded size (the runtime's `chunk`), so that Ctrl-C
        # is served between them within about 0.1 s.
        chunk = self._runtime.chunk if self._runtime is not None else 1
        if images.shape[0] <= chunk:
            return self._call(images, scores)
        parts = [self._call(images[s : s + chunk], scores) for s in range(0, images.shape[0], chunk)]
        return Outputs(*(np.concatenate(field) for field in zip(*parts)))

    def _call(self, images: np.ndarray, scores: bool) -> Outputs:
        if self._runtime is None:
            raise RuntimeError("classifier is closed")
        return self._runtime.run(images, self.decision, scores=scores)

    def close(self) -> None:
        """Release the packed parameters (the original's board reset); the classifier is unusable after."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def __getstate__(self) -> dict:
        """Pickled as its parameters and settings, never as a native handle (Dask ships it so)."""
        if self._runtime is None:
            raise RuntimeError("classifier is closed")
        return {"params": self.params, "decision": self.decision, "settings": self._settings}

    def __setstate__(self, state: dict) -> None:
        self.params, self.decision, self._settings = state["params"], state["decision"], state["settings"]
        self._runtime = make_runtime(self.params, **self._settings)
        self.usec_per_image = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        source = self.params.source or "in memory"
        if self._runtime is None:
            return f"<{type(self).__name__} {self.network} params={source} closed>"
        threads = getattr(self._runtime, "threads", 1)
        return (
            f"<{type(self).__name__} {self.network} params={source} runtime={self.runtime} "
            f"kernel={self.kernel} threads={threads} decision={self.decision} classes={len(self.classes)}>"
        )


def _predict_block(block: np.ndarray, classifier: Classifier) -> np.ndarray:
    """One dask block's classes (a module-level function: tasks are pickled by reference)."""
    return classifier.predict(np.ascontiguousarray(block.reshape(len(block), PIXELS)))
