"""Process-level reliability (issue 19): fork, thread creation failure, overflow-checked shapes,
misaligned data, files replaced while open, exceptions outside the documented set.

Anything that could hang or crash runs in a child process (its own session) with a timeout, so
a regression shows up as a failed test instead of a stuck or killed test run.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gguf

import pyvitcpp
from pyvitcpp import _core
from test_errors import IMG, write_vit_gguf
from test_gguf import _ARCH, _CORRUPT, VT, _gguf, _kv, _ti

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyvitcpp.__file__)))
# scripts/asan_tests.sh runs these files in an interpreter with the ASan runtime preloaded.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
# clang 14's ASan allocator is not fork-safe (fixed in LLVM 18, llvm-project PR 75290): a child
# forked while another thread is inside malloc (or starting up) can block there.
skip_fork_under_asan = pytest.mark.skipif(UNDER_ASAN, reason="ASan's allocator is not fork-safe before LLVM 18 "
                                          "(llvm-project PR 75290): the child can block in malloc")
TESTS = os.path.dirname(os.path.abspath(__file__))


def run_child(code: str, timeout: float = 60):
    """Runs `code` in a fresh interpreter (own process group, killed whole on timeout).
    Returns (returncode, output); returncode is None when it timed out."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


@pytest.fixture
def vit(tmp_path):
    return write_vit_gguf(tmp_path / "vit.gguf")


# ---------------------------------------------------------------------------------------------
# 1. fork

_FORK_HEAD = """
import os, re, resource, sys, time, signal
import numpy as np
import pyvitcpp
enc = pyvitcpp.Encoder({path!r}, threads={threads})
x = np.random.default_rng(0).standard_normal((2, 3, {img}, {img})).astype(np.float32)
ref = enc.forward(x, "pooled")
pid = os.fork()
if pid == 0:
"""

# The parent: waits for the child (killing it after 20 s: a hang is exit status 3), checks its
# own Encoder still works and exits with the child's status.
_WAIT_CHILD = """
deadline = time.time() + 20
while True:
    p, status = os.waitpid(pid, os.WNOHANG)
    if p:
        break
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("child hung")
        sys.exit(3)
    time.sleep(0.02)
code = os.waitstatus_to_exitcode(status)
print("child exit", code)
assert np.array_equal(enc.forward(x, "pooled"), ref)  # the parent's pool is untouched
sys.exit(code)
"""

_FORK_CHILD = """
    if {forward!r}:
        out = enc.forward(x, "pooled")
        sys.exit(0 if np.array_equal(out, ref) else 2)
    sys.exit(0)  # a normal exit: interpreter shutdown destroys the Encoder
"""


@pytest.mark.parametrize("forward", [False, True], ids=["exit", "forward"])
def test_forked_child_exits_and_computes(vit, forward):
    code = _FORK_HEAD.format(path=vit, img=IMG, threads=2) + _FORK_CHILD.format(forward=forward) + _WAIT_CHILD
    rc, out = run_child(code, timeout=60)
    assert rc == 0, out


def test_multiprocessing_fork_pool(vit):
    code = f"""
import multiprocessing as mp, sys
import numpy as np
import pyvitcpp
enc = pyvitcpp.Encoder({vit!r}, threads=2)
rng = np.random.default_rng(0)
images = [rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8) for i in range(4)]
ref = [enc.encode(im, output="pooled") for im in images]
def embed(i):
    out = enc.encode(images[i], output="pooled")
    threads = int(open("/proc/self/status").read().split("Threads:")[1].split()[0])
    return out, threads
with mp.get_context("fork").Pool(2) as pool:
    res = pool.map_async(embed, range(len(images))).get(timeout=30)
assert all(np.array_equal(a, b) for (a, _), b in zip(res, ref)), "different results in the workers"
# The workers compute with the Encoder's 2 threads (its pool restarted in the child), not 1.
assert all(t >= 2 for _, t in res), [t for _, t in res]
print("ok")
"""
    rc, out = run_child(code, timeout=90)
    assert rc == 0 and "ok" in out, out


