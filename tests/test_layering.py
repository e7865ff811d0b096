"""The C++ include graph follows the layers (scripts/check_layering.py, docs/ARCHITECTURE.md):
no include runs from a lower layer up to a higher one, except the known ones listed there."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "check_layering.py")


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_csrc_layering():
    r = _run()
    assert r.returncode == 0, r.stdout + r.stderr


def _tree(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def test_check_fails_on_an_upward_include(tmp_path):
    root = _tree(tmp_path, {
        "core/dtype.h": "#pragma once\n",
        "kernels/kernels.h": '#include "core/dtype.h"\n',  # up to ground: fine
        "core/cpu.h": '#include "kernels/kernels.h"\n',    # ground -> kernels: the old violation
        "io/gguf.h": '#include "kernels/kernels.h"\n',     # same rank, other layer
        "ops/conv_ops.h": '#include "graph/graph.h"\n',    # ops -> graph: up
        "graph/graph.h": '#include "quant/blocks.h"\n',    # a header that is not there
    })
    r = _run("--root", root)
    assert r.returncode == 1
    assert "core/cpu.h:1" in r.stdout and "io/gguf.h:1" in r.stdout
    assert "kernels/kernels.h:1" not in r.stdout
    assert "ops/conv_ops.h:1" in r.stdout
    assert '"quant/blocks.h", which is not under csrc/' in r.stdout


def test_import_does_not_load_the_test_hooks():
    """`import pyvitcpp` loads _core only; _testing is the test suite's, and pyvitcpp.perf is
    the public home of the bench's measurement tools."""
    code = ("import sys, pyvitcpp; assert 'pyvitcpp._testing' not in sys.modules, sorted(sys.modules); "
            "assert callable(pyvitcpp.perf.fma_peak) and callable(pyvitcpp.perf.gemm_bench); "
            "assert not hasattr(pyvitcpp._core, 'testing')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
