// Swin Transformer V1 and V2 (timm SwinTransformer / SwinTransformerV2, HF SwinModel / Swinv2Model
// and their ForImageClassification heads): general.architecture "swin", swin.version 1 or 2.
// Keys and tensors: docs/GGUF_SCHEMA.md.
//
// Everything is a composition of graph ops over NHWC maps [B, H, W, C]:
// - patch embedding: a permuted view of the pixels copied into patch rows, one GEMM, LayerNorm
//   (HF pads the pixels to whole patches first; timm refuses other sizes, so does a timm file);
// - a block: (roll, pad) or (pad, roll) as the source orders them (swin.shift_order), the window
//   partition (a reshaped/permuted view copied once into [B * nW, wh * ww, C]), one Attention over
//   every window and head with the relative position bias [heads, T, T] and, in shifted blocks,
//   the -100 region mask [nW, T, T] (window b % nW) as additive terms; the unpartition is a view
//   that the reverse Roll (or the output projection's input Copy) reads directly;
// - V2's cosine attention: the q and k rows of each head are L2-normalised by a LayerNorm over
//   [x, -x] (mean 0, variance |x|^2 / Dh, so it yields sqrt(Dh) x / |x|), the per-head logit
//   scale (clamped at log 100, exp) is one broadcast multiply of q, and the attention's scale is 1;
// - patch merging: the 2x2 neighbours (0::2,0::2), (1::2,0::2), (0::2,1::2), (1::2,1::2) are a
//   reshaped/permuted view copied into [B, H/2, W/2, 4C]; V1 LayerNorm then Linear, V2 Linear then
//   LayerNorm.
// Window and shift per block: swin.window_rule "per_input" (HF Swin V1: at each input, a block
// whose grid's smaller side is not larger than the window takes that side as a square window and
// no shift) or "fixed" (timm V1/V2 and HF V2: each stage's window and shift as the source computed
// them for its native size, swin.stage_windows / swin.stage_shifts; other sizes pad to them).
// The relative position bias is gathered from the (2Mh-1)(2Mw-1) x heads table (V1) or the
// continuous-position-bias MLP's output (V2, 16 sigmoid) once per window size, at load for the
// fixed windows; a window smaller than the table's takes the table's central part.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "graph/builder.h"
#include "models/model.h"
#include "ops/pos_resize.h"

namespace pyvitcpp {

namespace {

struct SwinBlock {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
  LinearWeight *qkv, *out, *fc1, *fc2;
  const float* rel_table = nullptr;  // V1: [(2Mh-1)(2Mw-1), heads]
  const float *cpb1_w = nullptr, *cpb1_b = nullptr, *cpb2_w = nullptr;  // V2: [hid, 2], [hid], [heads, hid]
  int64_t cpb_hidden = 0;
  std::vector<float> q_scale;  // V2: exp(min(logit_scale, log 100)) / Dh per head
  bool shifted = false;        // odd block of its stage
};

struct SwinStage {
  int64_t dim, heads, depth;
  int64_t win_h, win_w, shift_h, shift_w;  // fixed rule; per_input: win_h = win_w = M, shift M / 2
  std::vector<SwinBlock> blocks;
  // Merging into this stage from the previous one (stage 0: none).
  LinearWeight* merge = nullptr;
  const float *merge_g = nullptr, *merge_b = nullptr;
};

class SwinFamily : public ModelFamily {
 public:
  SwinFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return "swin"; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;

 private:
  void read_hparams(const GGUFFile& f);
  // Block geometry at a grid gh x gw: window (wh, ww) and shift (sh, sw).
  void block_window(const SwinStage& st, const SwinBlock& blk, int64_t gh, int64_t gw, int64_t* wh, int64_t* ww,
                    int64_t* sh, int64_t* sw) const;
  const float* bias_for(int64_t s, int64_t j, int64_t wh, int64_t ww) const;
  const float* mask_for(int64_t Hp, int64_t Wp, int64_t wh, int64_t ww, int64_t sh, int64_t sw) const;
  const float* pos_for(int64_t gh, int64_t gw) const;

