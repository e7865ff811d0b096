// The op registry. One row per op: from an op's name, its row names everything about it.
//
//   op         shape rule (GraphBuilder::)   executor          kernel: ref twin / SIMD twins            tests                                     bench
//   Linear     linear, conv2d               exec_linear       gemm_ref.cpp, quant_ref.cpp /            test_kernels_gemm.py, test_kernels_quant.py  gemm_bench (pyvitcpp.bench)
//                                                             gemm_{avx2,avx512}.cpp, quant_*.cpp
//   LayerNorm  layernorm                    exec_layernorm    ops_ref.cpp / ops_{avx2,avx512}.cpp     test_kernels_ops.py
//   Attention  attention                    exec_attention    ops_ref.cpp / attention_{avx2,avx512}.h test_kernels_ops.py                       attention_bench
//   Copy       contiguous (views: reshape,  exec_copy         layout_body.h compiled per level         test_layout_ops.py (+ op_cases.py)        scripts/bench_ops.py
//              permute, slice, broadcast)
//   Pad        pad                          exec_pad          layout_body.h                            test_layout_ops.py
//   Roll       roll                         exec_roll         layout_body.h                            test_layout_ops.py
//   Concat     concat (split: slice views)  exec_concat       layout_body.h (copy_strided)             test_layout_ops.py
//   Eltwise    add, mul, add_mul, act_mul,  exec_eltwise      layout_body.h (+ the level's act)        test_layout_ops.py
//              activation
//   Mean       mean                         exec_mean         layout_body.h                            test_layout_ops.py
//   Im2col     conv2d (stem / quantized)    exec_im2col       conv_ops.cpp, conv_gather.cpp            test_kernels_conv.py
//   DwConv     dwconv2d                     exec_dwconv       conv_ref.cpp / conv_{avx2,avx512}.cpp   test_kernels_conv.py
//   Pool2d     pool2d                       exec_pool2d       conv_ref.cpp / conv_{avx2,avx512}.cpp   test_kernels_conv.py
//
// The layout rows' cases (tests/op_cases.py) run in test mode in test_layout_ops.py and in perf
// mode in scripts/bench_ops.py. Every row's kernels are compared level against level at tile-edge sizes and against PyTorch
// by the tests named; tests/test_avx512_emulated.py runs the avx512 ones under SIMDe where the
// CPU lacks AVX-512.
#include "ops/registry.h"

#include <stdexcept>

#include "ops/executors.h"

namespace pyvitcpp {

namespace {

const OpDef kOps[kOpTypes] = {
    {"Linear", exec_linear, flops_linear, shares_linear, nullptr},
    {"LayerNorm", exec_layernorm, nullptr, nullptr, nullptr},
    {"Attention", exec_attention, flops_attention, shares_attention, workspace_attention},
    {"Copy", exec_copy, nullptr, nullptr, nullptr},
    {"Pad", exec_pad, nullptr, nullptr, nullptr},
    {"Roll", exec_roll, nullptr, nullptr, nullptr},
    {"Concat", exec_concat, nullptr, nullptr, nullptr},
    {"Eltwise", exec_eltwise, nullptr, nullptr, nullptr},
    {"Mean", exec_mean, nullptr, nullptr, nullptr},
    {"Im2col", exec_im2col, nullptr, nullptr, nullptr},
    {"DwConv", exec_dwconv, nullptr, nullptr, nullptr},
    {"Pool2d", exec_pool2d, nullptr, nullptr, nullptr},
};

}  // namespace

const OpDef& op_def(OpType t) {
  const int i = static_cast<int>(t);
  if (i < 0 || i >= kOpTypes) throw std::logic_error("op_def: unknown op type");
  return kOps[i];
}

}  // namespace pyvitcpp
