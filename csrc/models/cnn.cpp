// CNN backbones over NHWC activations: EfficientNet (MBConv / depthwise-separable blocks; the
// Lite variants, no squeeze-excitation) and ResNet (basic and bottleneck blocks; timm and
// torchvision layouts convert to the same tensors). Batch norm is folded into each conv's
// weight and bias by the converter; docs/GGUF_SCHEMA.md lists the tensors and keys.
//
// A conv becomes one graph op: a depthwise conv is DwConv; a 1x1 stride-1 conv on NHWC rows is
// a Linear (GEMM) with its bias/activation/residual epilogue; any other conv is Im2col followed
// by a Linear whose weight was permuted at load to im2col's (ky, kx, c) column order.
#include <list>
#include <set>

#include "core/checked.h"
#include "kernels/conv.h"
#include "models/conv_weights.h"
#include "models/model.h"
#include "graph/builder.h"
#include "ops/conv_ops.h"

namespace pyvitcpp {

namespace {


struct EffBlock {
  bool has_pw = false;
  ConvW pw, dw, pwl;
  bool skip = false;
};

struct ResBlock {
  ConvW c1, c2, c3, down;
  bool has_c3 = false, has_down = false;
};

Act parse_act(const std::string& path, const std::string& key, const std::string& name) {
  if (name == "relu") return Act::Relu;
  if (name == "relu6") return Act::Relu6;
  if (name == "silu" || name == "swish") return Act::Silu;
  if (name == "hard_swish") return Act::HardSwish;
  if (name == "leaky_relu") return Act::LeakyRelu;
  throw ModelError(path + ": unsupported " + key + " '" + name + "' (relu, relu6, silu, hard_swish, leaky_relu)");
}

class CnnFamily : public ModelFamily {
 public:
  CnnFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return arch_; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;

 private:
  void load_efficientnet(const GGUFFile& f, WeightStore& w);
  void load_resnet(const GGUFFile& f, WeightStore& w);