  std::string path_;
  int64_t version_, C_, D0_, patch_, img_h_, img_w_, window_;
  float eps_, embed_eps_, merge_eps_;
  bool per_input_ = false, roll_first_ = false, pad_pixels_ = false;
  std::vector<int64_t> depths_, heads_, pretrained_win_;
  PosResize pos_resize_ = PosResize::Bicubic;
  LinearWeight* patch_w_;
  const float *patch_g_ = nullptr, *patch_b_ = nullptr;
  const float* pos_ = nullptr;  // [gh0 * gw0, D0]
  std::vector<SwinStage> stages_;
  const float *post_g_, *post_b_;
  LinearWeight* head_ = nullptr;
  std::vector<float> ones_, minus_one_;  // V2: LayerNorm gamma over [x, -x]; the -1 factor
  mutable std::mutex mu_;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, std::vector<float>> bias_cache_;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>, std::vector<float>> mask_cache_;
  mutable std::map<std::pair<int64_t, int64_t>, std::vector<float>> pos_cache_;
};

void SwinFamily::read_hparams(const GGUFFile& f) {
  const std::string p = "swin.";
  std::string rule, order, pr;
  std::vector<int64_t> img, wins, shifts;
  try {
    version_ = positive_hparam(f, p + "version");
    D0_ = positive_hparam(f, p + "embedding_length");
    patch_ = positive_hparam(f, p + "patch_size");
    window_ = positive_hparam(f, p + "window_size");
    C_ = f.get_int_or(p + "num_channels", 3);
    depths_ = f.get_int_array(p + "depths");
    heads_ = f.get_int_array(p + "head_counts");
    img = f.get_int_array(p + "image_size");
    eps_ = static_cast<float>(f.get_float(p + "attention.layer_norm_epsilon"));
    embed_eps_ = static_cast<float>(f.get_float_or(p + "embed.layer_norm_epsilon", 1e-5));
    merge_eps_ = static_cast<float>(f.get_float_or(p + "merge.layer_norm_epsilon", 1e-5));
    rule = f.get_str(p + "window_rule");
    order = f.get_str(p + "shift_order");
    pad_pixels_ = f.get_bool_or(p + "pad_pixels", false);
    if (rule == "fixed") {
      wins = f.get_int_array(p + "stage_windows");
      shifts = f.get_int_array(p + "stage_shifts");
    }
    if (f.find(p + "pretrained_window_sizes")) pretrained_win_ = f.get_int_array(p + "pretrained_window_sizes");
    pr = f.get_str_or(p + "pos_resize", "bicubic");
  } catch (const GGUFError& e) {
    throw ModelError("invalid swin hyper-parameters: " + std::string(e.what()));
  }
  const std::string at = path_ + ": swin.";
  if (version_ != 1 && version_ != 2) throw ModelError(at + "version " + std::to_string(version_) + " is not 1 or 2");
  const size_t S = depths_.size();
  if (S == 0 || S > 8) throw ModelError(at + "depths must hold 1 to 8 stages");
  if (heads_.size() != S)
    throw ModelError(at + "head_counts has " + std::to_string(heads_.size()) + " entries for " + std::to_string(S) +
                     " stages");
  if (img.size() != 2 || img[0] <= 0 || img[1] <= 0 || img[0] > 16384 || img[1] > 16384)
    throw ModelError(at + "image_size must be [height, width] in [1, 16384]");
  img_h_ = img[0];
  img_w_ = img[1];
  if (C_ <= 0 || C_ > 64) throw ModelError(at + "num_channels out of range");
  if (window_ > 64) throw ModelError(at + "window_size " + std::to_string(window_) + " is above 64");
  for (float e : {eps_, embed_eps_, merge_eps_})
    if (!(e > 0.0f) || !(e < 1.0f)) throw ModelError(at + "*.layer_norm_epsilon out of range");
  if (rule != "fixed" && rule != "per_input")
    throw ModelError(at + "window_rule '" + rule + "' is not 'fixed' or 'per_input'");
  if (order != "roll_pad" && order != "pad_roll")
    throw ModelError(at + "shift_order '" + order + "' is not 'roll_pad' or 'pad_roll'");
  per_input_ = rule == "per_input";
  roll_first_ = order == "roll_pad";
  if (!pretrained_win_.empty() && pretrained_win_.size() != S)
    throw ModelError(at + "pretrained_window_sizes has " + std::to_string(pretrained_win_.size()) + " entries for " +
                     std::to_string(S) + " stages");
  for (int64_t v : pretrained_win_)
    if (v < 0 || v > 1024) throw ModelError(at + "pretrained_window_sizes holds " + std::to_string(v));
  try {
    pos_resize_ = parse_pos_resize(pr);
  } catch (const std::invalid_argument& e) {
    throw ModelError(at + "pos_resize: " + e.what());
  }
  if (!per_input_ && (wins.size() != 2 * S || shifts.size() != 2 * S))
    throw ModelError(at + "stage_windows and stage_shifts must hold 2 values (height, width) per stage");
  int64_t dim = D0_;
  for (size_t s = 0; s < S; ++s) {
    if (depths_[s] <= 0 || depths_[s] > 1024) throw ModelError(at + "depths holds " + std::to_string(depths_[s]));
    if (heads_[s] <= 0 || dim % heads_[s] != 0)
      throw ModelError(at + "head_counts[" + std::to_string(s) + "] = " + std::to_string(heads_[s]) +
                       " does not divide the stage width " + std::to_string(dim));
    SwinStage st;
    st.dim = dim;
    st.heads = heads_[s];
    st.depth = depths_[s];
    if (per_input_) {
      st.win_h = st.win_w = window_;
      st.shift_h = st.shift_w = window_ / 2;
    } else {
      st.win_h = wins[2 * s];
      st.win_w = wins[2 * s + 1];
      st.shift_h = shifts[2 * s];
      st.shift_w = shifts[2 * s + 1];
      if (st.win_h <= 0 || st.win_w <= 0 || st.win_h > 64 || st.win_w > 64)
        throw ModelError(at + "stage_windows: stage " + std::to_string(s) + " window out of [1, 64]");
      if (st.shift_h < 0 || st.shift_w < 0 || st.shift_h >= st.win_h || st.shift_w >= st.win_w)
        throw ModelError(at + "stage_shifts: stage " + std::to_string(s) + " shift must be in [0, window)");
    }
    stages_.push_back(st);
    if (dim > (int64_t{1} << 20)) throw ModelError(at + "stage widths above 2^20");
    dim *= 2;
  }
}

SwinFamily::SwinFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()) {
  read_hparams(f);
  patch_w_ = w.linear("v.patch_embd.weight", "v.patch_embd.bias", D0_, C_ * patch_ * patch_);
  if (w.has("v.patch_norm.weight")) {
    patch_g_ = w.vec("v.patch_norm.weight", D0_);
    patch_b_ = w.vec_opt("v.patch_norm.bias", D0_);
  }
  if (w.has("v.position_embd.weight")) {
    if (img_h_ % patch_ != 0 || img_w_ % patch_ != 0)
      throw ModelError(path_ + ": swin.image_size is not a multiple of swin.patch_size, so the position table has no grid");
    pos_ = w.tensor_f32("v.position_embd.weight", {(img_h_ / patch_) * (img_w_ / patch_), D0_});
  }
  int64_t max_dh = 0;
  for (size_t s = 0; s < stages_.size(); ++s) {
    SwinStage& st = stages_[s];
    const std::string sp = "v.s" + std::to_string(s) + ".";
    const int64_t D = st.dim, nh = st.heads, Dh = D / nh;
    max_dh = std::max(max_dh, Dh);
    if (s > 0) {
      const int64_t Din = stages_[s - 1].dim;
      st.merge = w.linear(sp + "merge.weight", "", D, 4 * Din);
      const int64_t nd = version_ == 1 ? 4 * Din : D;
      st.merge_g = w.vec(sp + "merge_ln.weight", nd);
      st.merge_b = w.vec_opt(sp + "merge_ln.bias", nd);
    }
    const GGUFTensorInfo* up = w.file().find_tensor(sp + "blk.0.ffn_up.weight");
    if (!up || up->ne.size() != 2) throw ModelError(path_ + ": required tensor '" + sp + "blk.0.ffn_up.weight' is missing");
    const int64_t F = up->ne[1];
    for (int64_t j = 0; j < st.depth; ++j) {
      const std::string bp = sp + "blk." + std::to_string(j) + ".";
      SwinBlock b;
      b.shifted = j % 2 == 1;
      b.ln1_g = w.vec(bp + "ln1.weight", D);
      b.ln1_b = w.vec_opt(bp + "ln1.bias", D);
      b.ln2_g = w.vec(bp + "ln2.weight", D);
      b.ln2_b = w.vec_opt(bp + "ln2.bias", D);
      b.qkv = w.linear(bp + "attn_qkv.weight", w.has(bp + "attn_qkv.bias") ? bp + "attn_qkv.bias" : "", 3 * D, D);
      b.out = w.linear(bp + "attn_out.weight", bp + "attn_out.bias", D, D);
      b.fc1 = w.linear(bp + "ffn_up.weight", bp + "ffn_up.bias", F, D);
      b.fc2 = w.linear(bp + "ffn_down.weight", bp + "ffn_down.bias", D, F);
      if (version_ == 1) {
        b.rel_table = w.tensor_f32(bp + "attn_rel_bias", {(2 * st.win_h - 1) * (2 * st.win_w - 1), nh});
      } else {
        const GGUFTensorInfo* c1 = w.file().find_tensor(bp + "cpb_fc1.weight");
        if (!c1 || c1->ne.size() != 2 || c1->ne[0] != 2 || c1->ne[1] <= 0 || c1->ne[1] > 65536)
          throw ModelError(path_ + ": tensor '" + bp + "cpb_fc1.weight' must be [hidden, 2]");
        b.cpb_hidden = c1->ne[1];
        b.cpb1_w = w.tensor_f32(bp + "cpb_fc1.weight", {b.cpb_hidden, 2});
        b.cpb1_b = w.vec(bp + "cpb_fc1.bias", b.cpb_hidden);
        b.cpb2_w = w.tensor_f32(bp + "cpb_fc2.weight", {nh, b.cpb_hidden});
        const float* ls = w.vec(bp + "attn_logit_scale", nh);
        for (int64_t h = 0; h < nh; ++h)
          b.q_scale.push_back(static_cast<float>(std::exp(std::min(static_cast<double>(ls[h]), std::log(100.0))) /
                                                 static_cast<double>(Dh)));
      }
      st.blocks.push_back(std::move(b));
    }
  }
  const int64_t Dl = stages_.back().dim;
  post_g_ = w.vec("v.post_ln.weight", Dl);
  post_b_ = w.vec_opt("v.post_ln.bias", Dl);
  if (w.has("v.head.weight")) {
    const GGUFTensorInfo* h = w.file().find_tensor("v.head.weight");
    const int64_t n_cls = h->ne.size() == 2 ? h->ne[1] : 0;
    if (n_cls <= 0) throw ModelError(path_ + ": v.head.weight must be a matrix [classes, " + std::to_string(Dl) + "]");
    head_ = w.linear("v.head.weight", "v.head.bias", n_cls, Dl);
  }
  ones_.assign(static_cast<size_t>(2 * max_dh), 1.0f);
  minus_one_.assign(1, -1.0f);
  // The fixed windows' bias tables now, once each (per_input ones at their first input size).
  if (!per_input_)
    for (size_t s = 0; s < stages_.size(); ++s)
      for (size_t j = 0; j < stages_[s].blocks.size(); ++j)
        bias_for(static_cast<int64_t>(s), static_cast<int64_t>(j), stages_[s].win_h, stages_[s].win_w);
}

std::vector<std::string> SwinFamily::output_names() const {
  std::vector<std::string> n = {"last_hidden_state", "pooled", "embedding"};
  if (head_) n.push_back("logits");
  for (size_t s = 0; s < stages_.size(); ++s) n.push_back("features." + std::to_string(s));
  return n;
}

void SwinFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("input has " + std::to_string(C) + " channels; this model takes " + std::to_string(C_));
  if (H < 1 || W < 1 || H > 16384 || W > 16384)
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this Swin model takes sizes up to 16384");
  if (!pad_pixels_ && (H % patch_ != 0 || W % patch_ != 0))
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this Swin model (timm) takes sizes " +
                     "that are multiples of its " + std::to_string(patch_) + "-pixel patch");
}

