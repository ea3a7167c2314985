"""BNN-PYNQ parameter folders: read them into a model, write them back byte for byte.

A parameter folder (``mnist/lfcW1A1``) holds, for layer L and processing
element P, ``L-P-weights.bin`` (little-endian uint64 words) and
``L-P-thres.bin`` (little-endian int64), plus ``classes.txt``. The hardware
folding (PE, SIMD) is undone here and nowhere else: a `Layer` holds the
logical matrices. The full format is in the spec (shared/spec/LFC.md) and
summarised in `bnn.bits`.

    >>> from bnn.params import read_params, write_params
    >>> p = read_params("bnn-pynq-params/mnist/lfcW1A1")
    >>> p.layers[0].weights.shape, p.layers[0].thresholds.shape
    ((1024, 832), (1024, 1))
    >>> write_params(p, "copy/lfcW1A1")       # identical files

A folder may carry ``bnn-meta.json`` beside the original files with what the
format cannot say: the decision rule (``"highest_bit"``, the original's, is
assumed without it), the SIMD widths, and training provenance.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .errors import ParamsError, ParamsNotFoundError, UnknownNameError

__all__ = [
    "DECISION_RULES",
    "META_FILE",
    "NETWORKS",
    "Layer",
    "NetworkSpec",
    "ParamSet",
    "available_params",
    "find_params",
    "read_params",
    "write_params",
]

META_FILE = "bnn-meta.json"
#: "highest_bit": index of the highest set output bit, 0 when none (the original's batch rule).
#: "argmax": index of the largest last-layer accumulator, the lowest index on ties.
DECISION_RULES = ("highest_bit", "argmax")
PIXELS = 28 * 28


@dataclass(frozen=True)
class NetworkSpec:
    """What the original hardware fixes for a network: activation bits and folding."""

    name: str
    activation_bits: int
    simd: tuple[int, ...]
    pe: tuple[int, ...]
    #: thresholds per neuron, per layer (2 for a 3-level activation, 1 for a bit).
    thresholds: tuple[int, ...]
    hidden: int = 1024

    @property
    def n_layers(self) -> int:
        return len(self.simd)


NETWORKS: dict[str, NetworkSpec] = {
    "lfcW1A1": NetworkSpec("lfcW1A1", 1, (64, 32, 64, 8), (32, 64, 32, 16), (1, 1, 1, 1)),
    "lfcW1A2": NetworkSpec("lfcW1A2", 2, (64, 32, 64, 8), (32, 64, 32, 16), (2, 2, 2, 1)),
}


def network_spec(name: str) -> NetworkSpec:
    """The `NetworkSpec` called `name`; UnknownNameError listing the known ones otherwise."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown network {name!r}; known networks: {', '.join(NETWORKS)}") from None


@dataclass
class Layer:
    """One fully connected layer, unfolded from the hardware layout.

    weights: (MH, MW) uint8, 1 for weight +1 and 0 for -1 (row = output neuron).
    thresholds: (MH, NT) int64 as stored in the files; the hardware uses their
        low 16 bits as a signed number (`effective_thresholds`).
    pe, simd: the hardware folding the files were written with.
    """

    weights: np.ndarray
    thresholds: np.ndarray
    pe: int
    simd: int

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

    def effective_thresholds(self) -> np.ndarray:
        """Thresholds as the hardware compares them: int16 wrap-around of the stored int64, as int32."""
        return self.thresholds.astype(np.int16).astype(np.int32)

    def check(self, where: str) -> None:
        mh, mw = self.weights.shape
        if self.pe < 1 or mh % self.pe:
            raise ParamsError(f"{where}: {mh} neurons do not fold onto PE={self.pe}")
        if not 1 <= self.simd <= 64 or mw % self.simd:
            raise ParamsError(f"{where}: {mw} columns do not fold onto SIMD={self.simd} (1..64)")
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
    classes_final_newline: bool = True

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
        if len(self.layers) != spec.n_layers:
            raise ParamsError(f"{where}: {self.network} has {spec.n_layers} layers, found {len(self.layers)}")
        for i, layer in enumerate(self.layers):
            layer.check(f"{where}: layer {i}")
            if layer.n_thresholds != spec.thresholds[i]:
                raise ParamsError(
                    f"{where}: layer {i} of {self.network} needs {spec.thresholds[i]} threshold(s) "
                    f"per neuron, found {layer.n_thresholds}"
                )
            if i == 0 and layer.mw < PIXELS:
                raise ParamsError(f"{where}: layer 0 has {layer.mw} inputs, fewer than the {PIXELS} pixels")
            if i > 0 and layer.mw != self.layers[i - 1].mh:
                raise ParamsError(
                    f"{where}: layer {i} has {layer.mw} inputs but layer {i - 1} has {self.layers[i - 1].mh} outputs"
                )
        if not self.classes:
            raise ParamsError(f"{where}: no class names")
        if len(self.classes) > self.layers[-1].mh:
            raise ParamsError(
                f"{where}: {len(self.classes)} classes but the last layer has only {self.layers[-1].mh} outputs"
            )


