"""Model names -> a GGUF file: what ``Encoder.from_pretrained`` and the CLI's ``-m`` accept.

A name is one of:
- ``"default"``: EfficientNet-Lite0 with ImageNet weights (pyvitcpp.default_model);
- a ``.gguf`` file: used as it is;
- a local Hugging Face / timm folder or a checkpoint file (``.safetensors`` / ``.pth`` / ``.pt`` /
  ``.bin``; timm and open_clip state dicts need ``model_name=``): converted;
- a hub id (``org/name``, ``hf-hub:org/name``, ``timm/name``): fetched with ``huggingface_hub``
  (``pip install "pyvitcpp[hub]"``); a GGUF in the repo is used as it is (the one whose name
  holds the dtype, else the only one), otherwise the checkpoint is converted.

Conversions are written once into the user cache (``$XDG_CACHE_HOME/pyvitcpp/converted/``, or
``cache_dir=``), one file per (source, revision, dtype, model_name, converter version); later
calls open that file. A local source's revision is its files' names, sizes and modification
times, so an edited checkpoint is converted again. Files are written to a temporary name and
renamed, so concurrent processes never see half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from typing import Optional

# Bump when the converter's output for the same source changes (cached conversions are redone).
CONVERTER_VERSION = "1"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHECKPOINT_EXT = (".safetensors", ".bin", ".pth", ".pt")


def cache_dir() -> str:
    """Where converted models are kept: ``$XDG_CACHE_HOME/pyvitcpp/converted`` (``~/.cache/...``)."""
    from .default_model import cache_dir as base

    return os.path.join(base(), "converted")


def hub_id(name: str) -> Optional[str]:
    """The Hugging Face repo id a name stands for (``hf-hub:`` prefix dropped), or None."""
    rid = name[len("hf-hub:"):] if name.startswith("hf-hub:") else name
    return rid if _HUB_ID.match(rid) and ".." not in rid else None


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _pick_repo_files(files, dtype: str, gguf: bool = True):
    """allow_patterns for a repo listing: one GGUF when there is one, else config + weights."""
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf"))
    if ggufs and gguf:
        return [_pick_gguf(ggufs, dtype)]
    weights = [f for f in files if f.endswith(".safetensors")]
    return ["*.json", "*.txt"] + (["*.safetensors"] if weights else ["*.bin", "*.pth", "*.pt"])


def _pick_gguf(names, dtype: str) -> str:
    names = sorted(names)
    if len(names) == 1:
        return names[0]
    tag = dtype.lower().replace("_", "")
    hits = [n for n in names if tag in os.path.basename(n).lower().replace("_", "").replace("-", "")]
    if len(hits) >= 1:
        return hits[0]
    raise ValueError(f"the repository holds several GGUF files and none names dtype {dtype!r}: "
                     f"{', '.join(names)}; pass dtype= one of them names, or download the one you want")


def snapshot(repo_id: str, *, revision: Optional[str] = None, dtype: str = "f32",
             hf_cache_dir: Optional[str] = None, gguf: bool = True) -> str:
    """Download (or find in the local Hugging Face cache) what pyvitcpp needs of a hub repo;
    returns the snapshot folder. Offline (HF_HUB_OFFLINE=1 or no network) only the local cache
    is used; a repo missing there raises FileNotFoundError naming the id and HF_HUB_OFFLINE."""
    try:
        import huggingface_hub
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise ImportError(f"{repo_id!r} looks like a Hugging Face hub id and huggingface_hub is not installed: "
                          'pip install "pyvitcpp[hub]" (or pass a local folder or .gguf file)') from None
    offline = _hub_offline()
    patterns = None
    if not offline:
        try:
            files = huggingface_hub.HfApi().list_repo_files(repo_id, revision=revision)
            patterns = _pick_repo_files(files, dtype, gguf)
        except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError) as e:
            raise FileNotFoundError(f"model {repo_id!r}{'@' + revision if revision else ''} not found on the "
                                    f"Hugging Face hub: {str(e).splitlines()[0]}") from None
        except Exception:  # no network, hub down: fall back on the local cache
            offline = True
    try:
        return huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=hf_cache_dir,
                                                 allow_patterns=patterns, local_files_only=offline)
    except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled, FileNotFoundError) as e:
        raise FileNotFoundError(
            f"model {repo_id!r}{'@' + revision if revision else ''} is not in the local Hugging Face cache and "
            "the hub cannot be reached (HF_HUB_OFFLINE is set, or no network): download it once online "
            f"(unset HF_HUB_OFFLINE), or pass a local folder / .gguf file ({type(e).__name__})") from None


def _fingerprint(path: str) -> list:
    """Names, sizes and mtimes of a local source (a file or a folder's top-level files)."""
    if os.path.isfile(path):
        st = os.stat(path)
        return [[os.path.basename(path), st.st_size, st.st_mtime_ns]]
    out = []
    for n in sorted(os.listdir(path)):
        p = os.path.join(path, n)
        if os.path.isfile(p):
            st = os.stat(p)
            out.append([n, st.st_size, st.st_mtime_ns])
    return out


def cache_path(source: str, revision, dtype: str, model_name: Optional[str] = None,
               cache: Optional[str] = None) -> str:
    """The cached GGUF for a conversion key (exists or not)."""
    key = json.dumps({"source": source, "revision": revision, "dtype": dtype, "model_name": model_name,
                      "converter": CONVERTER_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/\\").split("/")[-1] or "model")[-48:]
    return os.path.join(cache or cache_dir(), f"{slug}-{dtype}-{digest}.gguf")


def _run_converter(src: str, out: str, *, dtype: str, model_name: Optional[str], name: Optional[str]) -> str:
    from .convert import convert

    return convert(src, out, outtype=dtype, model_name=model_name, name=name, verbose=False)


def _converted(src: str, key_source: str, revision, *, dtype: str, model_name: Optional[str],
               cache: Optional[str], name: Optional[str], verbose: bool) -> str:
    out = cache_path(key_source, revision, dtype, model_name, cache)
    if os.path.isfile(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if verbose:
        print(f"pyvitcpp: converting {key_source} ({dtype}) once to {out}", file=sys.stderr)
    return _run_converter(src, out, dtype=dtype, model_name=model_name, name=name)


def _local_gguf(folder: str, dtype: str) -> Optional[str]:
    """The GGUF a folder holds when it has one and no convertible checkpoint."""
    names = [n for n in os.listdir(folder) if n.lower().endswith(".gguf")]
    if not names or (os.path.isfile(os.path.join(folder, "config.json"))
                     and any(n.endswith(_CHECKPOINT_EXT) for n in os.listdir(folder))):
        return None
    return os.path.join(folder, _pick_gguf(names, dtype))


def resolve(name_or_path, *, dtype: str = "f32", revision: Optional[str] = None,
            cache_dir: Optional[str] = None, model_name: Optional[str] = None,
            hf_cache_dir: Optional[str] = None, verbose: bool = False) -> str:
    """The local GGUF file for a model name (see the module docstring), converting once if needed.

    Raises FileNotFoundError for a path or hub id that cannot be found, ImportError when a hub id
    needs huggingface_hub, ValueError (ConversionError) for a checkpoint the converter refuses."""
    from .convert.writer import OUTTYPES

    if dtype not in OUTTYPES:
        raise ValueError(f"unsupported dtype {dtype!r} (choose from {', '.join(OUTTYPES)})")
    if name_or_path is None or (isinstance(name_or_path, str) and name_or_path == "default"):
        from .default_model import FILE_NAME, default_model_path, weights_path

        if dtype == "f32" and cache_dir is None:
            return default_model_path(verbose=verbose)
        return _converted(weights_path(), "default:" + FILE_NAME, None, dtype=dtype, model_name=None,
                          cache=cache_dir, name="efficientnet_lite0 (tf_efficientnet_lite0)", verbose=verbose)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"a model is a path or a hub id string, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    if os.path.exists(name):
        if os.path.isfile(name) and name.lower().endswith(".gguf"):
            return name
        if os.path.isdir(name):
            found = _local_gguf(name, dtype)
            if found:
                return found
        src = os.path.abspath(name)
        return _converted(src, src, _fingerprint(src), dtype=dtype, model_name=model_name, cache=cache_dir,
                          name=None, verbose=verbose)
    rid = hub_id(name)
    if rid is None or name.startswith((".", "/")):
        raise FileNotFoundError(f"model not found: {name} (not a file or folder, nor a hub id org/name)")
    folder = snapshot(rid, revision=revision, dtype=dtype, hf_cache_dir=hf_cache_dir)
    ggufs = [n for n in os.listdir(folder) if n.lower().endswith(".gguf")]
    if ggufs:
        return os.path.join(folder, _pick_gguf(ggufs, dtype))
    commit = os.path.basename(os.path.normpath(folder))  # snapshots/<commit hash>
    return _converted(folder, "hf-hub:" + rid, commit, dtype=dtype, model_name=model_name, cache=cache_dir,
                      name=rid, verbose=verbose)


def convert_source(src: str, *, revision: Optional[str] = None) -> str:
    """For ``pyvitcpp convert``: a hub id that is not a local path becomes its snapshot folder."""
    if os.path.exists(src):
        return src
    rid = hub_id(src)
    if rid is None:
        return src  # the converter reports "source not found"
    return snapshot(rid, revision=revision, dtype="f32", gguf=False)
