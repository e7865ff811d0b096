"""Ray Data batch inference: ``ImageEmbedder``, a callable class for ``Dataset.map_batches``.

    import ray
    from pyvitcpp.ray import ImageEmbedder

    ds = ray.data.read_images("photos/", include_paths=True, mode="RGB")
    ds = ds.map_batches(ImageEmbedder, fn_constructor_kwargs={"model": "default"},
                        concurrency=4, batch_size=32, num_cpus=2)
    ds.write_parquet("embeddings/")          # columns: path, embedding (and image unless dropped)

Each actor opens the model once (``Encoder.from_pretrained``: a .gguf, a folder, a hub id or
"default") and runs the engine with as many threads as the CPUs Ray assigned to it
(``num_cpus``). It takes the ``image`` column (uint8 [B, H, W, 3], or an object array of
HxWx3 images of different sizes, as ``read_images`` gives) or, without one, a ``path`` column of
files, and adds an ``embedding`` column (float32 [B, D]). This module imports without Ray.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np


def actor_cpus() -> Optional[int]:
    """The CPUs Ray assigned to the current task or actor (None outside Ray)."""
    try:
        import ray
    except ImportError:
        return None
    try:
        if not ray.is_initialized():
            return None
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001  (not inside a worker, older Ray)
        return None
    return max(1, int(round(cpus))) if cpus else None


class ImageEmbedder:
    """Adds an embedding column to Ray Data batches (see the module docstring).

    model: anything Encoder.from_pretrained takes; image_column / path_column: where images are
    read from (image first); output, normalize: as Encoder.encode; drop_images: remove the image
    column from the result (it is usually not wanted in the written table); threads: engine
    threads (default: the actor's CPUs); other keywords go to Encoder.from_pretrained.
    """

    def __init__(self, model: str = "default", *, image_column: str = "image", path_column: str = "path",
                 output_column: str = "embedding", output: str = "embedding", normalize: bool = False,
                 batch_size: int = 32, drop_images: bool = False, threads: Optional[int] = None, **kwargs):
        from .encoder import Encoder

        self.encoder = Encoder.from_pretrained(model, threads=threads or actor_cpus(), **kwargs)
        self.image_column, self.path_column, self.output_column = image_column, path_column, output_column
        self.output, self.normalize, self.batch_size = output, bool(normalize), int(batch_size)
        self.drop_images = bool(drop_images)

    def __call__(self, batch):
        is_frame = type(batch).__name__ == "DataFrame"
        cols = list(batch.columns) if is_frame else list(batch.keys())
        if self.image_column in cols:
            images = batch[self.image_column]
            images = images.to_numpy() if is_frame else images
        elif self.path_column in cols:
            images = [os.fspath(p) for p in batch[self.path_column]]
        else:
            raise ValueError(f"batch has neither an {self.image_column!r} nor a {self.path_column!r} column "
                             f"(columns: {', '.join(map(str, cols))})")
        emb = self.encoder.encode(images, batch_size=self.batch_size, normalize=self.normalize, output=self.output)
        if is_frame:
            batch = batch.copy()
            batch[self.output_column] = list(emb)
            if self.drop_images and self.image_column in cols:
                batch = batch.drop(columns=[self.image_column])
            return batch
        out = dict(batch)
        out[self.output_column] = np.ascontiguousarray(emb)
        if self.drop_images:
            out.pop(self.image_column, None)
        return out