_FILE_RE = re.compile(r"^(\d+)-(\d+)-(weights|thres)\.bin$")


# A BNN-PYNQ weights or thresholds file of one processing element is a few KiB;
# anything this large is not one, and is refused before it is read.
_MAX_FILE = 64 << 20


def _word_count(path: Path, what: str) -> int:
    """Number of 64-bit words in `path`, checked before anything is read."""
    size = path.stat().st_size
    if size == 0 or size % 8:
        raise ParamsError(f"{path}: {what} file of {size} bytes; expected a non-zero multiple of 8")
    if size > _MAX_FILE:
        raise ParamsError(f"{path}: {what} file of {size} bytes is far larger than any parameter file")
    return size // 8


def _read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParamsError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ParamsError(f"{path}: expected a JSON object")
    return meta


def _read_classes(folder: Path) -> tuple[list[str], str, bool]:
    path = folder / "classes.txt"
    if not path.is_file():
        raise ParamsError(f"{path}: missing classes.txt (one class name per line)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text: {exc}") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ParamsError(f"{path}: no class names")
    return lines, newline, text.endswith(("\n", "\r"))


def _unfold_layer(folder: Path, index: int, files: dict, simd: int, n_thresholds: int) -> Layer:
    pes = sorted(files)
    where = f"{folder}: layer {index}"
    if pes != list(range(len(pes))):
        missing = sorted(set(range(max(pes) + 1)) - set(pes))
        raise ParamsError(f"{where}: missing files for processing elements {missing}")
    pe = len(pes)
    for p in pes:
        for kind in ("weights", "thres"):
            if kind not in files[p]:
                raise ParamsError(f"{folder / f'{index}-{p}-{kind}.bin'}: missing parameter file")
    counts = {}
    for kind, key in (("weights", "weights"), ("thresholds", "thres")):
        counts[key] = [_word_count(files[p][key], kind) for p in pes]
        odd = next((p for p in pes if counts[key][p] != counts[key][0]), None)
        if odd is not None:
            raise ParamsError(
                f"{files[odd][key]}: {counts[key][odd] * 8} bytes, but {files[0][key].name} has "
                f"{counts[key][0] * 8}: every {kind} file of a layer has the same size"
            )
    weights = [np.fromfile(files[p]["weights"], dtype="<u8") for p in pes]
    thres = [np.fromfile(files[p]["thres"], dtype="<i8") for p in pes]
    n_t = thres[0].size
    if n_t % n_thresholds:
        raise ParamsError(f"{files[0]['thres']}: {n_t} thresholds is not a multiple of {n_thresholds} per neuron")
    nf = n_t // n_thresholds
    if weights[0].size % nf:
        raise ParamsError(
            f"{files[0]['weights']}: {weights[0].size} words do not divide among the {nf} neurons "
            f"that {files[0]['thres'].name} gives this processing element"
        )
    sf = weights[0].size // nf
    mh, mw = nf * pe, sf * simd
    w = np.empty((mh, mw), dtype=np.uint8)
    t = np.empty((mh, n_thresholds), dtype=np.int64)
    shifts = np.arange(simd, dtype=np.uint64)
    for p in pes:
        words = weights[p].reshape(nf, sf, 1)
        # Word nf*SF+sf, bit i -> neuron nf*PE+P, column sf*SIMD+i.
        w[p::pe] = ((words >> shifts) & np.uint64(1)).astype(np.uint8).reshape(nf, mw)
        t[p::pe] = thres[p].reshape(nf, n_thresholds)
    return Layer(weights=w, thresholds=t, pe=pe, simd=simd)