void SwinFamily::block_window(const SwinStage& st, const SwinBlock& blk, int64_t gh, int64_t gw, int64_t* wh,
                              int64_t* ww, int64_t* sh, int64_t* sw) const {
  if (per_input_) {  // HF Swin V1's set_shift_and_window_size
    const int64_t g = std::min(gh, gw);
    if (g <= window_) {
      *wh = *ww = g;
      *sh = *sw = 0;
    } else {
      *wh = *ww = window_;
      *sh = *sw = blk.shifted ? window_ / 2 : 0;
    }
    return;
  }
  *wh = st.win_h;
  *ww = st.win_w;
  *sh = blk.shifted ? st.shift_h : 0;
  *sw = blk.shifted ? st.shift_w : 0;
}

// [heads, wh*ww, wh*ww]: bias[h][i][j] = table[(yi - yj + Mh - 1) * (2 Mw - 1) + xi - xj + Mw - 1][h], the
// table being V1's learned one (window Mh x Mw) or V2's 16 sigmoid(cpb_mlp(coords)) for this window.
const float* SwinFamily::bias_for(int64_t s, int64_t j, int64_t wh, int64_t ww) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto key = std::make_tuple(s, j, wh, ww);
  auto it = bias_cache_.find(key);
  if (it != bias_cache_.end()) return it->second.data();
  const SwinStage& st = stages_[static_cast<size_t>(s)];
  const SwinBlock& blk = st.blocks[static_cast<size_t>(j)];
  const int64_t nh = st.heads, T = wh * ww;
  int64_t Mh = st.win_h, Mw = st.win_w;
  std::vector<float> table;
  const float* tab = blk.rel_table;
  if (version_ == 2) {
    Mh = wh;
    Mw = ww;
    const int64_t pw = pretrained_win_.empty() ? 0 : pretrained_win_[static_cast<size_t>(s)];
    const double dh = static_cast<double>(std::max<int64_t>((pw > 0 ? pw : wh) - 1, 1));
    const double dw = static_cast<double>(std::max<int64_t>((pw > 0 ? pw : ww) - 1, 1));
    const int64_t R = (2 * Mh - 1) * (2 * Mw - 1), hid = blk.cpb_hidden;
    table.assign(static_cast<size_t>(R * nh), 0.0f);
    std::vector<float> hbuf(static_cast<size_t>(hid));
    for (int64_t r = 0; r < R; ++r) {
      float c[2] = {static_cast<float>(r / (2 * Mw - 1) - (Mh - 1)), static_cast<float>(r % (2 * Mw - 1) - (Mw - 1))};
      c[0] = static_cast<float>(c[0] / dh * 8.0);
      c[1] = static_cast<float>(c[1] / dw * 8.0);
      for (float& v : c) {
        const float sgn = v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f);
        v = static_cast<float>(sgn * std::log2(std::fabs(static_cast<double>(v)) + 1.0) / 3.0);
      }
      for (int64_t u = 0; u < hid; ++u) {
        const double a = static_cast<double>(blk.cpb1_w[2 * u]) * c[0] + static_cast<double>(blk.cpb1_w[2 * u + 1]) * c[1] +
                         blk.cpb1_b[u];
        hbuf[static_cast<size_t>(u)] = a > 0 ? static_cast<float>(a) : 0.0f;
      }
      for (int64_t h = 0; h < nh; ++h) {
        double a = 0;
        for (int64_t u = 0; u < hid; ++u) a += static_cast<double>(blk.cpb2_w[h * hid + u]) * hbuf[static_cast<size_t>(u)];
        table[static_cast<size_t>(r * nh + h)] = static_cast<float>(16.0 / (1.0 + std::exp(-a)));
      }
    }
    tab = table.data();
  } else if (per_input_) {
    Mh = Mw = window_;
  }
  if (wh > Mh || ww > Mw) throw ModelError(path_ + ": a window larger than the relative position table's");
  std::vector<float> out(static_cast<size_t>(nh * T * T));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t k = 0; k < T; ++k) {
      const int64_t dy = i / ww - k / ww, dx = i % ww - k % ww;
      const int64_t r = (dy + Mh - 1) * (2 * Mw - 1) + dx + Mw - 1;
      for (int64_t h = 0; h < nh; ++h) out[static_cast<size_t>((h * T + i) * T + k)] = tab[r * nh + h];
    }
  return bias_cache_.emplace(key, std::move(out)).first->second.data();
}

