"""The ISA files export their kernel entry points and nothing else (kernels.h says why).

Each x86 kernel file is compiled as CMakeLists.txt compiles it, but at -O0
(where nothing is inlined away, so a stray std:: template or helper with
external linkage shows), and its object file's global and weak symbols are
read with nm: every one must be an entry point named after the ISA.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "src" / "native"


def _isa_flags() -> dict[str, list[str]]:
    """ISA file -> its compile options, as CMakeLists.txt sets them."""
    text = (ROOT / "CMakeLists.txt").read_text()
    found = re.findall(
        r"set_source_files_properties\(src/native/(kernel_\w+)\.cpp PROPERTIES\s+COMPILE_OPTIONS \"([^\"]+)\"", text
    )
    return {name: flags.split(";") for name, flags in found}


def exported(source: Path, flags: list[str], tmp_path: Path) -> list[str]:
    """The demangled global and weak symbols an object file of `source` defines."""
    obj = tmp_path / f"{source.stem}.o"
    subprocess.run(["g++", "-std=c++17", "-O0", *flags, "-c", str(source), "-o", str(obj)], check=True)
    out = subprocess.run(["nm", "-C", "--defined-only", str(obj)], capture_output=True, text=True, check=True).stdout
    # Upper-case types are global (T text, D data, B bss, R read-only), W/V weak, u unique global.
    return [line.split(" ", 2)[2] for line in out.splitlines() if line.split(" ")[1] in set("TDBRWVu")]


def _entry_points_only(symbols: list[str], isa: str) -> list[str]:
    entry = re.compile(rf"^bnn::kernels::\w+_{isa}(_bitslice)?\(")
    return [s for s in symbols if not entry.match(s)]


@pytest.fixture(scope="module")
def toolchain():
    if not (shutil.which("g++") and shutil.which("nm")):
        if IN_CI:
            pytest.fail("g++ and nm are needed (they build the native runtime)")
        pytest.skip("no g++ / nm here")


@pytest.mark.parametrize("name", sorted(_isa_flags()))
def test_an_isa_file_exports_only_its_entry_points(toolchain, tmp_path, name):
    isa = name.removeprefix("kernel_")
    symbols = exported(NATIVE / f"{name}.cpp", _isa_flags()[name], tmp_path)
    assert any(s.startswith(f"bnn::kernels::layer_{isa}(") for s in symbols)
    assert _entry_points_only(symbols, isa) == []


def test_the_check_sees_a_leaked_template(toolchain, tmp_path):
    leaky = tmp_path / "kernel_leaky.cpp"
    leaky.write_text(
        "#include <algorithm>\n#include <cstdint>\nnamespace bnn::kernels {\n"
        "int layer_leaky(int a, int b) { return std::clamp<std::int64_t>(a, 0, b); }\n}\n"
    )
    leaked = _entry_points_only(exported(leaky, ["-mavx2"], tmp_path), "leaky")
    assert any("std::clamp<long>" in s for s in leaked)


def test_both_x86_files_are_checked():
    assert set(_isa_flags()) == {"kernel_avx2", "kernel_avx512"}
