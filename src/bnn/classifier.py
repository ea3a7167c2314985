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
from .params import DECISION_RULES, ParamSet, load_params, network_spec
from .runtimes import Outputs, make_runtime

__all__ = ["Classifier", "as_images"]

# Images per read of an IDX file: bounds the memory whatever the file size.
CHUNK = 65536


def as_images(images, *, where: str = "images", shape: tuple[int, ...] = (28, 28)) -> np.ndarray:
    """Check and view `images` as a C-contiguous (N, P) uint8 array; ImageError otherwise.

    `shape` is one image's: (28, 28) for an LFC (P = 784), (32, 32, 3) for a CNV (P = 3072, pixels
    interleaved: height x width x channel). Accepts (N, *shape) or (N, P) uint8 arrays (or anything
    np.asarray makes one of).
    """
    arr = np.asarray(images)
    size = int(np.prod(shape))
    if arr.dtype != np.uint8:
        raise ImageError(f"{where}: expected uint8 pixels (0..255), got dtype {arr.dtype}")
    if arr.ndim == 1 + len(shape) and arr.shape[1:] == tuple(shape):
        arr = arr.reshape(arr.shape[0], size)
    elif not (arr.ndim == 2 and arr.shape[1] == size):
        raise ImageError(f"{where}: expected shape {_shapes(shape)}, got {arr.shape}")
    return np.ascontiguousarray(arr)


def _shapes(shape: tuple[int, ...]) -> str:
    return f"(N, {', '.join(map(str, shape))}) or (N, {int(np.prod(shape))})"


def _is_tensor(images) -> bool:
    return type(images).__name__ == "Tensor" and type(images).__module__.startswith("torch")


def _check_tensor(images, shape: tuple[int, ...]) -> None:
    """ImageError unless `images` is a uint8 tensor of shape (N, *shape) or (N, P)."""
    if str(images.dtype) != "torch.uint8":
        raise ImageError(f"images: expected uint8 pixels (0..255), got dtype {images.dtype}")
    got, size = tuple(images.shape), int(np.prod(shape))
    if not (got[1:] == tuple(shape) or len(got) == 2 and got[1] == size):
        raise ImageError(f"images: expected shape {_shapes(shape)}, got {got}")


def _progress_bar(total: int, name: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety: without tqdm, none
        return None
    return tqdm(total=total, unit="img", unit_scale=True, desc=name, leave=False)


class Classifier:
    """A network (LFC or CNV) with its parameters on one runtime.

    # Arguments
    network: "lfcW1A1", "lfcW1A2", "cnvW1A1", "cnvW1A2" or "cnvW2A2"; None takes it from `params`
        (a QONNX file, a folder or a `ParamSet`).
    params: a parameter-set name ("mnist", "cifar10", looked up by `bnn.params.find_params`; None:
        the network's default, mnist or cifar10),
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
        params: str | os.PathLike | ParamSet | None = None,
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
        """A lazy dask array of classes (N,) int32 for a dask array of uint8 images (N, *image_shape) or (N, P).

        One task per block of images; this classifier is one node of the
        graph, so each worker receives (and builds) it once.
        """
        import dask

        shape = self.params.image_shape
        if images.dtype != np.uint8 or images.ndim not in (2, 1 + len(shape)):
            raise ImageError(f"dask images: expected uint8 {_shapes(shape)}, got {images.dtype} {images.shape}")
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
            _check_tensor(images, self.params.image_shape)
            if not on_device:
                images = images.cpu().numpy()
        if not (on_device and (as_tensors or _is_tensor(images))):
            return self._timed(as_images(images, shape=self.params.image_shape), scores=scores)
        start = time.perf_counter()
        out = self._runtime.run_tensor(images, self.decision)
        out = out if as_tensors else Outputs(*(t.cpu().numpy() for t in out))
        self._runtime.synchronize()  # the device's work is done when the time is taken
        n = len(out.classes)
        self.usec_per_image = (time.perf_counter() - start) * 1e6 / n if n else 0.0
        return out

    def classify_image(self, image) -> int:
        """Class of one picture (path, bytes, PIL image or array), preprocessed for the network: an LFC's
        MNIST-style digit (`bnn.formats.images.load_image`), a CNV's 32x32 thumbnail
        (`bnn.formats.images.load_cnv_image`, the original's image_to_cifar)."""
        return int(self.predict(self.preprocess(image)[None])[0])

    def preprocess(self, image) -> np.ndarray:
        """One picture as this network's input image: (28, 28) or (32, 32, 3) uint8."""
        return self.picture_loader()(image)

    def picture_loader(self):
        """The function that makes this network's input image of a picture (picklable, for worker processes)."""
        from .formats.images import load_cnv_image, load_image

        return load_cnv_image if self.params.spec.convolutional else load_image

    def decode(self, files, *, progress: bool = False, workers: int | None = None) -> np.ndarray:
        """(N, *image_shape) uint8 of picture files, each as `preprocess` makes it (`bnn.formats.folders.decode`)."""
        from .formats.folders import decode

        loader, shape = self.picture_loader(), self.params.image_shape
        return decode([os.fspath(f) for f in files], progress=progress, workers=workers, load=loader, shape=shape)

    def predict_file(self, path: str | os.PathLike, *, chunk_size: int = CHUNK, progress: bool = False) -> np.ndarray:
        """Classes of every image of a file, read in chunks (memory independent of file size): an IDX3
        file for an LFC, a CIFAR-10 batch (binary or python) for a CNV.

        `progress` shows a progress bar (tqdm, on stderr) when the file holds
        more than one chunk.
        """
        return self._file_outputs(path, chunk_size=chunk_size, progress=progress, scores=False).classes

    def infer_file(self, path: str | os.PathLike, *, chunk_size: int = CHUNK, progress: bool = False) -> Outputs:
        """`infer` over every image of a file (as `predict_file` reads it): classes, scores and bits."""
        return self._file_outputs(path, chunk_size=chunk_size, progress=progress, scores=True)

    def _file_outputs(self, path, *, chunk_size: int, progress: bool, scores: bool) -> Outputs:
        parts, elapsed, count = [], 0.0, 0
        files = self._data_files()
        total = files.count(os.fspath(path)) if progress else 0  # counted only for the bar: no second read
        bar = _progress_bar(total, str(path)) if total > chunk_size else None
        for chunk in files.read(os.fspath(path), 0, None, chunk_size):  # (n, P) contiguous rows
            start = time.perf_counter()
            parts.append(self._run(chunk, scores=scores))
            elapsed += time.perf_counter() - start
            count += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        self.usec_per_image = elapsed * 1e6 / count if count else 0.0
        if not parts:
            c = len(self.classes)
            return Outputs(np.zeros(0, np.int32), np.zeros((0, c), np.int32), np.zeros((0, c), bool))
        return Outputs(*(np.concatenate(field) for field in zip(*parts)))

    def _data_files(self):
        """The dataset files this network reads (`bnn.inputs.data_files`: IDX for an LFC, CIFAR-10 for a CNV)."""
        from .inputs import data_files

        return data_files(self.params.spec.convolutional)

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
    return classifier.predict(np.ascontiguousarray(block.reshape(len(block), classifier.params.image_bytes)))