// [nW, T, T]: -100 between tokens of a window that the cyclic shift brought from different regions.
// Regions per axis over the padded extent: [0, P - w), [P - w, P - s), [P - s, P); one region when
// that axis is not shifted (timm's slices with a zero shift).
const float* SwinFamily::mask_for(int64_t Hp, int64_t Wp, int64_t wh, int64_t ww, int64_t sh, int64_t sw) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto key = std::make_tuple(Hp, Wp, wh, ww, sh, sw);
  auto it = mask_cache_.find(key);
  if (it != mask_cache_.end()) return it->second.data();
  const auto region = [](int64_t i, int64_t P, int64_t w, int64_t s) -> int64_t {
    return s == 0 ? 0 : static_cast<int64_t>(i >= P - w) + static_cast<int64_t>(i >= P - s);
  };
  const int64_t nh = Hp / wh, nw = Wp / ww, T = wh * ww;
  std::vector<float> m(static_cast<size_t>(nh * nw * T * T));
  std::vector<int64_t> reg(static_cast<size_t>(T));
  for (int64_t a = 0; a < nh; ++a)
    for (int64_t c = 0; c < nw; ++c) {
      for (int64_t t = 0; t < T; ++t)
        reg[static_cast<size_t>(t)] = region(a * wh + t / ww, Hp, wh, sh) * 3 + region(c * ww + t % ww, Wp, ww, sw);
      float* mw = m.data() + (a * nw + c) * T * T;
      for (int64_t i = 0; i < T; ++i)
        for (int64_t k = 0; k < T; ++k) mw[i * T + k] = reg[static_cast<size_t>(i)] == reg[static_cast<size_t>(k)] ? 0.0f : -100.0f;
    }
  return mask_cache_.emplace(key, std::move(m)).first->second.data();
}

