// Ultralytics YOLOv8 / YOLO11 detection models (general.architecture "yolov8"): the layer list
// of the model's yaml (Conv, C2f, C3k2 with Bottleneck or C3k blocks, SPPF, C2PSA, nearest
// Upsample, Concat) written by the converter as per-layer keys, then the Detect head's
// convolutions. Batch norm is folded into every conv by the converter; docs/GGUF_SCHEMA.md
// lists the keys and tensors.
//
// Activations are NHWC inside. Outputs (NCHW): head.{i} = Detect's i-th input (P3, P4, P5),
// pred.{i} = Detect's i-th raw map cat(box branch [4 * reg_max], class branch [nc]) that the
// DFL decode (pyvitcpp/detect_ultralytics.py) reads, pred = those maps flattened and joined
// along the anchors [B, 4 * reg_max + nc, sum h*w] (Detect's cat(boxes, scores)), and
// features.{i} = the backbone stage outputs named by yolov8.feature_layers.
//
// C2f / C3k2 split cv1's output into two channel halves (slice views) and concatenate every
// block's output for cv2; C2PSA's attention runs the graph's attention op with q and k
// zero-padded from key_dim to head_dim channels (the scores are unchanged; the op takes one
// head size for q, k and v) and the scale key_dim^-0.5.
#include <algorithm>
#include <cmath>
#include <set>

#include "core/checked.h"
#include "graph/builder.h"
#include "kernels/conv.h"
#include "models/conv_weights.h"
#include "models/model.h"

namespace pyvitcpp {

namespace {

enum class LType { Conv, C2f, C3k2, Sppf, C2psa, Upsample, Concat };

struct Bottleneck {
  ConvW cv1, cv2;
  bool add = false;
};

// A C2f / C3k2 inner block: a Bottleneck, or C3k (cv1, cv2, cv3 around its own bottlenecks).
struct InnerBlock {
  bool c3k = false;
  Bottleneck bn;
  ConvW cv1, cv2, cv3;
  std::vector<Bottleneck> m;
};

struct PsaBlock {
  ConvW qkv, pe, proj, ffn1, ffn2;
  int64_t heads = 1, key_dim = 0, head_dim = 0;
};

struct Layer {
  LType type = LType::Conv;
  std::vector<int64_t> from;  // absolute layer indices; layer 0 reads the image
  int64_t C = 0, OC = 0, stride = 1;  // input channels (sum over from), output channels, total stride
  ConvW conv, cv1, cv2;
  int64_t hidden = 0;  // C2f/C3k2/C2PSA: channels of each half of cv1
  std::vector<InnerBlock> blocks;
  std::vector<PsaBlock> psa;
  int64_t pool_k = 5, pool_n = 3, scale = 2;
};

struct DetectLevel {
  std::vector<ConvW> box;          // conv3x3, conv3x3, 1x1 (no act)
  std::vector<ConvW> cls;          // legacy: conv3x3, conv3x3, 1x1; else dw, 1x1, dw, 1x1, 1x1
  std::vector<bool> cls_act;
};

class YoloFamily : public ModelFamily {
 public:
  YoloFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return "yolov8"; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;

 private:
  ConvW load(const std::string& prefix, int64_t C, int64_t stride, bool dw = false);
  Bottleneck load_bottleneck(const std::string& p, int64_t C, bool shortcut);
  void load_layer(const GGUFFile& f, int64_t i, std::vector<Layer>& layers);
  void load_detect(const GGUFFile& f);

