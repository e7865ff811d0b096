"""The extension modules export PyInit_* and nothing else of their own.

Some toolchains link libstdc++ and libgcc into a shared module statically. Exported, that
copy's functions and data are partly interposed by the libstdc++.so the process already has
(numpy and torch load it), and the two copies' locale state mixes: on such a machine (a GPU
host's image, 2026-12) the model loader crashed with SIGSEGV in its first `ostream << long`.
CMakeLists.txt links with --exclude-libs,ALL so that archive members stay local; this checks
the result: every dynamic symbol a module defines is its PyInit_ or a vague-linkage (weak,
unique) template instantiation, never a strong function or object such as a static libstdc++'s
(a module built here with LDFLAGS=-static-libstdc++ and without the option exports 4708 symbols,
943 of them strong: this test fails on it).
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from pyvitcpp import _core, _testing

MODULES = pytest.mark.parametrize("module", [_core, _testing], ids=["_core", "_testing"])
VAGUE = set("WVvwu")  # weak function / object, unique global (nm's letters)


def strong_exports(path: str) -> list[str]:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) not installed: cannot read the module's dynamic symbols")
    out = subprocess.run([nm, "-D", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    strong = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] not in VAGUE:
            strong.append(parts[2])
    return strong


@MODULES
def test_only_pyinit_is_a_strong_export(module):
    name = module.__name__.rsplit(".", 1)[1]
    strong = strong_exports(module.__file__)
    assert strong == [f"PyInit_{name}"], (
        f"{len(strong)} strong exports (first: {strong[:5]}): a statically linked runtime or a "
        "symbol without hidden visibility leaks out of the module")
