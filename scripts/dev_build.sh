#!/usr/bin/env bash
# Development build: compiles the C++ core into build/dev and copies both modules (_core and
# the test hooks, _testing) into pyvitcpp/,
# so `python -m pytest` from the repo root tests the working tree without a pip install.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/dev}
PYBIND11_DIR=$(python -c "import pybind11; print(pybind11.get_cmake_dir())")
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYVITCPP_INPLACE=ON \
  -Dpybind11_DIR="$PYBIND11_DIR" -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
