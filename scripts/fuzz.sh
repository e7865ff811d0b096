#!/usr/bin/env bash
# Fuzz the GGUF reader and the model loader (fuzz/gguf_model_fuzz.cpp) with libFuzzer under
# ASan + UBSan (-fno-sanitize-recover=undefined) and LeakSanitizer.
#
#   scripts/fuzz.sh [SECONDS] [libFuzzer args...]   build, make seeds if missing, fuzz SECONDS (default 60)
#   scripts/fuzz.sh build                           only build (build/fuzz: fuzzer, replay driver, ASan modules)
#   scripts/fuzz.sh seeds                           only make the seed corpus (prints its folder)
#   scripts/fuzz.sh replay FILE_OR_DIR...           run inputs once through the replay driver
#
# Environment: FUZZ_DIR (default build/fuzz), FUZZ_CORPUS (the growing corpus, default
# $FUZZ_DIR/corpus), FUZZ_SEEDS (default $FUZZ_DIR/seeds, made by fuzz/make_seeds.py with our
# converter), FUZZ_NICE=1 to run at nice 19, FUZZ_TARGET=load for the target without the
# forward (gguf_load_fuzz: reader + loader, one thread, ~100x the executions per second). A crash, sanitizer report, leak, timeout (10 s per
# input) or out-of-memory (2 GB) input is written under $FUZZ_DIR/artifacts/ and the script
# exits non-zero. The final line of libFuzzer's log gives the executions ("Done N runs").
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
CXX_CLANG=${CXX_CLANG:-$(command -v clang++ || true)}

build() {
  if [ -z "$CXX_CLANG" ]; then
    echo "fuzz.sh: clang++ not found (libFuzzer needs clang)" >&2
    exit 3
  fi
  local gen=() pyargs=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  if python -c "import pybind11" 2>/dev/null; then
    pyargs=(-DPYVITCPP_PYMODULES=ON "-Dpybind11_DIR=$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')"
            "-DPython_EXECUTABLE=$(command -v python)")
  else
    pyargs=(-DPYVITCPP_PYMODULES=OFF)
  fi
  cmake -S fuzz -B "$FUZZ_DIR" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX_CLANG" -DCMAKE_BUILD_TYPE=None \
    "${pyargs[@]}" >/dev/null
  cmake --build "$FUZZ_DIR" -j"$(nproc)"
}

seeds() {
  local dir=${FUZZ_SEEDS:-$FUZZ_DIR/seeds}
  if [ ! -f "$dir/.complete" ]; then
    python fuzz/make_seeds.py "$dir" >/dev/null
    touch "$dir/.complete"
  fi
  echo "$dir"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

case "${1:-}" in
  build)
    build
    exit 0
    ;;
  seeds)
    seeds
    exit 0
    ;;
  replay)
    shift
    build >/dev/null
    files=()
    for a in "$@"; do
      if [ -d "$a" ]; then while IFS= read -r f; do files+=("$f"); done < <(find "$a" -type f ! -name '.*' | sort)
      else files+=("$a"); fi
    done
    exec "$FUZZ_DIR/gguf_model_run" "${files[@]}"
    ;;
esac

SECONDS_TO_RUN=${1:-60}
[ $# -gt 0 ] && shift
build >/dev/null
SEEDS=$(seeds)
CORPUS=${FUZZ_CORPUS:-$FUZZ_DIR/corpus}
mkdir -p "$CORPUS" "$FUZZ_DIR/artifacts"
nice_cmd=()
[ "${FUZZ_NICE:-0}" = 1 ] && nice_cmd=(nice -n 19)
echo "fuzz.sh: ${FUZZ_TARGET:-model} target, ${SECONDS_TO_RUN}s, corpus $CORPUS, seeds $SEEDS"
target=gguf_model_fuzz
[ "${FUZZ_TARGET:-model}" = load ] && target=gguf_load_fuzz
exec "${nice_cmd[@]}" "$FUZZ_DIR/$target" -max_total_time="$SECONDS_TO_RUN" -dict=fuzz/gguf.dict \
  -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=300000 -print_final_stats=1 \
  -artifact_prefix="$FUZZ_DIR/artifacts/" "$@" "$CORPUS" "$SEEDS"
