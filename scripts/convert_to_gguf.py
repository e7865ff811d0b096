#!/usr/bin/env python3
"""Convert a ViT/DeiT checkpoint to GGUF (same as ``pyvitcpp convert``); see --help."""
import os
import sys

if __name__ == "__main__":
    # From a source checkout, import the working tree's package (the converter is pure Python).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from pyvitcpp.convert import main

    raise SystemExit(main())