  std::string path_;
  int64_t C_ = 3, nc_ = 0, reg_max_ = 16, max_stride_ = 32;
  bool legacy_cls_ = true;
  std::vector<Layer> layers_;
  std::vector<int64_t> detect_from_, feature_layers_;
  std::vector<DetectLevel> levels_;
  ConvLoader convs_;
};

ConvW YoloFamily::load(const std::string& prefix, int64_t C, int64_t stride, bool dw) {
  return convs_.load("model." + prefix, C, stride, dw);
}

Bottleneck YoloFamily::load_bottleneck(const std::string& p, int64_t C, bool shortcut) {
  Bottleneck b;
  b.cv1 = load(p + "cv1", C, 1);
  b.cv2 = load(p + "cv2", b.cv1.OC, 1);
  b.add = shortcut && b.cv2.OC == C;
  return b;
}

LType parse_type(const std::string& path, const std::string& key, const std::string& t) {
  if (t == "conv") return LType::Conv;
  if (t == "c2f") return LType::C2f;
  if (t == "c3k2") return LType::C3k2;
  if (t == "sppf") return LType::Sppf;
  if (t == "c2psa") return LType::C2psa;
  if (t == "upsample") return LType::Upsample;
  if (t == "concat") return LType::Concat;
  throw ModelError(path + ": " + key + " = '" + t + "' is not a layer this version runs (conv, c2f, c3k2, sppf, " +
                   "c2psa, upsample, concat)");
}

void YoloFamily::load_layer(const GGUFFile& f, int64_t i, std::vector<Layer>& layers) {
  const std::string k = "yolov8.layer." + std::to_string(i) + ".";
  const std::string p = std::to_string(i) + ".";
  Layer L;
  L.type = parse_type(path_, k + "type", f.get_str(k + "type"));
  if (i == 0) {
    L.C = C_;
    L.stride = 1;
  } else {
    L.from = f.get_int_array(k + "from");
    if (L.from.empty() || (L.type != LType::Concat && L.from.size() != 1))
      throw ModelError(path_ + ": " + k + "from must name " + (L.type == LType::Concat ? "one or more" : "exactly one") +
                       " earlier layer");
    L.stride = -1;
    for (int64_t j : L.from) {
      if (j < 0 || j >= i) throw ModelError(path_ + ": " + k + "from holds " + std::to_string(j) + ", not an earlier layer");
      if (L.stride >= 0 && layers[j].stride != L.stride)
        throw ModelError(path_ + ": " + k + "from concatenates maps of different strides");
      L.stride = layers[j].stride;
      L.C += layers[j].OC;
    }
  }
  const int64_t C = L.C;
  switch (L.type) {
    case LType::Conv: {
      const int64_t s = f.get_int_or(k + "stride", 1);
      if (s < 1 || s > 4) throw ModelError(path_ + ": " + k + "stride out of range");
      L.conv = load(p.substr(0, p.size() - 1), C, s);
      L.OC = L.conv.OC;
      L.stride = checked_mul<ModelError>(std::max<int64_t>(L.stride, 1), s, path_ + ": total stride");
      break;
    }
    case LType::C2f:
    case LType::C3k2: {
      const int64_t n = f.get_int(k + "repeats");
      if (n < 0 || n > 64) throw ModelError(path_ + ": " + k + "repeats out of range");
      const bool shortcut = f.get_bool_or(k + "shortcut", L.type == LType::C3k2);
      const bool c3k = f.get_bool_or(k + "c3k", false);
      if (c3k && L.type != LType::C3k2) throw ModelError(path_ + ": " + k + "c3k is set on a c2f layer");
      L.cv1 = load(p + "cv1", C, 1);
      if (L.cv1.OC % 2 != 0) throw ModelError(path_ + ": model." + p + "cv1 has an odd number of output channels");
      const int64_t c = L.cv1.OC / 2;
      L.hidden = c;
      for (int64_t j = 0; j < n; ++j) {
        const std::string q = p + "m." + std::to_string(j) + ".";
        InnerBlock blk;
        blk.c3k = c3k;
        if (!c3k) {
          blk.bn = load_bottleneck(q, c, shortcut);
          if (blk.bn.cv2.OC != c) throw ModelError(path_ + ": model." + q + "cv2 must have " + std::to_string(c) + " outputs");
        } else {
          blk.cv1 = load(q + "cv1", c, 1);
          blk.cv2 = load(q + "cv2", c, 1);
          const int64_t nm = f.get_int_or(k + "c3k_repeats", 2);
          if (nm < 1 || nm > 64) throw ModelError(path_ + ": " + k + "c3k_repeats out of range");
          int64_t cm = blk.cv1.OC;
          for (int64_t r = 0; r < nm; ++r) {
            blk.m.push_back(load_bottleneck(q + "m." + std::to_string(r) + ".", cm, shortcut));
            cm = blk.m.back().cv2.OC;
          }
          blk.cv3 = load(q + "cv3", cm + blk.cv2.OC, 1);
          if (blk.cv3.OC != c) throw ModelError(path_ + ": model." + q + "cv3 must have " + std::to_string(c) + " outputs");
        }
        L.blocks.push_back(std::move(blk));
      }
      L.cv2 = load(p + "cv2", (2 + n) * c, 1);
      L.OC = L.cv2.OC;
      break;
    }
    case LType::Sppf: {
      L.pool_k = f.get_int_or(k + "pool_size", 5);
      L.pool_n = f.get_int_or(k + "pool_repeats", 3);
      if (L.pool_k < 1 || L.pool_k > 15 || L.pool_k % 2 == 0)
        throw ModelError(path_ + ": " + k + "pool_size must be odd, 1..15");
      if (L.pool_n < 1 || L.pool_n > 8) throw ModelError(path_ + ": " + k + "pool_repeats out of range");
      L.cv1 = load(p + "cv1", C, 1);
      L.cv2 = load(p + "cv2", L.cv1.OC * (L.pool_n + 1), 1);
      L.OC = L.cv2.OC;
      break;
    }
    case LType::C2psa: {
      const int64_t n = f.get_int(k + "repeats");
      if (n < 0 || n > 64) throw ModelError(path_ + ": " + k + "repeats out of range");
      L.cv1 = load(p + "cv1", C, 1);
      if (L.cv1.OC % 2 != 0) throw ModelError(path_ + ": model." + p + "cv1 has an odd number of output channels");
      const int64_t c = L.cv1.OC / 2;
      L.hidden = c;
      const int64_t heads = f.get_int_or(k + "heads", std::max<int64_t>(c / 64, 1));
      if (heads < 1 || c % heads != 0)
        throw ModelError(path_ + ": " + k + "heads = " + std::to_string(heads) + " does not divide " + std::to_string(c) +
                         " channels");
      const int64_t head_dim = c / heads;
      const int64_t key_dim = f.get_int_or(k + "key_dim", head_dim / 2);
      if (key_dim < 1 || key_dim > head_dim)
        throw ModelError(path_ + ": " + k + "key_dim must be in [1, " + std::to_string(head_dim) + "]");
      for (int64_t j = 0; j < n; ++j) {
        const std::string q = p + "m." + std::to_string(j) + ".";
        PsaBlock b;
        b.heads = heads;
        b.key_dim = key_dim;
        b.head_dim = head_dim;
        b.qkv = load(q + "attn.qkv", c, 1);
        if (b.qkv.OC != c + 2 * key_dim * heads)
          throw ModelError(path_ + ": model." + q + "attn.qkv has " + std::to_string(b.qkv.OC) + " outputs, expected " +
                           std::to_string(c + 2 * key_dim * heads));
        b.pe = load(q + "attn.pe", c, 1, true);
        b.proj = load(q + "attn.proj", c, 1);
        b.ffn1 = load(q + "ffn.0", c, 1);
        b.ffn2 = load(q + "ffn.1", b.ffn1.OC, 1);
        if (b.proj.OC != c || b.ffn2.OC != c)
          throw ModelError(path_ + ": model." + q + " attn.proj / ffn.1 must keep " + std::to_string(c) + " channels");
        L.psa.push_back(b);
      }
      L.cv2 = load(p + "cv2", 2 * c, 1);
      L.OC = L.cv2.OC;
      break;
    }
    case LType::Upsample: {
      L.scale = f.get_int_or(k + "scale", 2);
      if (L.scale < 1 || L.scale > 8) throw ModelError(path_ + ": " + k + "scale out of range");
      if (L.stride % L.scale != 0) throw ModelError(path_ + ": " + k + "scale upsamples past the input resolution");
      L.OC = C;
      L.stride /= L.scale;
      break;
    }
    case LType::Concat:
      L.OC = C;
      break;
  }
  if (i == 0 && L.type != LType::Conv) throw ModelError(path_ + ": layer 0 must be a conv");
  layers.push_back(std::move(L));
}

void YoloFamily::load_detect(const GGUFFile& f) {
  detect_from_ = f.get_int_array("yolov8.detect.from");
  if (detect_from_.empty() || detect_from_.size() > 8) throw ModelError(path_ + ": yolov8.detect.from must name 1..8 layers");
  nc_ = positive_hparam(f, "yolov8.num_classes");
  reg_max_ = positive_hparam(f, "yolov8.reg_max");
  const std::string d = "model." + std::to_string(layers_.size()) + ".";
  legacy_cls_ = !f.find_tensor(d + "cv3.0.0.0.weight");
  for (size_t i = 0; i < detect_from_.size(); ++i) {
    const int64_t j = detect_from_[i];
    if (j < 0 || j >= static_cast<int64_t>(layers_.size()))
      throw ModelError(path_ + ": yolov8.detect.from holds " + std::to_string(j) + ", not a layer");
    const int64_t C = layers_[j].OC;
    const std::string b = std::to_string(layers_.size()) + ".cv2." + std::to_string(i) + ".";
    const std::string c = std::to_string(layers_.size()) + ".cv3." + std::to_string(i) + ".";
    DetectLevel lv;
    lv.box.push_back(load(b + "0", C, 1));
    lv.box.push_back(load(b + "1", lv.box[0].OC, 1));
    lv.box.push_back(load(b + "2", lv.box[1].OC, 1));
    if (lv.box[2].OC != 4 * reg_max_)
      throw ModelError(path_ + ": model." + b + "2 has " + std::to_string(lv.box[2].OC) + " outputs, expected 4 * reg_max = " +
                       std::to_string(4 * reg_max_));
    if (legacy_cls_) {
      lv.cls.push_back(load(c + "0", C, 1));
      lv.cls.push_back(load(c + "1", lv.cls[0].OC, 1));
      lv.cls.push_back(load(c + "2", lv.cls[1].OC, 1));
      lv.cls_act = {true, true, false};
    } else {
      lv.cls.push_back(load(c + "0.0", C, 1, true));
      lv.cls.push_back(load(c + "0.1", C, 1));
      lv.cls.push_back(load(c + "1.0", lv.cls[1].OC, 1, true));
      lv.cls.push_back(load(c + "1.1", lv.cls[1].OC, 1));
      lv.cls.push_back(load(c + "2", lv.cls[3].OC, 1));
      lv.cls_act = {true, true, true, true, false};
    }
    if (lv.cls.back().OC != nc_)
      throw ModelError(path_ + ": the class branch of level " + std::to_string(i) + " has " +
                       std::to_string(lv.cls.back().OC) + " outputs, yolov8.num_classes is " + std::to_string(nc_));
    levels_.push_back(std::move(lv));
  }
}

YoloFamily::YoloFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()), convs_(w, f.path()) {
  try {
    C_ = f.get_int_or("yolov8.num_channels", 3);
    if (C_ < 1 || C_ > 64) throw ModelError(path_ + ": yolov8.num_channels out of range");
    const int64_t n = positive_hparam(f, "yolov8.layer_count");
    if (n > 1024) throw ModelError(path_ + ": yolov8.layer_count out of range");
    for (int64_t i = 0; i < n; ++i) load_layer(f, i, layers_);
    load_detect(f);
    if (f.has("yolov8.feature_layers")) feature_layers_ = f.get_int_array("yolov8.feature_layers");
  } catch (const GGUFError& e) {
    throw ModelError(std::string("invalid yolov8 hyper-parameters: ") + e.what());
  }
  for (int64_t j : feature_layers_)
    if (j < 0 || j >= static_cast<int64_t>(layers_.size()))
      throw ModelError(path_ + ": yolov8.feature_layers holds " + std::to_string(j) + ", not a layer");
  max_stride_ = 1;
  for (const Layer& L : layers_) max_stride_ = std::max(max_stride_, L.stride);
}

std::vector<std::string> YoloFamily::output_names() const {
  std::vector<std::string> n;
  for (size_t i = 0; i < detect_from_.size(); ++i) n.push_back("head." + std::to_string(i));
  for (size_t i = 0; i < detect_from_.size(); ++i) n.push_back("pred." + std::to_string(i));
  n.push_back("pred");
  for (size_t i = 0; i < feature_layers_.size(); ++i) n.push_back("features." + std::to_string(i));
  return n;
}

void YoloFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("this model takes " + std::to_string(C_) + "-channel images, got " + std::to_string(C) + " channels");
  if (H < max_stride_ || W < max_stride_ || H % max_stride_ != 0 || W % max_stride_ != 0 || H > 16384 || W > 16384)
    throw ModelError("image size " + std::to_string(H) + "x" + std::to_string(W) + " does not suit this YOLO model: " +
                     "each side must be a multiple of its stride " + std::to_string(max_stride_) + " (up to 16384)");
}

