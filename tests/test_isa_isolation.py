"""No ISA-specific instruction outside its level's code.

Reads the built module's machine code (objdump) and checks, function by function, that
256-bit (ymm) instructions appear only in pyvitcpp::avx2 / pyvitcpp::avx512 code and 512-bit
or opmask (zmm, k1-k7) instructions only in pyvitcpp::avx512 code, plus the level's own
register_* hook, which dispatch calls only after cpuid/XCR0 say the CPU can run it. A leak
(an inline function the linker took from an AVX-512 translation unit, say) would crash older
CPUs with SIGILL, and this machine could not notice it any other way.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pyvitcpp import _core

FUNC = re.compile(r"^[0-9a-f]+ <(.*)>:$")


def _functions_using(pattern: re.Pattern) -> set[str]:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) not installed: cannot inspect the module's code")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", _core.__file__],
                         capture_output=True, text=True, check=True).stdout
    found, fn = set(), None
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            fn = m.group(1)
        elif fn is not None and pattern.search(line):
            found.add(fn)
    return found


def _allowed(fn: str, level: str) -> bool:
    return f"pyvitcpp::{level}::" in fn or re.search(rf"pyvitcpp::register_\w+_{level}\(", fn) is not None


def test_module_has_symbols():
    """A stripped module keeps only exported symbols; objdump would then attribute every
    static function's code to the preceding export and the checks below would be wrong."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) not installed: cannot inspect the module's code")
    syms = subprocess.run([objdump, "-t", _core.__file__], capture_output=True, text=True).stdout
    assert "avx512" in syms and "avx2" in syms, "the module is stripped: build with install.strip = false"


def test_zmm_only_in_avx512():
    bad = [f for f in _functions_using(re.compile(r"%zmm|%k[1-7]\b")) if not _allowed(f, "avx512")]
    assert not bad, "AVX-512 instructions outside pyvitcpp::avx512:\n" + "\n".join(sorted(bad)[:20])


def test_ymm_only_in_simd_levels():
    bad = [f for f in _functions_using(re.compile(r"%ymm"))
           if not (_allowed(f, "avx2") or _allowed(f, "avx512"))]
    assert not bad, "AVX instructions outside the SIMD levels:\n" + "\n".join(sorted(bad)[:20])
