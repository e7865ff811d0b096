"""Helpers shared by the vision-tower parity tests (CLIP, SigLIP, DINOv2)."""
from __future__ import annotations

import numpy as np

from conftest import cosine, fp32_bound, image_batch

# native, a larger square and a non-square grid, in patches
GRIDS = [(2, 2), (3, 3), (2, 5)]


def pixels(real_images, n, h, w, seed=0):
    return np.ascontiguousarray(image_batch(real_images, n, max(h, w), seed=seed)[:, :, :h, :w])


def to_np(r):
    return r.detach().float().numpy() if hasattr(r, "detach") else np.asarray(r)


def check_outputs(ours: dict, ref: dict, n_layers: int, k_max: int, min_cos: float = 0.99999, bound: bool = True):
    assert set(ours) == set(ref), (sorted(ours), sorted(ref))
    for key, r in ref.items():
        r = to_np(r)
        o = ours[key]
        assert o.shape == r.shape, (key, o.shape, r.shape)
        assert np.isfinite(o).all(), key
        c = cosine(o, r)
        assert c >= min_cos, f"{key}: cosine {c:.8f} < {min_cos}"
        if bound:
            err = float(np.abs(o - r).max())
            b = fp32_bound(r, n_layers, k_max)
            assert err <= b, f"{key}: max abs error {err:.3g} > fp32 bound {b:.3g}"


def token_outputs(lhs, n_prefix: int, gh: int, gw: int) -> dict:
    """patch_tokens and feature_map from a reference last_hidden_state [B, T, D]."""
    pt = lhs[:, n_prefix:]
    B, N, D = pt.shape
    return {"patch_tokens": pt, "feature_map": pt.reshape(B, gh, gw, D).permute(0, 3, 1, 2)}

# (batch, grid): batch 1 and 3 at the native grid, batch 3 at the other two
CASES = [(1, GRIDS[0]), (3, GRIDS[0]), (3, GRIDS[1]), (3, GRIDS[2])]
CASE_IDS = [f"b{b}-{g[0]}x{g[1]}" for b, g in CASES]
