#!/usr/bin/env bash
# The fast test subset against the engine built with ASan + UBSan (-fno-sanitize-recover=undefined):
# the Python modules from build/fuzz (scripts/fuzz.sh build) in a staged copy of the package, run
# by an interpreter with clang's ASan runtime preloaded. LeakSanitizer is off for the interpreter
# (CPython's own allocations at exit are not ours); the seed corpus is then replayed through the
# C++ driver with LeakSanitizer on.
#
#   scripts/asan_tests.sh [pytest args...]     default: the subset in ASAN_TESTS below
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
scripts/fuzz.sh build >/dev/null

STAGE=$FUZZ_DIR/stage
rm -rf "$STAGE"
mkdir -p "$STAGE/pyvitcpp"
for f in pyvitcpp/* ; do
  case "$f" in *.so|*/__pycache__) continue ;; esac
  ln -s "$PWD/$f" "$STAGE/pyvitcpp/"
done
cp "$FUZZ_DIR"/_core*.so "$FUZZ_DIR"/_testing*.so "$STAGE/pyvitcpp/"

ASAN_TESTS=(tests/test_gguf.py tests/test_errors.py tests/test_reliability.py tests/test_concurrency.py
            tests/test_layout_ops.py tests/test_graph_attention.py tests/test_kernels_conv.py)
[ $# -gt 0 ] && ASAN_TESTS=("$@")

RT=$(clang++ -print-file-name=libclang_rt.asan-x86_64.so)
echo "asan_tests.sh: ${ASAN_TESTS[*]}"
LD_PRELOAD="$RT" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
PYVITCPP_STAGE="$PWD/$STAGE" python scripts/_staged_pytest.py -q -x -p no:cacheprovider "${ASAN_TESTS[@]}"

echo "asan_tests.sh: replaying the seed corpus with LeakSanitizer"
scripts/fuzz.sh replay "$(scripts/fuzz.sh seeds)"
