"""No ISA-specific instruction outside its level's code.

Reads the built modules' machine code (objdump) and checks, function by function, that
256-bit (ymm) instructions appear only in pyvitcpp::avx2 / pyvitcpp::avx512 code and 512-bit
or opmask (zmm, k1-k7) instructions only in pyvitcpp::avx512 code, plus the level's own
register_* hook, which dispatch calls only after cpuid/XCR0 say the CPU can run it. A leak
(an inline function the linker took from an AVX-512 translation unit, say) would crash older
CPUs with SIGILL, and this machine could not notice it any other way. Both extension modules
link the same engine objects, so both are checked: _core (what `import pyvitcpp` loads) and
_testing (the test hooks).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pyvitcpp import _core, _testing

FUNC = re.compile(r"^[0-9a-f]+ <(.*)>:$")
MODULES = pytest.mark.parametrize("module", [_core, _testing], ids=["_core", "_testing"])


def _functions_using(module, pattern: re.Pattern) -> set[str]:
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) not installed: cannot inspect the module's code")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", module.__file__],
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


@MODULES
def test_module_has_symbols(module):
    """A stripped module keeps only exported symbols; objdump would then attribute every
    static function's code to the preceding export and the checks below would be wrong."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) not installed: cannot inspect the module's code")
    syms = subprocess.run([objdump, "-t", module.__file__], capture_output=True, text=True).stdout
    assert "avx512" in syms and "avx2" in syms, "the module is stripped: build with install.strip = false"


@MODULES
def test_zmm_only_in_avx512(module):
    bad = [f for f in _functions_using(module, re.compile(r"%zmm|%k[1-7]\b")) if not _allowed(f, "avx512")]
    assert not bad, f"AVX-512 instructions outside pyvitcpp::avx512 in {module.__name__}:\n" + "\n".join(sorted(bad)[:20])


@MODULES
def test_ymm_only_in_simd_levels(module):
    bad = [f for f in _functions_using(module, re.compile(r"%ymm"))
           if not (_allowed(f, "avx2") or _allowed(f, "avx512"))]
    assert not bad, f"AVX instructions outside the SIMD levels in {module.__name__}:\n" + "\n".join(sorted(bad)[:20])