const float* SwinFamily::pos_for(int64_t gh, int64_t gw) const {
  const int64_t gh0 = img_h_ / patch_, gw0 = img_w_ / patch_;
  if (gh == gh0 && gw == gw0) return pos_;
  std::lock_guard<std::mutex> lk(mu_);
  auto& t = pos_cache_[{gh, gw}];
  if (t.empty()) {
    t.resize(static_cast<size_t>(gh * gw * D0_));
    resize_pos_table(pos_, gh0, gw0, D0_, gh, gw, pos_resize_, t.data());
  }
  return t.data();
}

std::unique_ptr<Graph> SwinFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  const int64_t p = patch_;
  int64_t gh = (H + p - 1) / p, gw = (W + p - 1) / p;
  int px = b.input("pixels", {B, C_, H, W});
  if (gh * p != H || gw * p != W) px = b.pad("pixel_pad", px, {0, 0, 0, 0}, {0, 0, gh * p - H, gw * p - W});
  int patches = b.permute(b.reshape(px, {B, C_, gh, p, gw, p}), {0, 2, 4, 1, 3, 5});
  patches = b.reshape(b.contiguous(patches), {B, gh * gw, C_ * p * p});
  int x = b.reshape(b.linear("patch_embed", patches, patch_w_), {B, gh, gw, D0_});
  if (patch_g_) x = b.layernorm("patch_norm", x, patch_g_, patch_b_, embed_eps_);
  if (pos_) {
    if (pos_resize_ == PosResize::None && (gh * p != img_h_ || gw * p != img_w_))
      throw ModelError("this Swin model's position table runs at its native size only (swin.pos_resize = none)");
    x = b.add("pos_embed", x, b.constant("pos_embed.table", {gh, gw, D0_}, pos_for(gh, gw)));
  }

  for (size_t s = 0; s < stages_.size(); ++s) {
    const SwinStage& st = stages_[s];
    const std::string sp = "s" + std::to_string(s) + ".";
    const int64_t D = st.dim, nh = st.heads, Dh = D / nh;
    if (s > 0) {  // patch merging
      const int64_t Din = stages_[s - 1].dim;
      if (gh % 2 || gw % 2) x = b.pad(sp + "merge_pad", x, {0, 0, 0, 0}, {0, gh % 2, gw % 2, 0});
      gh = (gh + 1) / 2;
      gw = (gw + 1) / 2;
      int v = b.permute(b.reshape(x, {B, gh, 2, gw, 2, Din}), {0, 1, 3, 4, 2, 5});
      v = b.reshape(v, {B, gh, gw, 4 * Din});
      if (version_ == 1) {
        v = b.layernorm(sp + "merge_ln", v, st.merge_g, st.merge_b, merge_eps_);
        x = b.linear(sp + "merge", v, st.merge);
      } else {
        x = b.layernorm(sp + "merge_ln", b.linear(sp + "merge", v, st.merge), st.merge_g, st.merge_b, merge_eps_);
      }
    }
    for (size_t j = 0; j < st.blocks.size(); ++j) {
      const SwinBlock& blk = st.blocks[j];
      const std::string pf = sp + "blk" + std::to_string(j) + ".";
      int64_t wh, ww, sh, sw;
      block_window(st, blk, gh, gw, &wh, &ww, &sh, &sw);
      const int64_t Hp = (gh + wh - 1) / wh * wh, Wp = (gw + ww - 1) / ww * ww, nwh = Hp / wh, nww = Wp / ww;
      const int64_t nW = nwh * nww, T = wh * ww, Bq = B * nW;
      const bool shift = sh != 0 || sw != 0, padded = Hp != gh || Wp != gw;
      int h = version_ == 1 ? b.layernorm(pf + "ln1", x, blk.ln1_g, blk.ln1_b, eps_) : x;
      const auto do_pad = [&](int t) { return padded ? b.pad(pf + "pad", t, {0, 0, 0, 0}, {0, Hp - gh, Wp - gw, 0}) : t; };
      const auto do_roll = [&](int t, int64_t sign) {
        return shift ? b.roll(pf + (sign < 0 ? "roll" : "unroll"), t, {sign * sh, sign * sw}, {1, 2}) : t;
      };
      h = roll_first_ ? do_pad(do_roll(h, -1)) : do_roll(do_pad(h), -1);
      h = b.permute(b.reshape(h, {B, nwh, wh, nww, ww, D}), {0, 1, 3, 2, 4, 5});
      h = b.reshape(h, {Bq, T, D});  // the window partition (a Copy)
      const int qkv = b.reshape(b.linear(pf + "qkv", h, blk.qkv), {Bq, T, 3, nh, Dh});
      GraphBuilder::AttentionTerms terms;
      terms.bias = b.constant(pf + "rel_bias", {nh, T, T}, bias_for(static_cast<int64_t>(s), static_cast<int64_t>(j), wh, ww));
      if (shift) terms.mask = b.constant(pf + "shift_mask", {nW, T, T}, mask_for(Hp, Wp, wh, ww, sh, sw));
      int att;
      if (version_ == 1) {
        att = b.attention(pf + "attn", b.select(qkv, 2, 0), b.select(qkv, 2, 1), b.select(qkv, 2, 2),
                          1.0f / std::sqrt(static_cast<float>(Dh)), terms);
      } else {
        // Cosine attention: LayerNorm over [x, -x] gives sqrt(Dh) x / |x| (eps: F.normalize's 1e-12 on |x|).
        const int qk = b.slice(qkv, 2, 0, 2);
        const int neg = b.mul(pf + "qk_neg", qk, b.constant(pf + "minus_one", {1}, minus_one_.data()));
        int nrm = b.concat(pf + "qk_pm", {qk, neg}, 4);
        nrm = b.layernorm(pf + "qk_norm", nrm, ones_.data(), nullptr, 1e-24f / static_cast<float>(Dh));
        nrm = b.slice(nrm, 4, 0, Dh);
        const int q = b.mul(pf + "q_scale", b.select(nrm, 2, 0), b.constant(pf + "logit_scale", {nh, 1}, blk.q_scale.data()));
        att = b.attention(pf + "attn", q, b.select(nrm, 2, 1), b.select(qkv, 2, 2), 1.0f, terms);
      }
      // Window unpartition, reverse shift, crop (the source's order), then the output projection.
      int a = b.permute(b.reshape(att, {B, nwh, nww, wh, ww, D}), {0, 1, 3, 2, 4, 5});
      a = b.reshape(a, {B, Hp, Wp, D});
      const auto crop = [&](int t) { return padded ? b.slice(b.slice(t, 1, 0, gh), 2, 0, gw) : t; };
      a = roll_first_ ? do_roll(crop(a), 1) : crop(do_roll(a, 1));
      a = b.contiguous(a);
      if (version_ == 1) {
        x = b.linear(pf + "attn_out", a, blk.out, Act::None, x);
        h = b.layernorm(pf + "ln2", x, blk.ln2_g, blk.ln2_b, eps_);
        x = b.linear(pf + "fc2", b.linear(pf + "fc1", h, blk.fc1, Act::GeluErf), blk.fc2, Act::None, x);
      } else {
        a = b.layernorm(pf + "ln1", b.linear(pf + "attn_out", a, blk.out), blk.ln1_g, blk.ln1_b, eps_);
        x = b.add(pf + "res1", x, a);
        const int y = b.linear(pf + "fc2", b.linear(pf + "fc1", x, blk.fc1, Act::GeluErf), blk.fc2);
        x = b.add(pf + "res2", x, b.layernorm(pf + "ln2", y, blk.ln2_g, blk.ln2_b, eps_));
      }
    }
    b.output("features." + std::to_string(s), b.permute(x, {0, 3, 1, 2}));
  }
  const int64_t Dl = stages_.back().dim;
  const int y = b.reshape(b.layernorm("post_ln", x, post_g_, post_b_, eps_), {B, gh * gw, Dl});
  b.output("last_hidden_state", y);
  const int pooled = b.mean("pool", y, 1);
  b.output("pooled", pooled);
  b.output("embedding", pooled);
  if (head_) b.output("logits", b.linear("head", pooled, head_));
  return g;
}

