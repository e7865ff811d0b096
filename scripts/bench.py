#!/usr/bin/env python
"""Thin wrapper: the benchmark lives in pyvitcpp/bench.py (also `pyvitcpp bench`).

    python scripts/bench.py --models vit_base_patch16_224 --batch 1 8 32 --threads 2 -o bench.md
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyvitcpp.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