std::unique_ptr<Graph> YoloFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  auto conv = [&](const std::string& name, int x, const ConvW& c, Act act = Act::Silu, int residual = -1) {
    return add_conv(b, name, x, c, act, residual);
  };
  // The shortcut is the conv's residual (its epilogue adds it after the SiLU), k x k convs too:
  // Graph::fuse_im2col gathers for a GEMM with a residual.
  auto bottleneck = [&](const std::string& p, int x, const Bottleneck& bn) {
    const int h = conv(p + "cv1", x, bn.cv1);
    return conv(p + "cv2", h, bn.cv2, Act::Silu, bn.add ? x : -1);
  };
  auto to_nchw = [&](int x) { return b.permute(x, {0, 3, 1, 2}); };

  const int px = b.input("pixels", {B, C_, H, W});
  std::vector<int> out(layers_.size(), -1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    const std::string p = std::to_string(i) + ".";
    const int x = i == 0 ? px : out[L.from[0]];
    int y = -1;
    switch (L.type) {
      case LType::Conv:
        y = add_conv(b, p + "conv", x, L.conv, Act::Silu, -1, i == 0);
        break;
      case LType::C2f:
      case LType::C3k2: {
        const int h = conv(p + "cv1", x, L.cv1);
        std::vector<int> parts = {b.slice(h, 3, 0, L.hidden), b.slice(h, 3, L.hidden, 2 * L.hidden)};
        for (size_t j = 0; j < L.blocks.size(); ++j) {
          const InnerBlock& blk = L.blocks[j];
          const std::string q = p + "m." + std::to_string(j) + ".";
          const int in = parts.back();
          if (!blk.c3k) {
            parts.push_back(bottleneck(q, in, blk.bn));
          } else {
            int a = conv(q + "cv1", in, blk.cv1);
            for (size_t r = 0; r < blk.m.size(); ++r) a = bottleneck(q + "m." + std::to_string(r) + ".", a, blk.m[r]);
            const int c2 = conv(q + "cv2", in, blk.cv2);
            parts.push_back(conv(q + "cv3", b.concat(q + "cat", {a, c2}, 3), blk.cv3));
          }
        }
        y = conv(p + "cv2", b.concat(p + "cat", parts, 3), L.cv2);
        break;
      }
      case LType::Sppf: {
        std::vector<int> parts = {conv(p + "cv1", x, L.cv1)};
        const int64_t pad = L.pool_k / 2;
        for (int64_t r = 0; r < L.pool_n; ++r) {
          const std::vector<int64_t> s = b.shape(parts.back());
          parts.push_back(b.pool2d(p + "pool" + std::to_string(r), parts.back(), PoolKind::Max,
                                   conv_axis_sym(s[1], L.pool_k, 1, 1, pad), conv_axis_sym(s[2], L.pool_k, 1, 1, pad)));
        }
        y = conv(p + "cv2", b.concat(p + "cat", parts, 3), L.cv2);
        break;
      }
      case LType::C2psa: {
        const int h = conv(p + "cv1", x, L.cv1);
        const int a = b.slice(h, 3, 0, L.hidden);
        int t = b.contiguous(b.slice(h, 3, L.hidden, 2 * L.hidden));
        for (size_t j = 0; j < L.psa.size(); ++j) {
          const PsaBlock& blk = L.psa[j];
          const std::string q = p + "m." + std::to_string(j) + ".";
          const std::vector<int64_t> s = b.shape(t);  // [B, h, w, c]
          const int64_t N = s[1] * s[2], nh = blk.heads, kd = blk.key_dim, hd = blk.head_dim;
          const int qkv = conv(q + "attn.qkv", t, blk.qkv, Act::None);
          const int r = b.reshape(qkv, {s[0], N, nh, 2 * kd + hd});
          int qq = b.slice(r, 3, 0, kd), kk = b.slice(r, 3, kd, 2 * kd);
          const int vv = b.slice(r, 3, 2 * kd, 2 * kd + hd);
          if (kd < hd) {
            qq = b.pad(q + "attn.q_pad", qq, {0, 0, 0, 0}, {0, 0, 0, hd - kd});
            kk = b.pad(q + "attn.k_pad", kk, {0, 0, 0, 0}, {0, 0, 0, hd - kd});
          }
          const int att = b.attention(q + "attn", qq, kk, vv, 1.0f / std::sqrt(static_cast<float>(kd)));
          const int v_map = b.reshape(b.contiguous(vv), {s[0], s[1], s[2], nh * hd});
          const int pe = conv(q + "attn.pe", v_map, blk.pe, Act::None);
          const int sum = b.add(q + "attn.add_pe", b.reshape(att, {s[0], s[1], s[2], nh * hd}), pe);
          t = conv(q + "attn.proj", sum, blk.proj, Act::None, t);
          const int f1 = conv(q + "ffn.0", t, blk.ffn1);
          t = conv(q + "ffn.1", f1, blk.ffn2, Act::None, t);
        }
        y = conv(p + "cv2", b.concat(p + "cat", {a, t}, 3), L.cv2);
        break;
      }
      case LType::Upsample:
        y = b.upsample_nearest(p + "up", x, L.scale);
        break;
      case LType::Concat: {
        std::vector<int> xs;
        for (int64_t j : L.from) xs.push_back(out[j]);
        y = xs.size() == 1 ? xs[0] : b.concat(p + "cat", xs, 3);
        break;
      }
    }
    out[i] = y;
  }
  for (size_t i = 0; i < feature_layers_.size(); ++i)
    b.output("features." + std::to_string(i), to_nchw(out[feature_layers_[i]]));
  const std::string d = std::to_string(layers_.size()) + ".";
  std::vector<int> flat;
  for (size_t i = 0; i < detect_from_.size(); ++i) {
    const int x = out[detect_from_[i]];
    b.output("head." + std::to_string(i), to_nchw(x));
    const DetectLevel& lv = levels_[i];
    const std::string bp = d + "cv2." + std::to_string(i) + ".", cp = d + "cv3." + std::to_string(i) + ".";
    int bx = x, cx = x;
    for (size_t j = 0; j < lv.box.size(); ++j)
      bx = conv(bp + std::to_string(j), bx, lv.box[j], j + 1 < lv.box.size() ? Act::Silu : Act::None);
    for (size_t j = 0; j < lv.cls.size(); ++j)
      cx = conv(cp + std::to_string(j), cx, lv.cls[j], lv.cls_act[j] ? Act::Silu : Act::None);
    // pred.i = cat(box, cls) along channels, assembled channel-major [B, no, h*w] straight from
    // the NHWC conv outputs (transposed views): it is pred.i in NCHW as it is, and the pieces of
    // pred, so the maps are written twice in all instead of four times (an NHWC concat, the
    // level concat, then the permute of the whole to [B, no, anchors]).
    const std::vector<int64_t> s = b.shape(bx);  // [B, h, w, 4 * reg_max]
    auto chw = [&](int t) { return b.permute(b.reshape(t, {s[0], s[1] * s[2], b.shape(t)[3]}), {0, 2, 1}); };
    const int pi = b.concat(d + "pred." + std::to_string(i), {chw(bx), chw(cx)}, 1);  // [B, no, h*w]
    b.output("pred." + std::to_string(i), b.reshape(pi, {s[0], b.shape(pi)[1], s[1], s[2]}));
    flat.push_back(pi);
  }
  // Every level's anchors in one map [B, no, sum h*w], Detect's cat(boxes, scores) before the decode.
  b.output("pred", flat.size() == 1 ? flat[0] : b.concat(d + "pred", flat, 2));
  return g;
}

std::map<std::string, std::string> YoloFamily::hparams() const {
  return {
      {"architecture", "yolov8"},
      {"num_channels", std::to_string(C_)},
      {"num_classes", std::to_string(nc_)},
      {"reg_max", std::to_string(reg_max_)},
      {"layer_count", std::to_string(layers_.size())},
      {"stride", std::to_string(max_stride_)},
      {"head_count", std::to_string(detect_from_.size())},
      {"class_branch", legacy_cls_ ? "conv" : "dwconv"},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_yolo_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<YoloFamily>(f, w);
}

}  // namespace pyvitcpp
