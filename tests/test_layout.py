"""The package's structure: imports point down, never in a cycle (lazy imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bnn"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    out["bnn._native"] = PACKAGE / "_native.pyi"  # the extension: a leaf
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the bnn modules it imports anywhere in its body."""
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        if path.suffix != ".py":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[name].add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
    return {k: {t for t in v if t in modules and t != k} for k, v in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_sees_a_lazy_import_cycle():
    graph = import_graph()
    graph["bnn.runtimes.base"].add("bnn.cli")  # what train.main() once did: a leaf importing an application
    assert find_cycle(graph) is not None


def test_leaves_import_nothing_of_the_package():
    graph = import_graph()
    for leaf in ("bnn.errors", "bnn.bits", "bnn._atomic", "bnn.runtimes.base", "bnn.metrics"):
        assert graph[leaf] == set(), leaf


#: The levels the package docstring documents, bottom up; a module is at the level of its longest prefix.
LEVELS = {
    "bnn.bits": 0,
    "bnn.errors": 0,
    "bnn.metrics": 0,
    "bnn.original": 0,
    "bnn.results": 0,
    "bnn._atomic": 0,
    "bnn._native": 0,
    "bnn.runtimes.base": 0,
    "bnn.serve.openapi": 0,
    "bnn.paramset": 1,
    "bnn.thresholding": 1,
    "bnn.formats": 2,
    "bnn.params": 2,
    "bnn.datasets": 2,
    "bnn.inputs": 2,
    "bnn.runtimes": 3,
    "bnn": 4,
    "bnn.classifier": 4,
    "bnn.compat": 4,
    "bnn.info": 4,
    "bnn.plot": 4,
    "bnn.train": 4,
    "bnn.cli": 5,
    "bnn.__main__": 5,
    "bnn.bench": 5,
    "bnn.distributed": 5,
    "bnn.serve": 5,
}


def level(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LEVELS:
            return LEVELS[".".join(parts[:n])]
    raise AssertionError(f"{module} has no level: add it to LEVELS and the package docstring")


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if level(b) > level(a))


def test_imports_point_down_the_documented_levels():
    assert upward(import_graph()) == []


def test_the_level_check_sees_an_arrow_up():
    graph = import_graph()
    graph["bnn.classifier"].add("bnn.distributed")  # a library module importing an application
    assert upward(graph) == ["bnn.classifier -> bnn.distributed"]


def test_runtime_info_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, bnn; bnn.runtime_info(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_old_import_paths_still_work():
    import subprocess
    import sys

    code = (
        "import bnn.idx, bnn.images, bnn.native, bnn.reference\n"
        "from bnn.idx import read_images\n"
        "from bnn.native import available_kernels\n"
        "import bnn.formats.idx, bnn.runtimes.native\n"
        "print(bnn.idx is bnn.formats.idx, bnn.native is bnn.runtimes.native,"
        " read_images is bnn.formats.idx.read_images)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True True True"
    )