  std::string path_, arch_, act_name_, padding_;
  Act act_ = Act::Relu;
  bool same_ = false;
  int64_t C_ = 3, embed_ = 0, min_size_ = 32;
  ConvW stem_;
  LinearWeight* fc_ = nullptr;
  // efficientnet
  std::vector<EffBlock> eblocks_;
  ConvW head_conv_;
  bool has_head_conv_ = false;
  std::vector<int64_t> feature_blocks_;
  // resnet
  std::string block_type_;
  std::vector<std::vector<ResBlock>> stages_;
  ConvLoader convs_;
};

CnnFamily::CnnFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()), convs_(w, f.path()) {
  arch_ = f.get_str("general.architecture");
  try {
    C_ = f.has(arch_ + ".num_channels") ? positive_hparam(f, arch_ + ".num_channels") : 3;
    act_name_ = f.get_str_or(arch_ + ".activation", "relu");
    padding_ = f.get_str_or(arch_ + ".padding", "symmetric");
    if (arch_ == "efficientnet") load_efficientnet(f, w);
    else load_resnet(f, w);
  } catch (const GGUFError& e) {
    throw ModelError(std::string("invalid ") + arch_ + " hyper-parameters: " + e.what());
  }
  if (w.has("fc.weight")) {
    const GGUFTensorInfo* t = f.find_tensor("fc.weight");
    if (t->ne.size() != 2) throw ModelError(path_ + ": tensor 'fc.weight' must be 2-D [num_classes, features]");
    fc_ = w.linear("fc.weight", "fc.bias", t->ne[1], embed_);
  }
}

void CnnFamily::load_efficientnet(const GGUFFile& f, WeightStore& w) {
  act_ = parse_act(path_, "efficientnet.activation", act_name_);
  if (padding_ != "same" && padding_ != "symmetric")
    throw ModelError(path_ + ": unsupported efficientnet.padding '" + padding_ + "' (same, symmetric)");
  same_ = padding_ == "same";
  const int64_t n = positive_hparam(f, "efficientnet.block_count");
  const std::vector<int64_t> strides = f.get_int_array("efficientnet.block_strides");
  if (static_cast<int64_t>(strides.size()) != n)
    throw ModelError(path_ + ": efficientnet.block_strides has " + std::to_string(strides.size()) +
                     " entries for " + std::to_string(n) + " blocks");
  const int64_t stem_stride = f.get_int_or("efficientnet.stem_stride", 2);
  if (stem_stride < 1 || stem_stride > 4) throw ModelError(path_ + ": efficientnet.stem_stride out of range");
  stem_ = convs_.load("stem", C_, stem_stride, false);
  int64_t C = stem_.OC, total_stride = stem_stride;
  for (int64_t i = 0; i < n; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    const int64_t s = strides[i];
    if (s < 1 || s > 4) throw ModelError(path_ + ": efficientnet.block_strides[" + std::to_string(i) + "] out of range");
    if (w.has(p + "se_reduce.weight") || w.has(p + "se.conv_reduce.weight"))
      throw ModelError(path_ + ": block " + std::to_string(i) + " has squeeze-excitation, which this version does not run");
    EffBlock b;
    int64_t mid = C;
    if (w.has(p + "conv_pw.weight")) {
      b.has_pw = true;
      b.pw = convs_.load(p + "conv_pw", C, 1, false);
      if (b.pw.k != 1) throw ModelError(path_ + ": " + p + "conv_pw must be 1x1");
      mid = b.pw.OC;
    }
    b.dw = convs_.load(p + "conv_dw", mid, s, true);
    b.pwl = convs_.load(p + "conv_pwl", mid, 1, false);
    if (b.pwl.k != 1) throw ModelError(path_ + ": " + p + "conv_pwl must be 1x1");
    b.skip = s == 1 && b.pwl.OC == C && f.get_int_or("efficientnet.skip", 1) != 0;
    C = b.pwl.OC;
    total_stride = checked_mul<ModelError>(total_stride, s, path_ + ": efficientnet.block_strides total stride");
    eblocks_.push_back(b);
  }
  if (w.has("head.weight")) {
    has_head_conv_ = true;
    head_conv_ = convs_.load("head", C, 1, false);
    if (head_conv_.k != 1) throw ModelError(path_ + ": head must be a 1x1 conv");
    C = head_conv_.OC;
  }
  embed_ = C;
  if (f.has("efficientnet.feature_blocks")) {
    feature_blocks_ = f.get_int_array("efficientnet.feature_blocks");
  } else {  // timm's feature_info: the last block before each stride change, and the last block
    for (int64_t i = 0; i < n; ++i)
      if (i + 1 == n || strides[i + 1] > 1) feature_blocks_.push_back(i);
  }
  for (int64_t i : feature_blocks_)
    if (i < 0 || i >= n) throw ModelError(path_ + ": efficientnet.feature_blocks entry out of range");
  min_size_ = total_stride;
}

void CnnFamily::load_resnet(const GGUFFile& f, WeightStore& w) {
  act_ = Act::Relu;
  act_name_ = "relu";
  padding_ = "symmetric";
  block_type_ = f.get_str("resnet.block_type");
  if (block_type_ != "basic" && block_type_ != "bottleneck")
    throw ModelError(path_ + ": unsupported resnet.block_type '" + block_type_ + "' (basic, bottleneck)");
  const std::vector<int64_t> depths = f.get_int_array("resnet.stage_depths");
  if (depths.empty() || depths.size() > 8) throw ModelError(path_ + ": resnet.stage_depths must have 1..8 entries");
  stem_ = convs_.load("stem", C_, 2, false);
  int64_t C = stem_.OC, total = 4;
  for (size_t s = 0; s < depths.size(); ++s) {
    if (depths[s] < 1 || depths[s] > 1024) throw ModelError(path_ + ": resnet.stage_depths entry out of range");
    std::vector<ResBlock> stage;
    for (int64_t j = 0; j < depths[s]; ++j) {
      const std::string p = "layer." + std::to_string(s) + "." + std::to_string(j) + ".";
      const int64_t stride = (s > 0 && j == 0) ? 2 : 1;
      ResBlock b;
      if (block_type_ == "basic") {
        b.c1 = convs_.load(p + "conv1", C, stride, false);
        b.c2 = convs_.load(p + "conv2", b.c1.OC, 1, false);
      } else {
        b.has_c3 = true;
        b.c1 = convs_.load(p + "conv1", C, 1, false);
        b.c2 = convs_.load(p + "conv2", b.c1.OC, stride, false);
        b.c3 = convs_.load(p + "conv3", b.c2.OC, 1, false);
      }
      const int64_t out = b.has_c3 ? b.c3.OC : b.c2.OC;
      if (w.has(p + "down.weight")) {
        b.has_down = true;
        b.down = convs_.load(p + "down", C, stride, false);
      }
      if (b.has_down && b.down.OC != out) throw ModelError(path_ + ": " + p + "down has the wrong output channels");
      if (!b.has_down && (stride != 1 || out != C))
        throw ModelError(path_ + ": block " + p + " changes shape but has no downsample conv ('" + p + "down.weight')");
      C = out;
      stage.push_back(b);
    }
    if (s > 0) total *= 2;
    stages_.push_back(std::move(stage));
  }
  embed_ = C;
  min_size_ = total;
}

std::vector<std::string> CnnFamily::output_names() const {
  std::vector<std::string> names = {"last_hidden_state", "pooled", "embedding"};
  if (fc_) names.push_back("logits");
  const size_t nf = arch_ == "efficientnet" ? feature_blocks_.size() : stages_.size() + 1;
  for (size_t i = 0; i < nf; ++i) names.push_back("features." + std::to_string(i));
  return names;
}

void CnnFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("this model takes " + std::to_string(C_) + "-channel images, got " + std::to_string(C) +
                     " channels");
  if (H < min_size_ || W < min_size_ || H > 16384 || W > 16384)
    throw ModelError("image size " + std::to_string(H) + "x" + std::to_string(W) + " is out of range for this " +
                     arch_ + " (each side must be in [" + std::to_string(min_size_) + ", 16384])");
}

