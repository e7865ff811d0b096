"""Checkpoint -> GGUF conversion.

    >>> from pyvitcpp.convert import convert
    >>> convert("vit-base-patch16-224/", "vit-b16.gguf")                      # HF folder
    >>> convert("deit_tiny.pth", "deit-t.gguf", model_name="deit_tiny_patch16_224")  # timm

Command line: ``pyvitcpp convert SRC -o OUT`` or ``python scripts/convert_to_gguf.py SRC -o OUT``.
The file layout is docs/GGUF_SCHEMA.md; loaders are registered by source kind in
:mod:`._registry` (``hf``, ``timm``).
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence

from ._model import ConversionError, ConvertedModel, PreprocessSpec
from ._registry import Loader, detect_source, get_loader, loaders, register_loader
from .writer import OUTTYPES, read_gguf_metadata, write_gguf

__all__ = ["convert", "load_model", "build_arg_parser", "run_from_args", "main",
           "ConversionError", "ConvertedModel", "PreprocessSpec", "Loader", "register_loader",
           "read_gguf_metadata"]


def load_model(src, *, source: str = "auto", model_name: Optional[str] = None, labels=None,
               name: Optional[str] = None, model_kwargs: Optional[dict] = None) -> ConvertedModel:
    """Read a checkpoint into a :class:`ConvertedModel` (tensors + metadata) without writing."""
    src = os.fspath(src)
    if not os.path.exists(src):
        raise FileNotFoundError(f"source not found: {src}")
    loader = detect_source(src, model_name) if source in (None, "auto") else get_loader(source)
    return loader.load(src, model_name=model_name, labels=labels, name=name,
                       model_kwargs=model_kwargs)


def default_out_path(src: str, outtype: str) -> str:
    stem = os.path.basename(os.path.normpath(os.path.abspath(src)))
    stem = os.path.splitext(stem)[0] if os.path.isfile(src) else stem
    return os.path.abspath(f"{stem}-{outtype}.gguf")


def convert(src, out=None, *, outtype: str = "f16", model_name: Optional[str] = None, labels=None,
            verbose: bool = True, source: str = "auto", name: Optional[str] = None,
            model_kwargs: Optional[dict] = None) -> str:
    """Convert a checkpoint to a GGUF file; returns the output path.

    src: a Hugging Face folder (config.json + model.safetensors / pytorch_model.bin), a timm hub
        folder, or a timm state dict file (.safetensors / .pth / .pt / .bin).
    out: output path (default: ``<src name>-<outtype>.gguf`` in the current directory).
    outtype: ``f32``, ``f16`` (matrices and the patch conv F16; 1-D tensors and embeddings F32), or a
        block type ``q8_0``, ``q4_0``, ``q4_1``, ``q5_0``, ``q5_1`` (matrices quantized; a matrix whose
        rows are not a multiple of 32, like the patch conv, falls back to F16 with a note).
    model_name: the timm model name (required for a bare state dict), e.g. ``deit_tiny_patch16_224``.
    labels: class names (a list, or a text file with one per line) overriding the checkpoint's.
    source: ``auto``, ``hf`` or ``timm``.
    name: ``general.name`` (default: folder name or timm model name).
    model_kwargs: extra ``timm.create_model`` arguments (e.g. ``{"global_pool": "avg"}``).

    Raises FileNotFoundError for missing inputs and ValueError (ConversionError) for checkpoints
    that are unsupported or inconsistent.
    """
    if outtype not in OUTTYPES:
        raise ConversionError(f"unsupported outtype {outtype!r} (choose from {', '.join(OUTTYPES)})")
    model = load_model(src, source=source, model_name=model_name, labels=labels, name=name,
                       model_kwargs=model_kwargs)
    if out is None:
        out = default_out_path(os.fspath(src), outtype)
    return write_gguf(model, out, outtype=outtype, verbose=verbose)


def _parse_model_args(items: Optional[Sequence[str]]) -> Dict[str, object]:
    kwargs: Dict[str, object] = {}
    for item in items or ():
        if "=" not in item:
            raise ConversionError(f"--model-arg expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            kwargs[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value
    return kwargs


def build_arg_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """Add the converter's arguments to ``parser`` (e.g. a ``convert`` subparser) or a new one."""
    if parser is None:
        parser = argparse.ArgumentParser(
            prog="pyvitcpp convert",
            description="Convert a ViT/DeiT checkpoint (Hugging Face folder or timm state dict) to GGUF.")
    parser.add_argument("src", metavar="SRC",
                        help="Hugging Face folder, timm hub folder, or timm state dict "
                             "(.safetensors/.pth/.pt/.bin)")
    parser.add_argument("-o", "--out", default=None,
                        help="output .gguf path (default: <SRC name>-<outtype>.gguf)")
    parser.add_argument("--outtype", choices=OUTTYPES, default="f16",
                        help="weight type of matrices (1-D tensors and embeddings stay F32; block types fall "
                             "back to F16 for rows not a multiple of 32); default f16")
    parser.add_argument("--model-name", default=None,
                        help="timm model name, required for a bare state dict (e.g. deit_tiny_patch16_224); "
                             "for an ultralytics YOLO state dict its yaml name (yolov8n.yaml, yolo11s.yaml)")
    parser.add_argument("--model-arg", action="append", default=None, metavar="KEY=VALUE",
                        help="extra timm.create_model argument, repeatable (e.g. global_pool=avg)")
    parser.add_argument("--source", choices=["auto"] + [ld.name for ld in loaders()], default="auto",
                        help="source kind (default: detected)")
    parser.add_argument("--cfg", default=None, metavar="PATH",
                        help="darknet .cfg of a .weights file (default: the .cfg of the same stem beside it)")
    parser.add_argument("--name", default=None, help="general.name written to the file")
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="class names, one per line, in logit order (overrides the checkpoint's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pyvitcpp: warning: {message}", file=sys.stderr)


def run_from_args(args: argparse.Namespace) -> int:
    """Run a conversion from parsed arguments; 0 on success, 1 on a user error (message printed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        try:
            model_kwargs = _parse_model_args(getattr(args, "model_arg", None))
            if getattr(args, "cfg", None):
                model_kwargs["cfg"] = args.cfg
            convert(args.src, args.out, outtype=args.outtype, model_name=args.model_name,
                    labels=args.labels, verbose=not args.quiet, source=args.source,
                    name=args.name, model_kwargs=model_kwargs or None)
        except (ConversionError, ValueError, FileNotFoundError, ImportError) as e:
            print(f"pyvitcpp: error: {e}", file=sys.stderr)
            return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_arg_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed its message
        return int(e.code or 0)
    return run_from_args(args)


class _CallableModule(type(sys)):
    """Importing this submodule rebinds ``pyvitcpp.convert`` from the function to the module:
    calling the module converts too, so ``pyvitcpp.convert(src, out)`` works either way."""

    def __call__(self, src, out=None, **kwargs):
        return convert(src, out, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
