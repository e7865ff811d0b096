"""The folder job behind ``pyvitcpp embed``: decode in a pool of threads, embed in batches, skip
bad files, write ``.npy`` (+ ``.paths.txt``) or ``.parquet``, optionally in resumable shards.

    >>> from pyvitcpp.pipeline import embed_paths
    >>> res = embed_paths(enc, paths, "emb.parquet", workers=4)     # res.embedded, res.skipped

Decoding and preprocessing (PIL releases the GIL while it decodes and resizes) run in
``workers`` threads that overlap the engine (which releases the GIL too); results are consumed
in input order, so rows keep the order of ``paths``. ``workers=0`` decodes in the calling thread.

Outputs (checked before any work):
- ``x.npy``: float32 [N, ...] rows of the images that were embedded, and ``x.paths.txt`` beside
  it, one path per line in the same order;
- ``x.parquet``: columns ``path`` (string), ``embedding`` (list<float32>, the row flattened;
  the schema metadata ``pyvitcpp.shape`` gives a row's shape), ``width``, ``height`` (the image's
  size after EXIF orientation); needs pyarrow (``pyvitcpp[parquet]``);
- with ``shard_size=N``: ``x.npy`` / ``x.parquet`` is a folder of ``part-00000.npy`` (+
  ``.paths.txt``) or ``part-00000.parquet`` files, one per N inputs, each written whole (a
  temporary name renamed) with a ``part-00000.done.json`` marker naming its inputs and settings.
  A rerun skips the shards whose marker matches, so an interrupted job resumes where it stopped
  (as clip-retrieval and img2dataset do); ``pyarrow.parquet.read_table("x.parquet")`` reads the
  folder as one table.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

FORMATS = (".npy", ".parquet")
ON_ERROR = ("skip", "fail")


def default_workers() -> int:
    """Decode threads by default: half the logical CPUs, at least 2 (so decoding overlaps the
    engine even on a small machine), at most 8."""
    return max(2, min(8, (os.cpu_count() or 1) // 2))


@dataclass
class EmbedResult:
    embedded: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, cause)
    outputs: List[str] = field(default_factory=list)
    shards_reused: int = 0
    paths: List[str] = field(default_factory=list)  # rows written, in order (unsharded runs)
    row_shape: Optional[Tuple[int, ...]] = None  # one embedding's shape (None: nothing computed)

    def shape_text(self) -> str:
        """'N x D' (or N x C x H x W) float32 rows, as the CLI prints them."""
        return " x ".join(map(str, (self.embedded,) + tuple(self.row_shape or ()))) + " float32"


def check_output(out: str, shard_size: Optional[int] = None) -> str:
    """Validate the output location before any work; returns the format ('.npy' or '.parquet')."""
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"output {out!r} must end in .npy or .parquet (with --shard-size: the folder name)")
    if ext == ".parquet":
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ImportError('parquet output needs pyarrow: pip install "pyvitcpp[parquet]" (or write .npy)') from None
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder is not writable: {parent}")
    if shard_size is not None:
        if isinstance(shard_size, bool) or int(shard_size) != shard_size or shard_size < 1:
            raise ValueError(f"shard size must be an integer >= 1, got {shard_size!r}")
        if os.path.exists(out) and not os.path.isdir(out):
            raise FileExistsError(f"sharded output {out} exists and is not a folder")
        if os.path.isdir(out) and not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(f"output folder is not writable: {out}")
    elif os.path.isdir(out):
        raise IsADirectoryError(f"output {out} is a folder (use --shard-size to write shards into it)")
    return ext


def paths_file(npy_path: str) -> str:
    """The row-order path list written beside an .npy output: x.npy -> x.paths.txt."""
    return os.path.splitext(npy_path)[0] + ".paths.txt"


# --------------------------------------------------------------------------------------- decoding
def _decode(preprocessor, path: str):
    from .preprocess import load_image

    im = load_image(path)
    return preprocessor.one(im), im.size


def decode_stream(paths: Sequence[str], preprocessor, workers: int, window: int = 0) -> Iterator[tuple]:
    """(path, (pixels [3,H,W], (width, height)) or the exception) for each path, in order; decoded
    by ``workers`` threads (0: in the calling thread) at most ``window`` images ahead."""
    if workers <= 0:
        for p in paths:
            try:
                yield p, _decode(preprocessor, p)
            except Exception as e:  # noqa: BLE001  (reported per file by the caller)
                yield p, e
        return
    window = max(window, 2 * workers)
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="pyvitcpp-decode") as pool:
        pending: collections.deque = collections.deque()
        it = iter(paths)
        try:
            for p in it:
                pending.append((p, pool.submit(_decode, preprocessor, p)))
                if len(pending) >= window:
                    break
            while pending:
                p, fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(_decode, preprocessor, nxt)))
                try:
                    yield p, fut.result()
                except Exception as e:  # noqa: BLE001
                    yield p, e
        finally:
            for _p, fut in pending:
                fut.cancel()


def _cause(path: str, e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    return msg if path in msg else f"{path}: {type(e).__name__}: {msg}"


def skip_warning(path: str, cause: str) -> str:
    """The one line a skipped file gets (embed, classify, detect)."""
    return f"pyvitcpp: warning: skipped {cause}" if cause.startswith(path) else f"pyvitcpp: warning: skipped {path}: {cause}"


# --------------------------------------------------------------------------------------- writing
def _replace_atomic(out: str, write: Callable[[str], None]) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_npy(out: str, emb: np.ndarray, paths: List[str]) -> List[str]:
    def save(tmp):
        with open(tmp, "wb") as f:  # a file object: numpy adds no ".npy" to the name
            np.save(f, emb)

    def save_paths(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in paths))

    _replace_atomic(out, save)
    _replace_atomic(paths_file(out), save_paths)
    return [out, paths_file(out)]


def _write_parquet(out: str, emb: np.ndarray, paths: List[str], sizes: List[Tuple[int, int]],
                   meta: dict) -> List[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(paths)
    flat = np.ascontiguousarray(emb, np.float32).reshape(n, -1) if n else np.zeros((0, 0), np.float32)
    d = flat.shape[1]
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d, pa.int32())
    col = pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1), pa.float32()))
    table = pa.table({"path": pa.array(paths, pa.string()), "embedding": col,
                      "width": pa.array([s[0] for s in sizes], pa.int32()),
                      "height": pa.array([s[1] for s in sizes], pa.int32())})
    md = {f"pyvitcpp.{k}": json.dumps(v) for k, v in meta.items()}
    md["pyvitcpp.shape"] = json.dumps(list(emb.shape[1:]))
    table = table.replace_schema_metadata(md)
    _replace_atomic(out, lambda tmp: pq.write_table(table, tmp))
    return [out]


# --------------------------------------------------------------------------------------- the job
def embed_paths(encoder, paths: Sequence[str], out: str, *, batch_size: int = 16, workers: Optional[int] = None,
                on_error: str = "skip", normalize: bool = False, output: str = "embedding",
                shard_size: Optional[int] = None, progress: bool = False,
                log: Optional[Callable[[str], None]] = None) -> EmbedResult:
    """Embed image files into ``out`` (see the module docstring); returns what was done.

    on_error: "skip" (default) writes one warning line per unreadable / undecodable file through
    ``log`` and goes on; "fail" raises a ValueError naming the file (nothing is written for an
    unsharded output). Raises ValueError when no file at all could be embedded (unsharded)."""
    from .encoder import _normalize

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if output not in encoder.output_names:
        raise ValueError(f"unknown output {output!r}; this model offers: {', '.join(encoder.output_names)}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch size must be an integer >= 1, got {batch_size!r}")
    fmt = check_output(out, shard_size)
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    paths = [os.fspath(p) for p in paths]
    meta = {"model": os.path.abspath(encoder.path), "output": output, "normalize": bool(normalize),
            "image_size": list(encoder.preprocessor.image_size)}

    # shards: (index, paths, data file, marker file, key); one unnamed shard when unsharded
    if shard_size is None:
        shards = [(0, paths, out, None, None)]
    else:
        os.makedirs(out, exist_ok=True)
        shards = []
        for i, start in enumerate(range(0, len(paths), shard_size)):
            sp = paths[start:start + shard_size]
            key = hashlib.sha256(json.dumps([meta, sp]).encode()).hexdigest()
            base = os.path.join(out, f"part-{i:05d}")
            shards.append((i, sp, base + fmt, base + ".done.json", key))

    res = EmbedResult()
    todo = []
    for shard in shards:
        done = _finished_shard(shard)
        if done is None:
            todo.append(shard)
            continue
        res.shards_reused += 1
        res.embedded += done["embedded"]
        res.skipped.extend((p, c) for p, c in done["skipped"])
        res.outputs.extend(done["files"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(s[1]) for s in todo), unit="img")
    stream = decode_stream([p for s in todo for p in s[1]], encoder.preprocessor, workers,
                           window=batch_size + 2 * workers)
    try:
        for (_i, sp, data_file, marker, key) in todo:
            rows, kept, sizes, skipped = [], [], [], []
            batch: list = []

            def flush():
                if batch:
                    emb = encoder.forward(np.stack(batch), output)
                    rows.append(_normalize(emb) if normalize else emb)
                    batch.clear()

            for _ in range(len(sp)):
                p, got = next(stream)
                if bar is not None:
                    bar.update(1)
                if isinstance(got, Exception):
                    cause = _cause(p, got)
                    if on_error == "fail":
                        raise ValueError(cause) from got
                    log(skip_warning(p, cause))
                    skipped.append((p, cause))
                    continue
                batch.append(got[0])
                kept.append(p)
                sizes.append(tuple(int(v) for v in got[1]))
                if len(batch) >= batch_size:
                    flush()
            flush()
            res.embedded += len(kept)
            res.skipped.extend(skipped)
            if marker is None:
                if not kept:
                    raise ValueError(f"no image could be embedded ({len(skipped)} skipped); nothing written")
                res.paths = kept
            files = []
            if kept:
                emb = np.concatenate(rows, axis=0)
                res.row_shape = tuple(int(v) for v in emb.shape[1:])
                files = (_write_npy(data_file, emb, kept) if fmt == ".npy"
                         else _write_parquet(data_file, emb, kept, sizes, meta))
            res.outputs.extend(files)
            if marker is not None:
                record = {"key": key, "embedded": len(kept), "skipped": skipped,
                          "files": [os.path.basename(f) for f in files]}
                _replace_atomic(marker, lambda tmp: _write_json(tmp, record))
    finally:
        stream.close()
        if bar is not None:
            bar.close()
    return res


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def _finished_shard(shard) -> Optional[dict]:
    """The marker of a shard completed by an earlier run with the same inputs and settings."""
    _i, _sp, data_file, marker, key = shard
    if marker is None or not os.path.isfile(marker):
        return None
    try:
        with open(marker, encoding="utf-8") as f:
            done = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(done, dict) or done.get("key") != key:
        return None
    folder = os.path.dirname(marker)
    files = [os.path.join(folder, f) for f in done.get("files", [])]
    if not all(os.path.isfile(f) for f in files):
        return None
    done["files"] = files
    return done


def read_shards(folder: str) -> Tuple[np.ndarray, List[str]]:
    """A sharded .npy output read back: (embeddings in input order, their paths)."""
    names = sorted(n for n in os.listdir(folder) if n.startswith("part-") and n.endswith(".npy"))
    embs, paths = [], []
    for n in names:
        p = os.path.join(folder, n)
        embs.append(np.load(p))
        with open(paths_file(p), encoding="utf-8") as f:
            paths.extend(line.rstrip("\n") for line in f)
    return (np.concatenate(embs, axis=0) if embs else np.zeros((0,), np.float32)), paths