@skip_fork_under_asan  # (200 workers just started in the parent: hung 1 run in 3 under ASan)
def test_forked_child_cannot_start_threads(vit):
    # The child's first run has to start a new crew of workers; when it cannot, each run says
    # so (and the next one tries again) instead of crashing on a crew that is not there.
    child = """
import threading
# glibc hands the stacks of the parent's (vanished) threads to the child's stack cache; park
# Python threads on them so that new workers need new address space.
hold = threading.Event()
parked = [threading.Thread(target=hold.wait, daemon=True) for _ in range(199)]
for t in parked:
    t.start()
vm = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
for _ in range(2):
    try:
        enc.forward(x, "pooled")
        os._exit(4)
    except RuntimeError as e:
        assert "cannot start 200 threads" in str(e), e
os._exit(0)
"""
    code = _FORK_HEAD.format(path=vit, img=IMG, threads=200) + textwrap.indent(child, "    ") + _WAIT_CHILD
    rc, out = run_child(code, timeout=60)
    assert rc == 0, out


# Child code: forks `forks` times while the thread `busy` (the caller's code defines it and the
# `stop` flag it polls) runs; each child computes enc.forward(probe, "pooled") under a 10 s
# alarm (a hang ends as SIGALRM) and must equal `ref`. Exit status 1 when any child failed.
FORK_WHILE_BUSY = """
t = threading.Thread(target=busy)
t.start()
bad = 0
for _ in range({forks}):
    time.sleep({pause})
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)
        ok = np.array_equal(enc.forward(probe, "pooled"), ref)
        os._exit(0 if ok else 2)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        print("child status", status)
        bad += 1
stop = True
t.join()
print("bad", bad)
sys.exit(1 if bad else 0)
"""


def test_fork_while_another_thread_runs(vit):
    # A thread keeps the Encoder busy while the main thread forks: the child inherits the
    # model's run lock held by a thread it does not have, and used to block forever on it.
    code = f"""
import os, signal, sys, threading, time
import numpy as np
import pyvitcpp
enc = pyvitcpp.Encoder({vit!r}, threads=2)
x = np.random.default_rng(0).standard_normal((4, 3, 96, 96)).astype(np.float32)
ref = enc.forward(x, "pooled")
stop = False
def busy():
    while not stop:
        enc.forward(x, "pooled")
probe = x
""" + FORK_WHILE_BUSY.format(forks=5, pause=0.01)
    rc, out = run_child(code, timeout=120)
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------
# 2. threads

def test_thread_creation_failure_raises(vit):
    code = f"""
import re, resource, sys
import pyvitcpp
vm = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
# Room for the model, not for 1000 thread stacks.
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), hard))
try:
    pyvitcpp.Encoder({vit!r}, threads=1000)
except (RuntimeError, OSError) as e:
    print(type(e).__name__, e)
    sys.exit(0 if "1000 threads" in str(e) else 5)
print("created")
sys.exit(4)
"""
    rc, out = run_child(code, timeout=60)
    assert rc == 0, out
    assert "cannot start 1000 threads" in out


def test_threads_argument(vit):
    with pytest.raises(ValueError, match=str(_core.MAX_THREADS)):
        pyvitcpp.Encoder(vit, threads=5000)
    with pytest.raises(ValueError, match="1024"):
        _core.Model(vit, 5000, "")
    for bad in (True, 2.0, "2"):
        with pytest.raises(TypeError, match="threads"):
            pyvitcpp.Encoder(vit, threads=bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="threads"):
            pyvitcpp.Encoder(vit, threads=bad)
    assert pyvitcpp.Encoder(vit, threads=np.int64(2)).threads == 2


# ---------------------------------------------------------------------------------------------
# 3. overflow in shape arithmetic from file-supplied numbers

