"""Concurrency and resource use (issue 19): many Python threads on one Encoder or one each,
an Encoder deleted while another thread is inside forward, fork while another thread builds a
graph, and flat memory over open/close cycles and repeated calls.

Runs that could crash or hang go to a child process (tests/test_reliability.run_child), so a
regression fails the test instead of killing or stalling the test run.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import pyvitcpp
from test_errors import IMG, P, write_vit_gguf
from test_reliability import FORK_WHILE_BUSY, UNDER_ASAN, run_child, skip_fork_under_asan

N_THREADS = 8
CALLS = 200
OUTPUTS = ["pooled", "last_hidden_state"]


@pytest.fixture
def vit(tmp_path):
    return write_vit_gguf(tmp_path / "vit.gguf")


def _inputs():
    """One input per thread, each a different geometry (the tiny ViT resizes its position table),
    so 8 threads on one Encoder also churn its graph cache (4 geometries) while they run."""
    rng = np.random.default_rng(7)
    return [rng.standard_normal((1 + i % 2, 3, IMG + P * (i % 4), IMG + P * (i // 4))).astype(np.float32)
            for i in range(N_THREADS)]


def _run_threads(target):
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _same(got, want, what):
    for name in OUTPUTS:
        assert np.array_equal(got[name], want[name]), f"{what}: {name} differs from the single-threaded run"


def test_shared_encoder_many_threads(vit):
    xs = _inputs()
    single = pyvitcpp.Encoder(vit, threads=2)
    want = [single.forward(x, OUTPUTS) for x in xs]
    enc = pyvitcpp.Encoder(vit, threads=2)

    def work(i):
        for k in range(CALLS):
            _same(enc.forward(xs[i], OUTPUTS), want[i], f"thread {i} call {k}")

    _run_threads(work)


def test_encoder_per_thread(vit):
    xs = _inputs()
    single = pyvitcpp.Encoder(vit, threads=2)
    want = [single.forward(x, OUTPUTS) for x in xs]

    def work(i):
        enc = pyvitcpp.Encoder(vit, threads=2)
        for k in range(CALLS):
            _same(enc.forward(xs[i], OUTPUTS), want[i], f"thread {i} call {k}")

    _run_threads(work)


def test_delete_while_another_thread_runs(vit):
    # The main thread drops the last reference to an Encoder (or to its _core.Model) while a
    # worker is inside forward: the call keeps the object alive, finishes with the right answer,
    # and the object is freed once it returns.
    code = f"""
import gc, sys, threading, time, weakref
import numpy as np
import pyvitcpp
from pyvitcpp import _core
x = np.random.default_rng(0).standard_normal((4, 3, 128, 128)).astype(np.float32)
ref = pyvitcpp.Encoder({vit!r}, threads=2).forward(x, "pooled")
bad = 0
for r in range(20):
    holder = {{"enc": pyvitcpp.Encoder({vit!r}, threads=2)}}
    if r % 2:
        holder["enc"] = holder["enc"]._model  # the bare engine object
    gone = weakref.ref(holder["enc"]) if r % 2 == 0 else None
    started = threading.Event()
    out = {{}}
    def work():
        started.set()
        if r % 2:
            out["y"] = holder["enc"].run(x, ["pooled"])["pooled"]
        else:
            out["y"] = holder["enc"].forward(x, "pooled")
    t = threading.Thread(target=work)
    t.start()
    started.wait()
    time.sleep(0.001 * (r % 5))
    holder.clear()
    gc.collect()
    t.join()
    bad += not np.array_equal(out["y"], ref)
    gc.collect()
    if gone is not None and gone() is not None:
        print("encoder not freed"); bad += 1
print("bad", bad)
sys.exit(1 if bad else 0)
"""
    rc, out = run_child(code, timeout=120)
    assert rc == 0, out


@skip_fork_under_asan
def test_fork_while_another_thread_builds_graphs(vit):
    # A thread keeps asking for new input sizes, so the ViT family keeps resizing its position
    # table under the lock of its per-size memo, and the main thread forks meanwhile. The child
    # must not inherit that lock held by a thread it does not have: it runs a size never seen
    # before (which takes the lock) and must answer like the parent.
    code = f"""
