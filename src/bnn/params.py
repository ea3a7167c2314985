"""Parameter sets by name: where they are looked for, and loading them.

A set name ("mnist") is looked up as ``<place>/<name>/<network>`` in
`search_path`; a path names a folder directly. The file format itself is
`bnn.formats.pynq`; the data model `bnn.paramset`. Both are re-exported
here, as `bnn.params` has always offered them.

    >>> from bnn.params import find_params, read_params
    >>> p = read_params(find_params("lfcW1A1", "mnist"))
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ParamsNotFoundError, UnknownNameError
from .formats.pynq import META_FILE, read_params, write_params
from .paramset import (
    CNV_NETWORKS,
    DECISION_RULES,
    LFC_NETWORKS,
    NETWORKS,
    PIXELS,
    Conv,
    Layer,
    NetworkSpec,
    ParamSet,
    default_set,
    network_spec,
)

__all__ = [
    "CNV_NETWORKS",
    "DECISION_RULES",
    "LFC_NETWORKS",
    "META_FILE",
    "NETWORKS",
    "PIXELS",
    "Conv",
    "Layer",
    "NetworkSpec",
    "ParamSet",
    "available_params",
    "default_set",
    "find_params",
    "load_params",
    "network_spec",
    "package_params_dir",
    "read_params",
    "search_path",
    "write_params",
]


def load_params(network: str | None, source=None, params_path=None) -> ParamSet:
    """The `ParamSet` that `source` names for `network`: a `ParamSet`, a QONNX file (``*.onnx``), a set
    name or a folder; None: the network's default set (`default_set`). `network` may be None: a file or
    folder tells its own, a name means lfcW1A1."""
    if source is None:
        source = default_set(network)
    if isinstance(source, ParamSet):
        params = source
    elif str(source).endswith(".onnx"):
        from .formats.qonnx import read_qonnx

        params = read_qonnx(source)
    else:
        # A name is looked up for `network` (lfcW1A1 when None); a folder tells its own network when None.
        return read_params(find_params(network or "lfcW1A1", source, params_path), network)
    if network is not None and params.network != network:
        raise UnknownNameError(f"{params.source or 'parameter set'} is a {params.network} set, not {network}")
    return params


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
    ``<network>`` folder inside. A simple name found nowhere on the search
    path may still be such a folder in the current directory.
    ParamsNotFoundError lists every place tried.
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
    # Not a set name: a folder of that name here, as a user who just exported one would expect.
    for candidate in (Path(name) / network, Path(name)):
        tried.append(candidate)
        if (candidate / "classes.txt").is_file():
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
