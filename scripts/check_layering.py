#!/usr/bin/env python3
"""Check that no #include in csrc/ runs from a lower layer up to a higher one.

The layers of the C++ engine, lowest first (docs/ARCHITECTURE.md, "Layers"):

    0 ground   core/: dtype, fp16, isa, cpu features, aligned buffers,
               block formats (core/blocks.h), thread pool, cycle counter
    1 io       io/: the GGUF reader
    1 kernels  kernels/ (ref, avx2, avx512, dispatch): the KernelTable and what fills it
    2 quant    quant/: quantizers, the GGUF re-quantizer (reads and writes GGUF: io) and the
               panel packing of block weights (the layout kernels/quant_gemm.h defines)
    3 ops      ops/: shape logic and the glue from a node to its kernels
    4 graph    graph/: the tensor graph, builder, planner, executor
    5 models   models/: weight store, model registry, graph builders
    6 python   python/: the pybind11 modules _core and _testing

A file may include headers of its own layer and of layers with a lower rank. Layers of the
same rank (io, kernels) are independent: neither includes the other.

KNOWN lists accepted violations (none today); they are reported but do not fail the check. A KNOWN entry that no longer occurs is reported too
(remove it). Includes are resolved against csrc/ (the only include directory) and then the
including file's folder; one that resolves to neither is an error (a moved header).

Usage: python scripts/check_layering.py [--root CSRC_DIR]   (exit status 1 on a violation)
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

RANK: Dict[str, int] = {"ground": 0, "io": 1, "kernels": 1, "quant": 2, "ops": 3, "graph": 4, "models": 5,
                        "python": 6}
TOP_DIR_LAYER = {"core": "ground", "io": "io", "kernels": "kernels", "quant": "quant", "ops": "ops",
                 "graph": "graph", "models": "models", "python": "python"}

# (including file, included header), both relative to csrc/.
KNOWN: Dict[Tuple[str, str], str] = {}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc")


def layer_of(rel: str) -> Optional[str]:
    """The layer of a path relative to csrc/, or None for a folder outside the layers."""
    return TOP_DIR_LAYER.get(rel.split("/", 1)[0])


def may_include(src_layer: str, dst_layer: str) -> bool:
    return src_layer == dst_layer or RANK[dst_layer] < RANK[src_layer]


def check(root: str) -> Tuple[List[str], List[str], List[str]]:
    """(errors, known violations seen, stale KNOWN entries) for the tree under root."""
    errors, known_seen, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(SOURCE_EXT):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            src_layer = layer_of(rel)
            if src_layer is None:
                errors.append(f"{rel}: not in any layer (add its folder to scripts/check_layering.py)")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if os.path.isfile(os.path.join(root, inc)):
                        target = inc
                    elif os.path.isfile(os.path.join(dirpath, inc)):
                        target = os.path.relpath(os.path.join(dirpath, inc), root).replace(os.sep, "/")
                    else:
                        errors.append(f"{rel}:{lineno}: includes \"{inc}\", which is not under csrc/")
                        continue
                    dst_layer = layer_of(target)
                    if dst_layer is None:
                        errors.append(f"{rel}:{lineno}: includes {target}, which is not in any layer")
                        continue
                    if may_include(src_layer, dst_layer):
                        continue
                    where = (f"{rel}:{lineno}: {rel} ({src_layer}, rank {RANK[src_layer]}) includes "
                             f"{target} ({dst_layer}, rank {RANK[dst_layer]})")
                    if (rel, target) in KNOWN:
                        seen.add((rel, target))
                        known_seen.append(f"{where}: known, {KNOWN[(rel, target)]}")
                    else:
                        errors.append(where)
    stale = [f"{a} -> {b}" for (a, b) in KNOWN if (a, b) not in seen]
    return errors, known_seen, stale


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=os.path.join(os.path.dirname(here), "csrc"), help="the csrc/ folder")
    args = p.parse_args(argv)
    errors, known_seen, stale = check(args.root)
    for line in known_seen:
        print(line)
    for line in stale:
        print(f"known violation no longer present (remove it from KNOWN): {line}")
    for line in errors:
        print(f"error: {line}")
    if errors:
        print(f"{len(errors)} layering violation(s); the order is in scripts/check_layering.py and "
              "docs/ARCHITECTURE.md", file=sys.stderr)
        return 1
    print(f"layering ok ({len(known_seen)} known violation(s) left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
