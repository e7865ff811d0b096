// The executors (and their cost functions) that ops/registry.cpp lists, one family per file:
// dense_ops.cpp (Linear, LayerNorm, Attention), layout_ops.cpp (Copy, Pad, Roll, Concat,
// Eltwise, Mean), conv_ops.cpp (Im2col, DwConv, Pool2d).
#pragma once
#include "ops/registry.h"

namespace pyvitcpp {

void exec_linear(const OpCtx& c, int ith, int nth);
double flops_linear(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd);
int shares_linear(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, int nth);
void exec_layernorm(const OpCtx& c, int ith, int nth);
void exec_attention(const OpCtx& c, int ith, int nth);
double flops_attention(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd);
int shares_attention(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, int nth);
size_t workspace_attention(const Node& n, const TensorDesc* const* xd, const TensorDesc& yd, const KernelTable& kt);

void exec_copy(const OpCtx& c, int ith, int nth);
void exec_pad(const OpCtx& c, int ith, int nth);
void exec_roll(const OpCtx& c, int ith, int nth);
void exec_concat(const OpCtx& c, int ith, int nth);
void exec_eltwise(const OpCtx& c, int ith, int nth);
void exec_mean(const OpCtx& c, int ith, int nth);

void exec_im2col(const OpCtx& c, int ith, int nth);
void exec_dwconv(const OpCtx& c, int ith, int nth);
void exec_pool2d(const OpCtx& c, int ith, int nth);

}  // namespace pyvitcpp
