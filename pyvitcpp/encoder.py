"""The Encoder: a GGUF model plus its preprocessing, numpy in, numpy out."""
from __future__ import annotations

import itertools
import numbers
import os
from typing import Iterable, Sequence

import numpy as np

from . import _core
from .preprocess import Preprocessor


def _check_threads(threads):
    """None, or an int in [1, _core.MAX_THREADS] (bool and floats are refused)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be an integer, got {threads!r}")
    threads = int(threads)
    if threads < 1 or threads > _core.MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {_core.MAX_THREADS}, got {threads}")
    return threads


def _is_batch_of_images(images) -> bool:
    return isinstance(images, (list, tuple))


def _is_single_image(images) -> bool:
    """A path, a PIL image or one uint8 HxW(x3) array (anything else is a batch or an iterable)."""
    if isinstance(images, (str, bytes, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        return images.dtype != object and images.ndim < 4 and not (images.dtype == np.float32 and images.ndim == 4)
    return type(images).__module__.startswith("PIL.")


def _normalize(emb: np.ndarray) -> np.ndarray:
    """L2-normalise each embedding: the last axis, or the channels (axis 1) of [B, C, H, W] maps."""
    norms = np.linalg.norm(emb, axis=1 if emb.ndim == 4 else -1, keepdims=True)
    return emb / np.maximum(norms, 1e-12)


def _reopen(path, options, pretrained):
    """Unpickle an Encoder: open its file again, or resolve its pretrained name where the path is
    missing (another machine)."""
    if pretrained and not os.path.exists(path):
        return Encoder.from_pretrained(**pretrained, **options)
    return Encoder(path, **options)


class Encoder:
    """Runs one GGUF vision model.

    Parameters
    ----------
    path: the .gguf file.
    threads: compute threads (default: OMP_NUM_THREADS when set, else the physical cores).
    isa: force a kernel level ("ref", "avx2", "avx512"); default: PYVITCPP_ISA or the best one.
    image_size: (H, W) images are preprocessed to (default: the size the GGUF records); any size
        of at least one patch runs, e.g. (518, 518) for DINOv2 or (224, 336).
    mmap: True (default) memory-maps the file: opening is quick and the weights' pages are shared
        with other processes, but the file must not be truncated or rewritten in place while the
        Encoder is alive (reading a page past the new end kills the process with SIGBUS; replacing
        it by a rename, as `convert` and `quantize` do, is safe). False reads the whole file into
        memory once, after which the file may change or disappear.
    nonfinite: what a NaN or infinite input pixel does: "raise" (default: a ValueError naming
        how many and where, since the outputs would be NaN), "warn" (a RuntimeWarning, then the
        run) or "ignore".
    winograd: True (default) runs 3x3 stride-1 convolutions (YOLO, ResNet, the SAM neck) as
        Winograd F(4x4, 3x3) where the kernel level has it: 1.1-1.3x faster models, rounding
        errors about 10x the direct convolution's (still ~1e-6 of the outputs in F32), and
        transformed weights of 4x the 3x3 weights they cover. False keeps them direct
        convolutions (less memory). PYVITCPP_WINOGRAD=0 turns it off for every Encoder.

    Encoders survive ``os.fork()``: a child (e.g. a ``multiprocessing`` worker with the "fork"
    start method) can use an Encoder created in the parent; its compute threads are started
    afresh in the child on first use.

    Calls are thread-safe (runs on one Encoder are serialised); the GIL is released while the
    engine computes, so other Python threads keep running.
    """

    def __init__(self, path, *, threads: int | None = None, isa: str | None = None,
                 image_size: Sequence[int] | None = None, mmap: bool = True, nonfinite: str = "raise",
                 winograd: bool = True):
        if nonfinite not in ("raise", "warn", "ignore"):
            raise ValueError(f"nonfinite must be 'raise', 'warn' or 'ignore', got {nonfinite!r}")
        if not isinstance(mmap, (bool, np.bool_)):  # mmap="no" is truthy: never guess
            raise TypeError(f"mmap must be True or False, got {mmap!r}")
        if not isinstance(winograd, (bool, np.bool_)):
            raise TypeError(f"winograd must be True or False, got {winograd!r}")
        self._nonfinite = nonfinite
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"expected a .gguf file, got a directory: {path}")
        threads = _check_threads(threads)
        self._options = dict(threads=threads, isa=isa, mmap=bool(mmap), nonfinite=nonfinite, winograd=bool(winograd),
                             image_size=None if image_size is None else tuple(int(v) for v in image_size))
        self._pretrained = None
        self.path = path
        self._model = _core.Model(path, threads or 0, isa or "", bool(mmap), bool(winograd))
        self._file = self._model.file
        self.metadata: dict = dict(self._file.metadata)
        self.preprocessor = Preprocessor.from_metadata(self.metadata)
        if image_size is not None:  # run at another resolution (the position table is resized)
            self.preprocessor = self.preprocessor.resized(image_size)
        labels = self.metadata.get("classifier.labels")
        self.labels: list[str] | None = list(labels) if labels is not None else None
        hp = {}
        for k, v in self._model.hparams.items():
            hp[k] = int(v) if v.lstrip("-").isdigit() else {"true": True, "false": False}.get(v, v)
        self.config: dict = {
            "name": self.metadata.get("general.name"),
            **hp,
            "preprocess": self.preprocessor.config(),
            "outputs": list(self._model.output_names),
            "threads": self._model.threads,
            "isa": self._model.isa,
        }

    @classmethod
    def from_pretrained(cls, name_or_path="default", *, dtype: str = "f32", revision: str | None = None,
                        cache_dir: str | None = None, model_name: str | None = None, verbose: bool = False,
                        **kwargs) -> "Encoder":
        """Open a model by name: "default" (EfficientNet-Lite0), a .gguf, a local Hugging Face /
        timm folder or checkpoint (``model_name=`` for timm / open_clip state dicts), or a hub id
        (``org/name``, ``hf-hub:org/name``, ``timm/name``; needs ``pyvitcpp[hub]``). Checkpoints
        are converted once to ``dtype`` into the user cache (pyvitcpp.hub); ``kwargs`` go to
        Encoder (threads, isa, image_size, mmap, nonfinite, winograd)."""
        from .hub import resolve

        path = resolve(name_or_path, dtype=dtype, revision=revision, cache_dir=cache_dir,
                       model_name=model_name, verbose=verbose)
        enc = cls(path, **kwargs)
        enc._pretrained = dict(name_or_path=name_or_path, dtype=dtype, revision=revision, model_name=model_name)
        return enc

    def __reduce__(self):
        """Pickling (Dask, Spark, multiprocessing spawn, Ray): the model is opened again by path
        with the same options, or by its pretrained name where the path does not exist."""
        return (_reopen, (os.path.abspath(self.path), self._options, self._pretrained))

    # ----------------------------------------------------------------------------------------
    @property
    def output_names(self) -> list[str]:
        return list(self._model.output_names)

    @property
    def threads(self) -> int:
        return self._model.threads

    @property
    def isa(self) -> str:
        return self._model.isa

    def __repr__(self) -> str:
        return (f"Encoder({self.path!r}, architecture={self.config.get('architecture')!r}, "
                f"threads={self.threads}, isa={self.isa!r})")

    # ----------------------------------------------------------------------------------------
    def preprocess(self, images) -> np.ndarray:
        """Images (paths, PIL images, uint8 HxWx3 arrays, or float32 [B,3,H,W]) -> float32 [B,3,H,W]."""
        return self.preprocessor(images)

    def forward(self, pixels, output: str | Sequence[str] = "last_hidden_state"):
        """Run preprocessed pixels float32 [B,3,H,W] (or [3,H,W]).

        `output` is one name (returns an array) or a list of names (returns a dict).
        Names: last_hidden_state, cls, pooled, logits, embedding, patch_tokens, feature_map,
        hidden_states.{i} (see `output_names`). Any H, W of at least one patch runs (the position
        table is resized as the reference library does, cached per size).
        """
        pixels = self._check_pixels(pixels)
        names = [output] if isinstance(output, str) else list(output)
        if not names:
            raise ValueError("output must name at least one output")
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"output names must be strings, got {n!r}")
            if n not in self._model.output_names:
                raise ValueError(f"unknown output {n!r}; this model offers: {', '.join(self._model.output_names)}")
        result = self._model.run(pixels, names)
        return result[output] if isinstance(output, str) else result

    def encode(self, images, *, batch_size: int = 32, normalize: bool = False,
               show_progress_bar: bool = False, output: str = "embedding") -> np.ndarray:
        """Embeddings (N, D) float32 for N images; `normalize` L2-normalises each row (the
        channels of [N, C, H, W] maps).

        images: one image (path, PIL image, uint8 HxWx3 array), or any iterable of them (a list,
        a generator, a 1-D object array, a pandas Series), a uint8 [N, H, W, 3] batch, or float32
        [N, 3, H, W] pixels. show_progress_bar draws a tqdm bar on stderr (terminal or not)."""
        chunks = list(self.iter_encode(images, batch_size=batch_size, normalize=normalize,
                                       show_progress_bar=show_progress_bar, output=output))
        if chunks:
            return np.concatenate(chunks, axis=0)
        return np.zeros((0, self.config.get("embedding_length", 0)), np.float32)

    def iter_encode(self, images, *, batch_size: int = 32, normalize: bool = False,
                    show_progress_bar: bool = False, output: str = "embedding"):
        """Like encode, one array per batch of at most batch_size images, reading `images`
        lazily: for inputs larger than memory."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        for pixels in self._batches(images, int(batch_size), show_progress_bar):
            emb = self.forward(pixels, output)
            yield _normalize(emb) if normalize else emb

    def classify(self, images, *, top_k: int = 5, batch_size: int = 32):
        """Top-k classes with softmax probabilities.

        One image -> a list of {'label', 'score', 'index'} dicts; a list of images -> a list of
        such lists.
        """
        if "logits" not in self._model.output_names:
            raise ValueError(f"{self.path}: this model has no classifier head")
        single = _is_single_image(images)
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
            raise TypeError(f"top_k must be an integer, got {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        logits = self.encode(images, batch_size=batch_size, output="logits")
        k = min(int(top_k), logits.shape[1])
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        out = []
        for row in probs:
            idx = np.argsort(-row, kind="stable")[:k]
            out.append([{"label": self._label(i), "score": float(row[i]), "index": int(i)} for i in idx])
        return out[0] if single else out

    def detect(self, images, *, conf: float = 0.25, iou: float = 0.45, max_det: int = 300, batch_size: int = 8):
        """Objects in images, for detection models (a ``detect.kind`` in the file: Darknet YOLO,
        Ultralytics YOLOv8/YOLO11).

        Images are letterboxed to the model's input size; the heads are decoded (boxes whose score
        exceeds `conf`), class-aware NMS drops boxes overlapping a better one of the same class by
        IoU > `iou` (at most `max_det` kept), and boxes are mapped back to the original image
        (clipped to it). float32 [B,3,H,W] pixels give boxes in input pixels.

        One image -> a dict {'boxes': float32 [N, 4] xyxy, 'scores': float32 [N],
        'class_ids': int64 [N], 'labels': list of N str}, by decreasing score; a list of images ->
        a list of such dicts.
        """
        from .detect import detect

        return detect(self, images, conf=conf, iou=iou, max_det=max_det, batch_size=batch_size)

    # ----------------------------------------------------------------------------------------
    def _label(self, i: int) -> str:
        if self.labels is not None and i < len(self.labels):
            return self.labels[i]
        return f"LABEL_{i}"

    def _check_pixels(self, pixels) -> np.ndarray:
        if not isinstance(pixels, np.ndarray):
            raise TypeError(f"pixels must be a numpy float32 array [B,3,H,W], got {type(pixels).__name__}")
        if pixels.dtype != np.float32:
            raise TypeError(f"pixels must be float32, got {pixels.dtype} (use Encoder.preprocess for images)")
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim != 4:
            raise ValueError(f"pixels must have shape [B, C, H, W], got {pixels.shape}")
        if pixels.shape[0] == 0:
            raise ValueError("pixels hold no images (batch of 0)")
        if self._nonfinite != "ignore" and not np.isfinite(pixels).all():
            bad = ~np.isfinite(pixels)
            images = sorted({int(i) for i in np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0]})
            msg = (f"{int(bad.sum())} NaN/infinite input pixel value(s) in image(s) {images[:10]}: the outputs "
                   "would be NaN (Encoder(..., nonfinite='warn' or 'ignore') to run anyway)")
            if self._nonfinite == "raise":
                raise ValueError(msg)
            import warnings
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return np.ascontiguousarray(pixels)

    def _batches(self, images, batch_size: int, progress: bool) -> Iterable[np.ndarray]:
        if isinstance(images, np.ndarray) and images.dtype == np.float32 and images.ndim in (3, 4):
            px = self._check_pixels(images)
            for i in range(0, px.shape[0], batch_size):
                yield px[i:i + batch_size]
            return
        if _is_single_image(images):
            images = [images]
        elif isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4:
            images = list(images)  # [N, H, W, 3] uint8: views, one per image
        elif isinstance(images, dict) or not hasattr(images, "__iter__"):
            raise TypeError(f"unsupported images {type(images).__name__}: a path, a PIL image, a uint8 array, "
                            "an iterable of those, or float32 [B,3,H,W] pixels")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(images) if hasattr(images, "__len__") else None, unit="img")
        try:
            it = iter(images)
            while True:
                chunk = list(itertools.islice(it, batch_size))
                if not chunk:
                    break
                yield self.preprocessor(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()


def load(path, **kwargs) -> Encoder:
    """Same as Encoder(path, **kwargs)."""
    return Encoder(path, **kwargs)