import itertools, os, signal, sys, threading, time
import numpy as np
import pyvitcpp
enc = pyvitcpp.Encoder({vit!r}, threads=2)
model = enc._model
probe = np.random.default_rng(1).standard_normal((1, 3, 8 * 37, 8 * 3)).astype(np.float32)
ref = pyvitcpp.Encoder({vit!r}, threads=2).forward(probe, "pooled")
stop = False
def busy():
    # output_shape builds (and caches) the graph for the size without the GIL, resizing the
    # position table; every size is new: grids a x b of 200 to 600 tokens (the resize then takes
    # a good share of the build), a != 37.
    for a, b in itertools.cycle([(a, b) for a in range(8, 76) for b in range(8, 76)
                                 if 200 <= a * b <= 600 and a != 37]):
        if stop:
            return
        model.output_shape("pooled", 1, 8 * a, 8 * b)
""" + FORK_WHILE_BUSY.format(forks=60, pause=0.002)
    rc, out = run_child(code, timeout=300)
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------
# Resource use: RSS measured in a fresh interpreter from /proc/self/status.

# AddressSanitizer keeps freed memory in quarantine (256 MB by default), so RSS grows under
# scripts/asan_tests.sh whatever the code does: these bounds mean nothing there.
skip_under_asan = pytest.mark.skipif(UNDER_ASAN, reason="RSS is not meaningful under AddressSanitizer (quarantine)")

_RSS = """
import gc, sys
import numpy as np
import pyvitcpp
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
x = np.random.default_rng(0).standard_normal((2, 3, {img}, {img})).astype(np.float32)
def cycle():
    enc = pyvitcpp.Encoder({path!r}, threads=2, mmap={mmap})
    enc.forward(x, "pooled")
    del enc
    gc.collect()
for _ in range(20):  # warm-up: allocator pools, lazily built kernel tables
    cycle()
base = rss_kb()
for _ in range({cycles}):
    cycle()
after_cycles = rss_kb()
enc = pyvitcpp.Encoder({path!r}, threads=2)
x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)  # 17 KB per output
for _ in range(50):
    enc.forward(x, "pooled")
base_calls = rss_kb()
for i in range({calls}):
    enc.forward(x, ["pooled", "last_hidden_state"] if i % 2 else "pooled")
after_calls = rss_kb()
print("cycles", base, after_cycles, "calls", base_calls, after_calls)
bound = {bound_kb}
ok = after_cycles - base <= bound and after_calls - base_calls <= bound
sys.exit(0 if ok else 1)
"""


@skip_under_asan
@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "read"])
def test_rss_flat_over_open_close_and_calls(vit, mmap):
    # 200 open/forward/close cycles and 1000 calls. An Encoder of the tiny model holds ~50 KB of
    # weights plus its graph, arena and worker thread, and a 64 x 64 call returns 17 KB per
    # output: leaking either once per iteration would add well over the 4 MB allowed (10 MB,
    # 17 MB), while the allocator's own noise stays far below it.
    code = _RSS.format(img=IMG, path=vit, mmap=mmap, cycles=200, calls=1000, bound_kb=4096)
    rc, out = run_child(code, timeout=120)
    assert rc == 0, out


@skip_under_asan
def test_memo_bounded_over_many_input_sizes(vit):
    # The ViT family memoises the resized position table per grid. 300 different input sizes
    # (grids 30..59 x 30..39, ~200 KB of table each: ~60 MB if every one were kept) must leave
    # only the tables of the 4 cached graphs. output_shape builds the graph without running it.
    # glibc keeps freed heap pages (7-16 MB here, depending on the order of frees): both RSS
    # readings follow a malloc_trim, so they count live memory, which a leak or an unbounded
    # memo grows and fragmentation does not.
    code = f"""
import ctypes, sys
import pyvitcpp
try:
    _trim = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):
    _trim = lambda pad: 0
def rss_kb():
    _trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
model = pyvitcpp.Encoder({vit!r}, threads=1)._model
sizes = [(a, b) for b in range(30, 40) for a in range(30, 60)]
for a, b in sizes[:8]:
    model.output_shape("pooled", 1, {P} * a, {P} * b)
base = rss_kb()
for a, b in sizes:
    model.output_shape("pooled", 1, {P} * a, {P} * b)
grown = rss_kb() - base
print("grew", grown, "KB")
sys.exit(0 if grown < 16 * 1024 else 1)
"""
    rc, out = run_child(code, timeout=120)
    assert rc == 0, out
