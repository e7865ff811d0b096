"""Smoke test of the benchmark code (pyvitcpp/bench.py, `pyvitcpp bench`, scripts/bench.py): a
two-layer toy ViT, one round, so it runs in seconds. It checks the table's shape and that our
runtime's output agrees with the PyTorch reference it was converted from (the bench's own
accuracy column), not any timing."""
import os
import subprocess
import sys

import pytest

import pyvitcpp  # noqa: F401  (a build failure must fail here, not skip)
from pyvitcpp import bench, cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(extra):
    args = bench.build_arg_parser().parse_args(
        ["--models", "vit_test_tiny", "--batch", "1", "2", "--reps", "1", "--warmup", "0", "--peak-seconds", "0.02"]
        + extra)
    args.argv = extra
    return args


def _rows(table, model="vit_test_tiny"):
    return [line.split("|")[1:-1] for line in table.splitlines() if line.startswith(f"| {model} |")]


def test_bench_ours_and_torch_table():
    table = bench.run(_args(["--runtimes", "ours", "torch", "--types", "f32", "f16", "--no-fresh-process"]),
                      log=lambda s: None)
    assert "register-only FMA loop" in table and "Command: `pyvitcpp bench" in table
    speed = [r for r in _rows(table) if len(r) == 12]
    names = [(r[1].strip(), r[2].strip()) for r in speed]
    assert names == [("1", "ours-f32"), ("1", "ours-f16"), ("1", "torch"),
                     ("2", "ours-f32"), ("2", "ours-f16"), ("2", "torch")]
    for r in speed:
        assert float(r[3]) > 0 and float(r[5]) > 0  # p50 ms, images/s
        err, cos = (float(v) for v in r[11].split("/"))
        if r[2].strip() == "ours-f32":
            assert err < 1e-4 and cos > 0.99999
        elif r[2].strip() == "ours-f16":
            assert cos > 0.999
    assert not [r for r in _rows(table) if len(r) == 5]


def test_bench_fresh_process_probe():
    table = bench.run(_args(["--runtimes", "ours", "--batch", "1"]), log=lambda s: None)
    mem = [r for r in _rows(table) if len(r) == 5]  # fresh-process probe: cold start, peak RSS
    assert [r[1].strip() for r in mem] == ["ours-f32"]
    assert float(mem[0][2]) > 0 and float(mem[0][3]) > float(mem[0][4]) > 0


def test_bench_skips_what_it_cannot_run():
    logs = []
    args = _args(["--runtimes", "ours", "--types", "f32", "no_such_type", "--no-fresh-process"])
    args.models = ["vit_test_tiny", "no_such_model"]
    table = bench.run(args, log=logs.append)
    assert any("skip ours no_such_type" in s for s in logs)
    assert any("no_such_model: unknown model" in s for s in logs)
    assert [r[2].strip() for r in _rows(table)] == ["ours-f32", "ours-f32"]


def test_bench_with_onnxruntime():
    pytest.importorskip("onnxruntime", reason="onnxruntime (pyvitcpp[bench]) is not installed")
    table = bench.run(_args(["--runtimes", "ours", "ort", "--batch", "1", "--no-fresh-process"]), log=lambda s: None)
    rows = _rows(table)
    assert [r[2].strip() for r in rows] == ["ours-f32", "ort"]


def test_cli_and_script_entry_points(tmp_path):
    out = tmp_path / "bench.md"
    rc = cli.main(["bench", "--models", "vit_test_tiny", "--batch", "1", "--reps", "1", "--warmup", "0",
                   "--peak-seconds", "0", "--runtimes", "ours", "--no-fresh-process", "-o", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "| vit_test_tiny | 1 | ours-f32 |" in text and "--runtimes ours" in text
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--types" in r.stdout
