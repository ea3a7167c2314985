"""BNN-PYNQ parameter folders: read them into a model, write them back byte for byte.

A parameter folder (``mnist/lfcW1A1``) holds, for layer L and processing
element P, ``L-P-weights.bin`` (little-endian uint64 words) and
``L-P-thres.bin`` (little-endian int64), plus ``classes.txt``. The hardware
folding (PE, SIMD) is undone here and nowhere else: a `Layer` holds the
logical matrices. The layout of the files is described with `read_params`
and `_unfold_layer` below; the arithmetic they feed, in `bnn.bits`.

    >>> from bnn.formats.pynq import read_params, write_params
    >>> p = read_params("bnn-pynq-params/mnist/lfcW1A1")
    >>> p.layers[0].weights.shape, p.layers[0].thresholds.shape
    ((1024, 832), (1024, 1))
    >>> write_params(p, "copy/lfcW1A1")       # identical files

A folder may carry ``bnn-meta.json`` beside the original files with what the
format cannot say: the decision rule (``"highest_bit"``, the original's, is
assumed without it), the SIMD widths, training provenance, and how pixels
are quantized when it is not the original's p >= 128 (``pixel_thresholds``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from .._atomic import replace_folder
from ..bits import PIXEL_THRESHOLD
from ..errors import ParamsError, ParamsNotFoundError
from ..paramset import NETWORKS, Conv, Layer, ParamSet, network_spec

__all__ = ["META_FILE", "read_params", "write_params"]

META_FILE = "bnn-meta.json"

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


def _read_classes(folder: Path) -> tuple[list[str], str, int]:
    """(names, line ending, line endings after the last name): what writes the same bytes back."""
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
    tail = text[len(text.rstrip("\r\n")) :]
    return lines, newline, tail.count("\n") or tail.count("\r")


def _unfold_layer(
    folder: Path, index: int, files: dict, simd: int, n_thresholds: int, *, weight_bits: int = 1, mw: int | None = None
) -> Layer:
    """One layer from its PE files. Word nf*SF + sf of PE P's weights holds neuron nf*PE + P's columns
    sf*SIMD .. sf*SIMD + SIMD - 1, `weight_bits` bits each, least significant first; its thresholds file
    holds NF x NT int64 (none for a layer without thresholds, whose columns `mw` must then be given)."""
    pes = sorted(files)
    where = f"{folder}: layer {index}"
    if pes != list(range(len(pes))):
        missing = sorted(set(range(max(pes) + 1)) - set(pes))
        raise ParamsError(f"{where}: missing files for processing elements {missing}")
    pe = len(pes)
    kinds = (("weights", "weights"), ("thresholds", "thres")) if n_thresholds else (("weights", "weights"),)
    for p in pes:
        for _, key in kinds:
            if key not in files[p]:
                raise ParamsError(f"{folder / f'{index}-{p}-{key}.bin'}: missing parameter file")
    counts = {}
    for kind, key in kinds:
        counts[key] = [_word_count(files[p][key], kind) for p in pes]
        odd = next((p for p in pes if counts[key][p] != counts[key][0]), None)
        if odd is not None:
            raise ParamsError(
                f"{files[odd][key]}: {counts[key][odd] * 8} bytes, but {files[0][key].name} has "
                f"{counts[key][0] * 8}: every {kind} file of a layer has the same size"
            )
    weights = [np.fromfile(files[p]["weights"], dtype="<u8") for p in pes]
    if n_thresholds:
        thres = [np.fromfile(files[p]["thres"], dtype="<i8") for p in pes]
        n_t = thres[0].size
        if n_t % n_thresholds:
            raise ParamsError(f"{files[0]['thres']}: {n_t} thresholds is not a multiple of {n_thresholds} per neuron")
        nf = n_t // n_thresholds
    else:
        sf_known = mw // simd
        if weights[0].size % sf_known:
            raise ParamsError(
                f"{files[0]['weights']}: {weights[0].size} words are not whole rows of {sf_known} words "
                f"({mw} columns, SIMD {simd})"
            )
        nf = weights[0].size // sf_known
        # A layer the hardware reads without thresholds may still have threshold files (streetview's last
        # layer does: one per neuron, never used); they are kept, so that the set is written back whole.
        if all("thres" in files[p] for p in pes):
            thres = [np.fromfile(files[p]["thres"], dtype="<i8") for p in pes]
            if any(t.size != thres[0].size for t in thres) or thres[0].size % nf:
                raise ParamsError(f"{files[0]['thres']}: unused thresholds, but not a whole number per neuron")
            n_thresholds = thres[0].size // nf
    if weights[0].size % nf:
        raise ParamsError(
            f"{files[0]['weights']}: {weights[0].size} words do not divide among the {nf} neurons "
            f"that {files[0]['thres'].name} gives this processing element"
        )
    sf = weights[0].size // nf
    mh, cols = nf * pe, sf * simd
    w = np.empty((mh, cols), dtype=np.uint8 if weight_bits == 1 else np.int8)
    t = np.empty((mh, n_thresholds), dtype=np.int64)
    shifts = np.arange(simd, dtype=np.uint64) * np.uint64(weight_bits)
    mask = np.uint64((1 << weight_bits) - 1)
    for p in pes:
        codes = ((weights[p].reshape(nf, sf, 1) >> shifts) & mask).astype(np.int16).reshape(nf, cols)
        if weight_bits == 2:  # two's complement ap_int<2>: codes 2, 3 are -2, -1
            codes = np.where(codes >= 2, codes - 4, codes)
        w[p::pe] = codes
        if n_thresholds:
            t[p::pe] = thres[p].reshape(nf, n_thresholds)
    return Layer(weights=w, thresholds=t, pe=pe, simd=simd)


def _read_convs(meta: dict, spec, folder: Path) -> tuple[Conv, ...]:
    """The convolutions' geometry: the network's own, or another recorded in bnn-meta.json."""
    recorded = meta.pop("convs", None)
    if recorded is None:
        return spec.convs
    try:
        return tuple(Conv(int(c), int(s), int(k), bool(p)) for c, s, k, p in recorded)
    except (TypeError, ValueError):
        raise ParamsError(f"{folder / META_FILE}: convs must be a list of [channels, size, kernel, pool]") from None


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
    n_layers = meta.pop("layers", spec.n_layers)  # another depth (an imported set) is recorded
    if not isinstance(n_layers, int) or not 2 <= n_layers <= len(simd):
        raise ParamsError(
            f"{folder / META_FILE}: layers must be 2..{len(simd)} (one SIMD width each), not {n_layers!r}"
        )
    convs = _read_convs(meta, spec, folder)
    layers = []
    for i in range(n_layers):
        if i not in files:
            raise ParamsError(f"{folder / f'{i}-0-weights.bin'}: missing parameter file (layer {i} of {network})")
        conv = convs[i] if i < len(convs) else None
        layer = _unfold_layer(
            folder,
            i,
            files[i],
            simd[i],
            spec.layer_thresholds(i, n_layers),
            weight_bits=spec.weight_bits,
            mw=layers[-1].mh if layers else None,
        )
        layer.conv = conv
        if conv is not None and i == 0:
            layer.threshold_bits = 24  # ap_fixed<24,16>: thresholds in 1/256 units (bnn.bits)
        if conv is not None and layer.mw != conv.columns:
            raise ParamsError(
                f"{folder}: layer {i} has {layer.mw} columns, but {network}'s {conv.kernel}x{conv.kernel} convolution "
                f"over {conv.channels} channels has {conv.columns}: is this a {network} set?"
            )
        layers.append(layer)
    extra = sorted(set(files) - set(range(n_layers)))
    if extra:
        raise ParamsError(f"{folder}: files for layer {extra[0]}, but {network} has {n_layers} layers")
    classes, newline, trailing = _read_classes(folder)
    pixel_thresholds = meta.pop("pixel_thresholds", [PIXEL_THRESHOLD])
    if not isinstance(pixel_thresholds, list) or not all(isinstance(t, int) for t in pixel_thresholds):
        raise ParamsError(f"{folder / META_FILE}: pixel_thresholds must be a list of integers")
    params = ParamSet(
        network=network,
        layers=layers,
        classes=classes,
        decision=meta.get("decision", spec.batch_decision),
        metadata=meta,
        source=folder,
        classes_newline=newline,
        classes_trailing_newlines=trailing,
        pixel_thresholds=tuple(pixel_thresholds),
    )
    params.validate()
    return params


def write_params(params: ParamSet, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `params` as a BNN-PYNQ parameter folder, the whole folder atomically.

    The folding is the one the layers carry (`Layer.pe`, `Layer.simd`).
    ``bnn-meta.json`` is written when the set has a decision rule other than
    the original's, or other metadata. The files are written into a folder
    beside `folder`, which then takes its place: a reader sees the old set or
    the new one, never a mix, and nothing of the old set survives. An
    existing non-empty folder raises FileExistsError unless `overwrite`; one
    holding anything but a parameter set's files always does (they would be lost).
    """
    params.validate()
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder}: folder exists and is not empty (pass overwrite=True to replace it)")
        foreign = sorted(e.name for e in folder.iterdir() if not _is_param_file(e))
        if foreign:
            raise FileExistsError(
                f"{folder}: holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which is not "
                "part of a parameter set; refusing to replace the folder (write to a new one)"
            )
    with replace_folder(folder) as tmp:
        _write_files(params, tmp)
    return folder