def test_channel_count_overflow(tmp_path):
    # 3 + 2**58 channels * 8 * 8 pixels wraps to 192 = 3 * 8 * 8: the patch-embedding shape
    # check used to pass, and the model loaded with an absurd channel count.
    p = write_vit_gguf(tmp_path / "c.gguf", kv_override={"vit.num_channels": 3 + 2**58})
    with pytest.raises(pyvitcpp.ModelError, match="num_channels"):
        pyvitcpp.Encoder(p, threads=1)


def _efficientnet(path, strides):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "efficientnet")
    w.add_uint32("efficientnet.block_count", len(strides))
    w.add_array("efficientnet.block_strides", list(strides))
    tensors = {"stem.weight": (8, 3, 3, 3)}
    for i in range(len(strides)):
        tensors[f"blk.{i}.conv_dw.weight"] = (8, 1, 3, 3)
        tensors[f"blk.{i}.conv_pwl.weight"] = (8, 8, 1, 1)
    for name, shape in tensors.items():
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_cnn_total_stride_overflow(tmp_path):
    # stem 2 * 4**32 wraps to 0: the smallest input size check let any size through.
    _core.Model(_efficientnet(tmp_path / "ok.gguf", [4, 1]), 1, "")
    with pytest.raises(pyvitcpp.ModelError, match="block_strides total stride.*overflows int64"):
        _core.Model(_efficientnet(tmp_path / "s.gguf", [4] * 32), 1, "")


def test_quantize_empty_tensor(tmp_path):
    # ne[0] = 0: rows used to be nelements / ne[0] (a division by zero, SIGFPE).
    from test_gguf import _F32_8
    src = tmp_path / "e.gguf"
    src.write_bytes(_gguf(kvs=[_ARCH], tis=[_ti("t", [8], 0, 0), _ti("z", [0, 4], 0, 32)], data=_F32_8))
    rc, out = run_child(f"""
import pyvitcpp
from pyvitcpp import _core
plan = pyvitcpp.quantize({str(src)!r}, {str(tmp_path / 'q.gguf')!r}, "q8_0")
f = _core.GGUFFile({str(tmp_path / 'q.gguf')!r})
print(f.tensor("z").shape, f.tensors[1]["nbytes"])
""", timeout=60)
    assert rc == 0, out
    assert "(4, 0) 0" in out, out


def test_quantize_threads_argument(vit, tmp_path):
    with pytest.raises(ValueError, match="threads"):
        pyvitcpp.quantize(vit, tmp_path / "q.gguf", "q8_0", threads=5000)
    with pytest.raises(TypeError, match="threads"):
        pyvitcpp.quantize(vit, tmp_path / "q.gguf", "q8_0", threads=True)
    assert not os.path.exists(tmp_path / "q.gguf")


def test_encoder_mmap_must_be_a_bool(vit):
    """mmap="no" is truthy and used to memory-map silently; now only a bool is taken."""
    for bad in ("no", "False", 0, None):
        with pytest.raises(TypeError, match="mmap must be True or False"):
            pyvitcpp.Encoder(vit, mmap=bad)
    assert pyvitcpp.Encoder(vit, mmap=False).path == vit


# ---------------------------------------------------------------------------------------------
# 4. misaligned tensor data