def read_params(folder: str | os.PathLike, network: str | None = None) -> ParamSet:
    """Read a BNN-PYNQ parameter folder into a `ParamSet`.

    # Arguments
    folder: the folder with the ``L-P-*.bin`` files and ``classes.txt``.
    network: "lfcW1A1" or "lfcW1A2". None takes it from ``bnn-meta.json`` or
        the folder's name.

    # Raises
    ParamsError: missing, mis-sized or inconsistent files, each named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ParamsNotFoundError(f"{folder}: parameter folder not found")
    meta = _read_meta(folder)
    if network is None:
        network = meta.get("network", folder.name)
        if network not in NETWORKS:
            raise ParamsError(f"{folder}: cannot tell the network ({', '.join(NETWORKS)}): name it or add {META_FILE}")
    spec = network_spec(network)
    if meta.get("network", network) != network:
        raise ParamsError(f"{folder / META_FILE}: parameters are for {meta['network']}, not {network}")
    files: dict[int, dict[int, dict[str, Path]]] = {}
    for entry in folder.iterdir():
        m = _FILE_RE.match(entry.name)
        if m:
            files.setdefault(int(m[1]), {}).setdefault(int(m[2]), {})[m[3]] = entry
    simd = tuple(meta.get("simd", spec.simd))
    layers = []
    for i in range(spec.n_layers):
        if i not in files:
            raise ParamsError(f"{folder / f'{i}-0-weights.bin'}: missing parameter file (layer {i} of {network})")
        layers.append(_unfold_layer(folder, i, files[i], simd[i], spec.thresholds[i]))
    extra = sorted(set(files) - set(range(spec.n_layers)))
    if extra:
        raise ParamsError(f"{folder}: files for layer {extra[0]}, but {network} has {spec.n_layers} layers")
    classes, newline, final_newline = _read_classes(folder)
    params = ParamSet(
        network=network,
        layers=layers,
        classes=classes,
        decision=meta.get("decision", "highest_bit"),
        metadata=meta,
        source=folder,
        classes_newline=newline,
        classes_final_newline=final_newline,
    )
    params.validate()
    return params


def write_params(params: ParamSet, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `params` as a BNN-PYNQ parameter folder, each file atomically.

    The folding is the one the layers carry (`Layer.pe`, `Layer.simd`).
    ``bnn-meta.json`` is written when the set has a decision rule other than
    the original's, or other metadata. An existing non-empty folder raises
    FileExistsError unless `overwrite`.
    """
    params.validate()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder}: folder exists and is not empty (pass overwrite=True to replace its files)")
    folder.mkdir(parents=True, exist_ok=True)
    for index, layer in enumerate(params.layers):
        pe, simd = layer.pe, layer.simd
        nf, sf = layer.mh // pe, layer.mw // simd
        weights = np.ascontiguousarray(layer.weights, dtype=np.uint64)
        place = np.uint64(1) << np.arange(simd, dtype=np.uint64)
        for p in range(pe):
            bits = weights[p::pe].reshape(nf, sf, simd)
            words = (bits * place).sum(axis=2, dtype=np.uint64)
            _write_bytes(folder / f"{index}-{p}-weights.bin", words.astype("<u8").tobytes())
            _write_bytes(folder / f"{index}-{p}-thres.bin", layer.thresholds[p::pe].astype("<i8").tobytes())
    nl = params.classes_newline
    text = nl.join(params.classes) + (nl if params.classes_final_newline else "")
    _write_bytes(folder / "classes.txt", text.encode("utf-8"))
    meta = dict(params.metadata)
    spec = params.spec
    simd = [layer.simd for layer in params.layers]
    if meta or params.decision != "highest_bit" or tuple(simd) != spec.simd:
        meta.update(network=params.network, decision=params.decision, simd=simd)
        _write_bytes(folder / META_FILE, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return folder


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


# ---------------------------------------------------------------- look-up by name


def package_params_dir() -> Path:
    """The folder of parameter sets shipped inside the package."""
    return Path(str(resources.files("bnn") / "params"))


def search_path(params_path: str | os.PathLike | list | None = None) -> list[Path]:
    """Folders searched for parameter-set names, first match wins.

    Order: the `params_path` argument, then ``BNN_PARAMS_PATH`` (os.pathsep
    separated), then the package's own folder, so that what the user names
    overrides what ships, as with PATH.
    """
    places: list[Path] = []
    if params_path is not None:
        if isinstance(params_path, (str, os.PathLike)):
            params_path = str(params_path).split(os.pathsep)
        places += [Path(p) for p in params_path if str(p)]
    env = os.environ.get("BNN_PARAMS_PATH", "")
    places += [Path(p) for p in env.split(os.pathsep) if p]
    places.append(package_params_dir())
    return places


def find_params(network: str, name: str | os.PathLike, params_path=None) -> Path:
    """The folder of parameter set `name` for `network`, or a path given directly.

    `name` is a set name ("mnist") looked up as ``<place>/<name>/<network>``
    in `search_path`, or a path: a parameter folder, or a set folder with a
    ``<network>`` folder inside. ParamsNotFoundError
    lists every place tried.
    """
    network_spec(network)
    if not _is_simple_name(str(name)):
        # A set folder holding one folder per network, or a network's own folder.
        if (Path(name) / network).is_dir():
            return Path(name) / network
        if Path(name).is_dir():
            return Path(name)
        raise ParamsNotFoundError(f"{name}: parameter folder not found")
    tried = []
    for place in search_path(params_path):
        candidate = place / str(name) / network
        tried.append(candidate)
        if candidate.is_dir():
            return candidate
    raise ParamsNotFoundError(
        f"parameter set {str(name)!r} for {network} not found; tried:\n  "
        + "\n  ".join(str(t) for t in tried)
        + "\n(set BNN_PARAMS_PATH or pass params_path= or a folder path)"
    )


def _is_simple_name(name: str) -> bool:
    return bool(name) and "/" not in name and os.sep not in name and name not in (".", "..")


def available_params(network: str, params_path=None) -> list[str]:
    """Names of the parameter sets for `network` found in `search_path`, sorted, without duplicates."""
    network_spec(network)
    names = set()
    for place in search_path(params_path):
        if place.is_dir():
            names.update(d.name for d in place.iterdir() if (d / network).is_dir())
    return sorted(names)