std::map<std::string, std::string> SwinFamily::hparams() const {
  const auto join = [](const std::vector<int64_t>& v) {
    std::string r;
    for (int64_t i : v) r += (r.empty() ? "" : ",") + std::to_string(i);
    return r;
  };
  std::vector<int64_t> wins, shifts;
  for (const auto& st : stages_) {
    wins.insert(wins.end(), {st.win_h, st.win_w});
    shifts.insert(shifts.end(), {st.shift_h, st.shift_w});
  }
  return {
      {"architecture", "swin"},
      {"version", std::to_string(version_)},
      {"embedding_length", std::to_string(D0_)},
      {"depths", join(depths_)},
      {"head_counts", join(heads_)},
      {"patch_size", std::to_string(patch_)},
      {"image_size", std::to_string(img_h_) + "," + std::to_string(img_w_)},
      {"window_size", std::to_string(window_)},
      {"window_rule", per_input_ ? "per_input" : "fixed"},
      {"stage_windows", join(wins)},
      {"stage_shifts", join(shifts)},
      {"shift_order", roll_first_ ? "roll_pad" : "pad_roll"},
      {"num_channels", std::to_string(C_)},
      {"num_classes", std::to_string(head_ ? head_->N : 0)},
      {"pos_resize", pos_resize_name(pos_resize_)},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_swin_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<SwinFamily>(f, w);
}

}  // namespace pyvitcpp
