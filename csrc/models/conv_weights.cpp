#include "models/conv_weights.h"

#include "core/checked.h"
#include "kernels/conv.h"
#include "ops/conv_ops.h"

namespace pyvitcpp {

ConvW ConvLoader::load(const std::string& prefix, int64_t C_in, int64_t stride, bool depthwise) {
  WeightStore& w = w_;
  const std::string wn = prefix + ".weight", bn = prefix + ".bias";
  const GGUFTensorInfo* t = w.file().find_tensor(wn);
  if (!t) throw ModelError(path_ + ": required tensor '" + wn + "' is missing");
  // A 1x1 conv may be stored 2-D [OC, C]: that puts C innermost, so block-quantized types
  // (blocks of 32 along the innermost dim) apply to it.
  const bool flat = t->ne.size() == 2 && !depthwise;
  if (t->ne.size() != 4 && !flat)
    throw ModelError(path_ + ": tensor '" + wn + "' must be a 4-D conv weight [OC, C/groups, k, k]" +
                     (depthwise ? "" : " or a 2-D 1x1 conv weight [OC, C]"));
  const int64_t KW = flat ? 1 : t->ne[0], KH = flat ? 1 : t->ne[1];
  const int64_t Cg = flat ? t->ne[0] : t->ne[2], OC = flat ? t->ne[1] : t->ne[3];
  if (KH != KW || KH < 1 || KH > 15 || (KH % 2) == 0)
    throw ModelError(path_ + ": tensor '" + wn + "' has a " + std::to_string(KH) + "x" + std::to_string(KW) +
                     " kernel; odd square kernels up to 15 are supported");
  const DType type = static_cast<DType>(t->type);
  // 1x1 convs go straight to WeightStore::linear, which takes every weight type it can run.
  if (KH != 1 && type != DType::F32 && type != DType::F16)
    throw ModelError(path_ + ": conv weight '" + wn + "' has type " + dtype_name(t->type) + "; must be f32 or f16");
  ConvW c;
  c.C = C_in;
  c.OC = OC;
  c.k = KH;
  c.stride = stride;
  if (depthwise) {
    if (Cg != 1 || OC != C_in)
      throw ModelError(path_ + ": tensor '" + wn + "' should be a depthwise weight [" + std::to_string(C_in) +
                       ", 1, k, k]");
    owned_.emplace_back(static_cast<size_t>(checked_mul<ModelError>(OC, KH * KW, path_ + ": tensor '" + wn + "' taps")));
    depthwise_weight_taps(t->data, type, OC, KH, KW, owned_.back().data());
    c.dw = owned_.back().data();
    c.dw_b = w.vec_opt(bn, OC);
    return c;
  }
  if (Cg != C_in)
    throw ModelError(path_ + ": tensor '" + wn + "' has " + std::to_string(Cg) + " input channels, expected " +
                     std::to_string(C_in) + " (grouped convolutions other than depthwise are not supported)");
  if (KH == 1) {
    c.lin = w.linear(wn, bn, OC, C_in);
  } else {
    const size_t esz = type == DType::F32 ? 4 : 2;
    const int64_t K = checked_mul<ModelError>(Cg, KH * KW, path_ + ": tensor '" + wn + "' row length");
    AlignedBuffer buf(static_cast<size_t>(checked_mul<ModelError>(OC, K, path_ + ": tensor '" + wn + "' element count")) * esz);
    permute_conv_weight_khwc(t->data, type, OC, Cg, KH, KW, buf.data());
    c.lin = w.linear_owned(wn, type, OC, K, std::move(buf), w.vec_opt(bn, OC), KH == 3 && stride == 1 ? Cg : 0);
  }
  return c;
}
int add_conv(GraphBuilder& b, const std::string& name, int x, const ConvW& c, Act act, int residual, bool nchw,
             bool same, bool relu_out) {
  const std::vector<int64_t> s = b.shape(x);
  const int64_t h = nchw ? s[2] : s[1], w = nchw ? s[3] : s[2];
  auto axis = [&](int64_t in) {
    return same ? conv_axis_same(in, c.k, c.stride, 1)
                : conv_axis_sym(in, c.k, c.stride, 1, ((c.stride - 1) + (c.k - 1)) / 2);
  };
  const ConvAxis ah = axis(h), aw = axis(w);
  if (c.dw) {
    if (residual >= 0) throw ModelError("internal: residual on a depthwise conv");
    return b.dwconv2d(name, x, c.dw, c.dw_b, ah, aw, act);
  }
  return b.conv2d(name, x, c.lin, ah, aw, act, residual, nchw, relu_out);
}

}  // namespace pyvitcpp