std::unique_ptr<Graph> CnnFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  int counter = 0;
  auto conv = [&](const std::string& name, int x, const ConvW& c, Act act, int residual, bool nchw = false,
                  bool relu_out = false) {
    return add_conv(b, name, x, c, act, residual, nchw, same_, relu_out);
  };
  // timm's feature maps are NCHW.
  auto to_nchw = [&](int x) { return b.permute(x, {0, 3, 1, 2}); };
  auto feature = [&](int x) { b.output("features." + std::to_string(counter++), to_nchw(x)); };

  const int px = b.input("pixels", {B, C_, H, W});
  int x = conv("stem", px, stem_, act_, -1, true);
  if (arch_ == "efficientnet") {
    std::set<int64_t> feats(feature_blocks_.begin(), feature_blocks_.end());
    for (size_t i = 0; i < eblocks_.size(); ++i) {
      const EffBlock& blk = eblocks_[i];
      const std::string p = "blk." + std::to_string(i) + ".";
      int h = blk.has_pw ? conv(p + "conv_pw", x, blk.pw, act_, -1) : x;
      h = conv(p + "conv_dw", h, blk.dw, act_, -1);
      x = conv(p + "conv_pwl", h, blk.pwl, Act::None, blk.skip ? x : -1);
      if (feats.count(static_cast<int64_t>(i))) feature(x);
    }
    if (has_head_conv_) x = conv("head", x, head_conv_, act_, -1);
  } else {
    feature(x);
    const std::vector<int64_t> s = b.shape(x);
    x = b.pool2d("maxpool", x, PoolKind::Max, conv_axis_sym(s[1], 3, 2, 1, 1), conv_axis_sym(s[2], 3, 2, 1, 1));
    for (size_t st = 0; st < stages_.size(); ++st) {
      for (size_t j = 0; j < stages_[st].size(); ++j) {
        const ResBlock& blk = stages_[st][j];
        const std::string p = "layer." + std::to_string(st) + "." + std::to_string(j) + ".";
        const int shortcut = blk.has_down ? conv(p + "down", x, blk.down, Act::None, -1) : x;
        int h = conv(p + "conv1", x, blk.c1, Act::Relu, -1);
        // The block's ReLU comes after the residual add: the last conv's epilogue adds the
        // shortcut, then takes max(., 0) (relu_out).
        if (blk.has_c3) {
          h = conv(p + "conv2", h, blk.c2, Act::Relu, -1);
          x = conv(p + "conv3", h, blk.c3, Act::None, shortcut, false, true);
        } else {
          x = conv(p + "conv2", h, blk.c2, Act::None, shortcut, false, true);
        }
      }
      feature(x);
    }
  }
  b.output("last_hidden_state", to_nchw(x));
  const std::vector<int64_t> s = b.shape(x);
  const int pooled = b.mean("pooled", b.reshape(x, {s[0], s[1] * s[2], s[3]}), 1);
  b.output("pooled", pooled);
  b.output("embedding", pooled);
  if (fc_) b.output("logits", b.linear("fc", pooled, fc_));
  return g;
}

std::map<std::string, std::string> CnnFamily::hparams() const {
  std::map<std::string, std::string> h = {
      {"architecture", arch_},
      {"embedding_length", std::to_string(embed_)},
      {"num_channels", std::to_string(C_)},
      {"activation", act_name_},
      {"padding", padding_},
      {"num_classes", std::to_string(fc_ ? fc_->N : 0)},
      {"min_image_size", std::to_string(min_size_)},
  };
  if (arch_ == "efficientnet") {
    h["block_count"] = std::to_string(eblocks_.size());
  } else {
    h["block_type"] = block_type_;
    std::string d;
    for (size_t s = 0; s < stages_.size(); ++s) d += (s ? "," : "") + std::to_string(stages_[s].size());
    h["stage_depths"] = d;
  }
  return h;
}

}  // namespace

std::unique_ptr<ModelFamily> make_cnn_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<CnnFamily>(f, w);
}

}  // namespace pyvitcpp
