#!/usr/bin/env python3
"""Regenerate pyvitcpp/data/imagenet_classes.txt: the 1000 ImageNet-1k class names in class-index
order, one per line, from the data files shipped inside timm (timm/data/_info: the synsets in
index order and the synset -> lemma table).  The names are WordNet lemmas, e.g.
"tench, Tinca tinca", the same strings Hugging Face ViT/DeiT configs use in id2label.

    python scripts/gen_imagenet_classes.py            # writes the file
    python scripts/gen_imagenet_classes.py --check    # exit 1 if the file is out of date
"""
import argparse
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "pyvitcpp", "data",
                   "imagenet_classes.txt")


def imagenet_names():
    import timm.data
    info = os.path.join(os.path.dirname(timm.data.__file__), "_info")
    with open(os.path.join(info, "imagenet_synsets.txt"), encoding="utf-8") as f:
        synsets = [ln.strip() for ln in f if ln.strip()]
    lemmas = {}
    with open(os.path.join(info, "imagenet_synset_to_lemma.txt"), encoding="utf-8") as f:
        for ln in f:
            ln = ln.rstrip("\n")
            if ln:
                syn, lemma = ln.split("\t", 1)
                lemmas[syn] = lemma
    if len(synsets) != 1000:
        raise SystemExit(f"expected 1000 synsets, found {len(synsets)}")
    return [lemmas[s] for s in synsets]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    text = "\n".join(imagenet_names()) + "\n"
    path = os.path.normpath(OUT)
    if args.check:
        with open(path, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{path}: {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