def _aligned1_file(ttype, payload, misalign):
    kvs = [_ARCH, _kv("general.alignment", VT.UINT32, struct.pack("<I", 1))]
    ds = len(_gguf(kvs=kvs, tis=[_ti("t", [len(payload) // (4 if ttype == 0 else 2)], ttype, 0)], alignment=1))
    need = 4 if ttype == 0 else 2
    off = next(o for o in range(1, 8) if (ds + o) % need == misalign)
    tis = [_ti("t", [len(payload) // (4 if ttype == 0 else 2)], ttype, off)]
    return _gguf(kvs=kvs, tis=tis, data=b"\x00" * off + payload, alignment=1)


@pytest.mark.parametrize("ttype,misalign", [(0, 2), (0, 1), (1, 1)], ids=["f32+2", "f32+1", "f16+1"])
def test_misaligned_data_rejected(tmp_path, ttype, misalign):
    payload = np.arange(8, dtype=np.float32 if ttype == 0 else np.float16).tobytes()
    p = tmp_path / "mis.gguf"
    p.write_bytes(_aligned1_file(ttype, payload, misalign))
    with pytest.raises(pyvitcpp.GGUFError, match=r"tensor 't' data starts at file offset \d+, misaligned"):
        _core.GGUFFile(p)


def test_alignment_1_aligned_data_accepted(tmp_path):
    payload = np.arange(8, dtype=np.float32).tobytes()
    p = tmp_path / "ok.gguf"
    p.write_bytes(_aligned1_file(0, payload, 0))
    np.testing.assert_array_equal(_core.GGUFFile(p).tensor("t"), np.arange(8, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# 5. files replaced or truncated while open

def test_mmap_false_identical_and_survives_truncation(vit):
    x = np.random.default_rng(1).standard_normal((2, 3, IMG, IMG)).astype(np.float32)
    mapped = pyvitcpp.Encoder(vit, threads=2)
    ref = mapped.forward(x, ["pooled", "logits"])
    del mapped
    enc = pyvitcpp.Encoder(vit, threads=2, mmap=False)
    assert enc._file.mapped is False and _core.GGUFFile(vit).mapped is True
    out = enc.forward(x, ["pooled", "logits"])
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])
    with open(vit, "r+b") as fh:  # what an in-place rewrite does first
        fh.truncate(64)
    out = enc.forward(x, ["pooled", "logits"])
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k])


def test_gguf_file_without_mmap(vit, tmp_path):
    mapped = _core.GGUFFile(vit)
    copy = _core.GGUFFile(vit, mmap=False)
    assert mapped.mapped and not copy.mapped
    assert copy.metadata == mapped.metadata and copy.tensors == mapped.tensors
    views = {t["name"]: copy.tensor(t["name"]) for t in copy.tensors}
    for name, v in views.items():
        assert v.tobytes() == mapped.tensor(name).tobytes() and not v.flags.writeable
    del mapped
    with open(vit, "r+b") as fh:
        fh.truncate(0)
    del copy  # the views keep the buffer
    assert all(v.tobytes() == v.copy().tobytes() for v in views.values())


@pytest.mark.parametrize("data,needle", [c[1:] for c in _CORRUPT], ids=[c[0] for c in _CORRUPT])
def test_corrupt_file_raises_without_mmap(tmp_path, data, needle):
    # The same validation over the in-memory copy.
    p = tmp_path / "corrupt.gguf"
    p.write_bytes(data)
    with pytest.raises(pyvitcpp.GGUFError) as ei:
        _core.GGUFFile(p, mmap=False)
    assert needle in str(ei.value)


def test_cli_no_mmap(vit, tmp_path):
    from PIL import Image
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((IMG, IMG, 3), np.uint8)).save(img)
    for extra in ([], ["--no-mmap"]):
        r = subprocess.run([sys.executable, "-m", "pyvitcpp", "embed", str(img), "-m", vit, "-q", "-t", "1",
                            "--output", "pooled", "-o", str(tmp_path / f"e{len(extra)}.npy")] + extra,
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "e0.npy"), np.load(tmp_path / "e1.npy"))


def _tiny_converted():
    from pyvitcpp.convert._model import ConvertedModel, PreprocessSpec
    spec = PreprocessSpec(image_size=(16, 16), resize_mode="squash", crop_pct=1.0, interpolation="bilinear",
                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return ConvertedModel(arch="vit", name="t", source="test", source_class="none", hparams=[],
                          preprocess=spec, tensors={"v.x": np.ones((4, 32), np.float32)})


def test_failed_convert_leaves_no_partial_output(tmp_path, monkeypatch):
    from pyvitcpp.convert.writer import write_gguf
    out = tmp_path / "model.gguf"
    out.write_bytes(b"previous model")
    (tmp_path / "model.gguf.tmp").write_bytes(b"a user's file")  # not ours to clobber

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_gguf(_tiny_converted(), str(out), "f32", verbose=False)
    assert out.read_bytes() == b"previous model"
    assert (tmp_path / "model.gguf.tmp").read_bytes() == b"a user's file"
    assert sorted(os.listdir(tmp_path)) == ["model.gguf", "model.gguf.tmp"]
    monkeypatch.undo()
    write_gguf(_tiny_converted(), str(out), "f32", verbose=False)
    assert _core.GGUFFile(out).tensor_names() == ["v.x"]
    assert (tmp_path / "model.gguf.tmp").read_bytes() == b"a user's file"


def test_quantize_replaces_by_rename(vit, tmp_path):
    dst = tmp_path / "q.gguf"
    (tmp_path / "q.gguf.tmp").write_bytes(b"a user's file")
    pyvitcpp.quantize(vit, dst, "q8_0")
    x = np.zeros((1, 3, IMG, IMG), np.float32)
    enc = pyvitcpp.Encoder(dst, threads=1)  # memory-mapped
    ref = enc.forward(x, "pooled")
    pyvitcpp.quantize(vit, dst, "q4_0")  # a new file renamed into place: the mapping keeps the old one
    np.testing.assert_array_equal(enc.forward(x, "pooled"), ref)
    assert (tmp_path / "q.gguf.tmp").read_bytes() == b"a user's file"
    assert sorted(os.listdir(tmp_path)) == ["q.gguf", "q.gguf.tmp", "vit.gguf"]


# ---------------------------------------------------------------------------------------------
# 6. exceptions outside the documented set

def test_non_utf8_metadata_string(tmp_path):
    p = tmp_path / "u.gguf"
    write_vit_gguf(p)
    data = bytearray(p.read_bytes())
    i = data.index(b"gelu")
    data[i + 3] = 0xFF  # vit.hidden_act = b"gel\xff"
    p.write_bytes(bytes(data))
    with pytest.raises((pyvitcpp.GGUFError, pyvitcpp.ModelError), match="vit.hidden_act.*not valid UTF-8"):
        pyvitcpp.Encoder(p, threads=1)


def test_special_files_are_os_errors(tmp_path, vit):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("/dev/null", str(fifo)):
        with pytest.raises(OSError) as ei:
            pyvitcpp.Encoder(path, threads=1)
        assert not isinstance(ei.value, ValueError)
    with pytest.raises(IsADirectoryError):
        pyvitcpp.quantize(vit, tmp_path, "q8_0")
    os.mkdir(tmp_path / "d.gguf")
    with pytest.raises(IsADirectoryError):
        pyvitcpp.quantize(vit, tmp_path / "d.gguf", "q8_0")
    # A FIFO stands for /dev/null and other special files as an output (a test must never
    # risk renaming over the real /dev/null).
    with pytest.raises(OSError) as ei:
        pyvitcpp.quantize(vit, fifo, "q8_0")
    assert not isinstance(ei.value, ValueError) and "not a regular file" in str(ei.value)
    from pyvitcpp.convert.writer import write_gguf
    with pytest.raises(IsADirectoryError):
        write_gguf(_tiny_converted(), str(tmp_path / "d.gguf"), "f32", verbose=False)
    with pytest.raises(OSError, match="not a regular file"):
        write_gguf(_tiny_converted(), str(fifo), "f32", verbose=False)
    assert sorted(os.listdir(tmp_path)) == ["d.gguf", "fifo", "vit.gguf"]
    assert not os.path.isfile(fifo)


def test_top_k(vit):
    enc = pyvitcpp.Encoder(vit, threads=1)
    img = np.zeros((IMG, IMG, 3), np.uint8)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="top_k"):
            enc.classify(img, top_k=bad)
    with pytest.raises(TypeError, match="top_k"):
        enc.classify(img, top_k=1.5)
    assert len(enc.classify(img, top_k=100)) == 4


def test_graph_shape_overflow():
    # A shape whose byte count wraps (here a pad of 2**61 on a 4-element row) is refused when
    # the graph is built, naming the tensor; it used to reach the planner with a wrapped size.
    from pyvitcpp import _testing
    x = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="tensor 'y' byte size.*overflows int64"):
        _testing.graph_op("ref", "pad", [x], 1, lo=[0, 0], hi=[0, 2**61], value=0.0)
    with pytest.raises(ValueError, match="tensor 'y' element count.*overflows int64"):
        _testing.graph_op("ref", "pad", [x], 1, lo=[0, 0], hi=[2**62, 2**62], value=0.0)


def test_nonfinite_pixels(vit):
    """NaN/Inf pixels would give NaN scores without a word: raise by default, or warn, or run."""
    enc = pyvitcpp.Encoder(vit, threads=1)
    px = enc.preprocess([np.zeros((IMG, IMG, 3), np.uint8)] * 3)
    px[1, 0, 2, 3] = np.nan
    px[2, 1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN/infinite .* image\(s\) \[1, 2\]"):
        enc.forward(px, "pooled")
    with pytest.raises(ValueError, match="NaN/infinite"):
        enc.classify(px)
    with pytest.warns(RuntimeWarning, match="NaN/infinite"):
        out = pyvitcpp.Encoder(vit, threads=1, nonfinite="warn").forward(px, "pooled")
    assert np.isfinite(out[0]).all() and not np.isfinite(out[1]).all()
    pyvitcpp.Encoder(vit, threads=1, nonfinite="ignore").forward(px, "pooled")
    with pytest.raises(ValueError, match="nonfinite"):
        pyvitcpp.Encoder(vit, nonfinite="maybe")
    ok = enc.forward(np.nan_to_num(px), "pooled")  # the same images made finite run
    assert np.isfinite(ok).all()


@pytest.mark.parametrize("mode", ["squash", "shortest_edge_crop", "longest_edge_pad"])
@pytest.mark.parametrize("shape", [(5, 0, 3), (0, 5, 3), (0, 0), (0, 7, 4)])
def test_empty_image_array(vit, mode, shape):
    # A 0-width or 0-height uint8 image: shortest_edge_crop divided by zero (ZeroDivisionError)
    # and squash silently classified an empty picture.
    enc = pyvitcpp.Encoder(vit)
    enc.preprocessor = enc.preprocessor.resized((IMG, IMG))
    enc.preprocessor.resize_mode = mode
    with pytest.raises(ValueError, match="has no pixels"):
        enc.classify(np.zeros(shape, np.uint8), top_k=1)


_BAD_PREPROCESS = [("resize_size", v) for v in ([16], [], [0, 16], [16, -1], "ab", [16.5, "x"])] + [
    ("image_size", "16"), ("image_size", 5), ("image_size", [16.5, 16]), ("crop_pct", "x"), ("crop_pct", [1.0, 2.0]),
    ("mean", "abc"), ("mean", [0.5]), ("mean", [float("nan")] * 3), ("std", [0, 0, 0]), ("std", "x"),
    ("rescale_factor", "x"), ("rescale_factor", 0)]


@pytest.mark.parametrize("key,value", _BAD_PREPROCESS, ids=[f"{k}={v!r}" for k, v in _BAD_PREPROCESS])
def test_bad_preprocess_metadata(vit, key, value):
    # The file's preprocess.* values: IndexError (resize_size with fewer than 2 entries),
    # TypeErrors that did not name the key (image_size "16", crop_pct "x"), std 0 accepted (inf
    # pixels). Now a GGUFError naming the key.
    md = dict(pyvitcpp.Encoder(vit).metadata)
    md.update({"preprocess." + key: value, "preprocess.resize_mode": "shortest_edge_crop"})
    from pyvitcpp.preprocess import Preprocessor
    with pytest.raises(pyvitcpp.GGUFError, match=rf"preprocess\.{key}"):
        Preprocessor.from_metadata(md)