def _is_param_file(entry: Path) -> bool:
    return entry.is_file() and (bool(_FILE_RE.match(entry.name)) or entry.name in ("classes.txt", META_FILE))


def _write_files(params: ParamSet, folder: Path) -> None:
    for index, layer in enumerate(params.layers):
        pe, simd, wpi = layer.pe, layer.simd, layer.weight_bits
        nf, sf = layer.mh // pe, layer.mw // simd
        codes = np.ascontiguousarray(layer.weights.astype(np.int64) & ((1 << wpi) - 1), dtype=np.uint64)
        place = np.uint64(1) << (np.arange(simd, dtype=np.uint64) * np.uint64(wpi))
        for p in range(pe):
            fields = codes[p::pe].reshape(nf, sf, simd)
            words = (fields * place).sum(axis=2, dtype=np.uint64)
            (folder / f"{index}-{p}-weights.bin").write_bytes(words.astype("<u8").tobytes())
            if layer.n_thresholds:
                (folder / f"{index}-{p}-thres.bin").write_bytes(layer.thresholds[p::pe].astype("<i8").tobytes())
    nl = params.classes_newline
    text = nl.join(params.classes) + nl * params.classes_trailing_newlines
    (folder / "classes.txt").write_bytes(text.encode("utf-8"))
    meta = dict(params.metadata)
    simd = [layer.simd for layer in params.layers]
    if params.pixel_thresholds != (PIXEL_THRESHOLD,):  # not the original's p >= 128: the hardware cannot say it
        meta["pixel_thresholds"] = list(params.pixel_thresholds)
    if len(params.layers) != params.spec.n_layers:
        meta["layers"] = len(params.layers)
    convs = tuple(layer.conv for layer in params.layers if layer.conv is not None)
    if convs != params.spec.convs:  # another geometry than the network's own
        meta["convs"] = [[c.channels, c.size, c.kernel, int(c.pool)] for c in convs]
    if meta or params.decision != params.spec.batch_decision or tuple(simd) != params.spec.simd:
        meta.update(network=params.network, decision=params.decision, simd=simd)
        (folder / META_FILE).write_bytes((json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))
