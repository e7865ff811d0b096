// The transformer vision-tower family: ViT, DeiT (distilled), DINOv2 (layer scale, registers,
// SwiGLU), CLIP (pre-LN, post-LN on the pooled token, visual projection) and SigLIP (no class
// token, attention-pooling head), at any input resolution (the position table is resized as the
// reference library does and cached per patch grid). Driven by the GGUF hyper-parameters and by
// which tensors are present (docs/GGUF_SCHEMA.md); reads llama.cpp mmproj files (architecture
// `clip`, keys `clip.vision.*`) as well.
#include <cmath>
#include <mutex>
#include <stdexcept>

#include "core/checked.h"
#include "models/model.h"
#include "graph/builder.h"
#include "ops/pos_resize.h"

namespace pyvitcpp {

namespace {

struct VitBlock {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
  LinearWeight *qkv, *out, *fc1, *fc2;
  bool swiglu = false;  // fc1 holds [gate; up] (2F rows)
  const float *ls1 = nullptr, *ls2 = nullptr;
};

// SigLIP's multi-head attention pooling: one learned probe attends over the tokens.
struct MapHead {
  std::vector<float> q;  // the probe after the q projection (constant)
  LinearWeight *kv = nullptr, *out = nullptr, *fc1 = nullptr, *fc2 = nullptr;
  const float *ln_g = nullptr, *ln_b = nullptr;
};

class VitFamily : public ModelFamily {
 public:
  VitFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return arch_; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;
  void reset_after_fork() override { pos_cache_.reset_after_fork(); }
  void trim_memo(const std::vector<std::pair<int64_t, int64_t>>& live_hw) override {
    pos_cache_.erase_unless([&](const std::pair<int64_t, int64_t>& grid) {
      for (const auto& hw : live_hw)  // the grid build() uses for that input
        if (hw.first / patch_ == grid.first && hw.second / patch_ == grid.second) return true;
      return false;
    });
  }

 private:
  void read_hparams(const GGUFFile& f);
  // Position table for a gh x gw grid ([n_pos_prefix + gh*gw, D]), resized once per grid.
  const float* pos_table(int64_t gh, int64_t gw) const;

  std::string path_, arch_, prefix_;
  int64_t D_, L_, F_, heads_, patch_, image_size_, C_, grid0_;
  int64_t n_prefix_ = 0, n_reg_ = 0, n_pos_prefix_ = 0;
  float eps_;
  Act act_;
  std::string act_name_, pooling_, post_norm_;
  PosResize pos_resize_ = PosResize::Bicubic;
  LinearWeight* patch_w_;
  const float *cls_ = nullptr, *dist_ = nullptr, *pos_ = nullptr;
  // [n_prefix, D]: class, distillation, registers, each plus its position row when it has one
  // (the first n_pos_prefix; position rows of prefix tokens are never resized).
  std::vector<float> prefix_tokens_;
  std::vector<VitBlock> blocks_;
  const float *pre_g_ = nullptr, *pre_b_ = nullptr;
  const float *post_g_ = nullptr, *post_b_ = nullptr, *fcn_g_ = nullptr, *fcn_b_ = nullptr;
  LinearWeight *pooler_ = nullptr, *head_ = nullptr, *head_dist_ = nullptr, *proj_ = nullptr;
  LinearWeight *mm0_ = nullptr, *mm2_ = nullptr;  // llama.cpp LLaVA "mlp" projector
  std::string projector_type_;
  std::unique_ptr<MapHead> map_;

  mutable ForkSafeMemo<std::map<std::pair<int64_t, int64_t>, std::vector<float>>> pos_cache_;
};

std::vector<int64_t> torch_dims_of(const GGUFTensorInfo& t) { return {t.ne.rbegin(), t.ne.rend()}; }

void VitFamily::read_hparams(const GGUFFile& f) {
  // Our own files use `<arch>.`; llama.cpp mmproj files (and our CLIP files, written in that
  // layout) use `clip.vision.`.
  prefix_ = arch_ == "clip" ? "clip.vision." : arch_ + ".";
  const std::string& p = prefix_;
  try {
    if (arch_ == "clip" && !f.get_bool_or("clip.has_vision_encoder", true))
      throw ModelError(path_ + ": this clip file has no vision encoder (clip.has_vision_encoder = false)");
    D_ = positive_hparam(f, p + "embedding_length");
    L_ = positive_hparam(f, p + "block_count");
    F_ = positive_hparam(f, p + "feed_forward_length");
    heads_ = positive_hparam(f, p + "attention.head_count");
    patch_ = positive_hparam(f, p + "patch_size");
    image_size_ = positive_hparam(f, p + "image_size");
    C_ = f.has(p + "num_channels") ? positive_hparam(f, p + "num_channels") : 3;
    eps_ = static_cast<float>(f.get_float(p + "attention.layer_norm_epsilon"));
    std::string def_act = "gelu";
    if (arch_ == "clip") {
      // llama.cpp: clip.use_gelu selects GELU, clip.use_silu SiLU, neither quick-GELU. Its GELU
      // (ggml_gelu) is the tanh form, which is also what the SigLIP towers those files carry use.
      if (f.get_bool_or("clip.use_silu", false)) def_act = "silu";
      else def_act = f.get_bool_or("clip.use_gelu", false) ? "gelu_tanh" : "quick_gelu";
    }
    act_name_ = f.get_str_or(p + "hidden_act", def_act);
    pooling_ = f.get_str_or(p + "pooling", "");
    post_norm_ = f.get_str_or(p + "post_norm", "tokens");
    const std::string pr = f.get_str_or(p + "pos_resize", "bicubic");
    try {
      pos_resize_ = parse_pos_resize(pr);
    } catch (const std::invalid_argument& e) {
      throw ModelError(path_ + ": " + p + "pos_resize: " + e.what());
    }
  } catch (const GGUFError& e) {
    throw ModelError("invalid " + arch_ + " hyper-parameters: " + e.what());
  }
  if (D_ % heads_ != 0)
    throw ModelError(path_ + ": " + p + "embedding_length " + std::to_string(D_) + " is not divisible by head_count " +
                     std::to_string(heads_));
  if (image_size_ % patch_ != 0)
    throw ModelError(path_ + ": " + p + "image_size " + std::to_string(image_size_) +
                     " is not a multiple of patch_size " + std::to_string(patch_));
  if (C_ <= 0 || C_ > 64) throw ModelError(path_ + ": " + p + "num_channels out of range");
  if (!(eps_ > 0.0f) || !(eps_ < 1.0f)) throw ModelError(path_ + ": " + p + "attention.layer_norm_epsilon out of range");
  if (act_name_ == "gelu") act_ = Act::GeluErf;
  else if (act_name_ == "gelu_tanh" || act_name_ == "gelu_pytorch_tanh") act_ = Act::GeluTanh;
  else if (act_name_ == "quick_gelu") act_ = Act::QuickGelu;
  else
    throw ModelError(path_ + ": unsupported " + p + "hidden_act '" + act_name_ + "' (gelu, gelu_tanh, quick_gelu)");
  if (post_norm_ != "tokens" && post_norm_ != "pooled")
    throw ModelError(path_ + ": unsupported " + p + "post_norm '" + post_norm_ + "' (tokens, pooled)");
  grid0_ = image_size_ / patch_;
}

VitFamily::VitFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()) {
  arch_ = f.get_str_or("general.architecture", "vit");
  read_hparams(f);
  const std::string& p = prefix_;

  patch_w_ = w.linear("v.patch_embd.weight", "v.patch_embd.bias", D_,
                      checked_mul<ModelError>(checked_mul<ModelError>(C_, patch_, path_ + ": patch embedding row length"),
                                              patch_, path_ + ": patch embedding row length"));
  cls_ = w.vec_opt("v.class_embd", D_);
  dist_ = w.vec_opt("v.dist_embd", D_);
  if (dist_ && !cls_) throw ModelError(path_ + ": a distillation token needs a class token");
  const float* regs = nullptr;
  if (w.has("v.reg_embd")) {
    const GGUFTensorInfo* t = w.file().find_tensor("v.reg_embd");
    n_reg_ = t->ne.size() == 2 ? t->ne[1] : 0;
    if (n_reg_ <= 0 || n_reg_ > 1024) throw ModelError(path_ + ": v.reg_embd must be a matrix [registers, D]");
    regs = w.tensor_f32("v.reg_embd", {n_reg_, D_});
  }
  n_prefix_ = (cls_ ? 1 : 0) + (dist_ ? 1 : 0) + n_reg_;
  for (const float* tok : {cls_, dist_})
    if (tok) prefix_tokens_.insert(prefix_tokens_.end(), tok, tok + D_);
  if (regs) prefix_tokens_.insert(prefix_tokens_.end(), regs, regs + n_reg_ * D_);
  if (w.has("v.position_embd.weight")) {
    // Its row count says how many prefix tokens carry a position (all, the class token only
    // with HF DINOv2 registers, none with timm no_embed_class).
    const GGUFTensorInfo* t = w.file().find_tensor("v.position_embd.weight");
    const std::vector<int64_t> dims = torch_dims_of(*t);
    const int64_t rows = dims.size() == 2 ? dims[0] : (dims.size() == 3 && dims[0] == 1 ? dims[1] : -1);
    n_pos_prefix_ = rows - grid0_ * grid0_;
    if (rows < 0 || n_pos_prefix_ < 0 || n_pos_prefix_ > n_prefix_)
      throw ModelError(path_ + ": v.position_embd.weight has " + std::to_string(rows) + " rows; expected " +
                       std::to_string(grid0_ * grid0_) + " patch positions (" + std::to_string(grid0_) + "x" +
                       std::to_string(grid0_) + ") plus at most " + std::to_string(n_prefix_) + " prefix tokens");
    pos_ = w.tensor_f32("v.position_embd.weight", dims);
  }
  if (pos_)
    for (int64_t r = 0; r < n_pos_prefix_; ++r)
      for (int64_t d = 0; d < D_; ++d) prefix_tokens_[r * D_ + d] += pos_[r * D_ + d];
  if (w.has("v.pre_ln.weight")) {
    pre_g_ = w.vec("v.pre_ln.weight", D_);
    pre_b_ = w.vec_opt("v.pre_ln.bias", D_);
  }

  for (int64_t i = 0; i < L_; ++i) {
    const std::string b_ = "v.blk." + std::to_string(i) + ".";
    VitBlock b;
    b.ln1_g = w.vec(b_ + "ln1.weight", D_);
    b.ln1_b = w.vec_opt(b_ + "ln1.bias", D_);
    if (w.has(b_ + "attn_qkv.weight"))
      b.qkv = w.linear(b_ + "attn_qkv.weight", b_ + "attn_qkv.bias", 3 * D_, D_);
    else
      b.qkv = w.linear_concat({b_ + "attn_q.weight", b_ + "attn_k.weight", b_ + "attn_v.weight"},
                              {b_ + "attn_q.bias", b_ + "attn_k.bias", b_ + "attn_v.bias"}, D_, D_);
    b.out = w.linear(b_ + "attn_out.weight", b_ + "attn_out.bias", D_, D_);
    b.ln2_g = w.vec(b_ + "ln2.weight", D_);
    b.ln2_b = w.vec_opt(b_ + "ln2.bias", D_);
    std::string up = b_ + "ffn_up", down = b_ + "ffn_down";
    if (F_ != D_ && w.has(up + ".weight") && w.has(down + ".weight")) {
      // Some llama.cpp mmproj files name fc1 ffn_down and fc2 ffn_up (llama.cpp's clip loader
      // swaps them back by shape too).
      const auto du = torch_dims_of(*w.file().find_tensor(up + ".weight"));
      const auto dd = torch_dims_of(*w.file().find_tensor(down + ".weight"));
      if (du == std::vector<int64_t>{D_, F_} && dd == std::vector<int64_t>{F_, D_}) std::swap(up, down);
    }
    if (w.has(b_ + "ffn_gate.weight")) {
      b.swiglu = true;
      b.fc1 = w.linear_concat({b_ + "ffn_gate.weight", up + ".weight"}, {b_ + "ffn_gate.bias", up + ".bias"}, F_, D_);
    } else {
      b.fc1 = w.linear(up + ".weight", up + ".bias", F_, D_);
    }
    b.fc2 = w.linear(down + ".weight", down + ".bias", D_, F_);
    b.ls1 = w.vec_opt(b_ + "ls1", D_);
    b.ls2 = w.vec_opt(b_ + "ls2", D_);
    blocks_.push_back(b);
  }
  if (w.has("v.post_ln.weight")) {
    post_g_ = w.vec("v.post_ln.weight", D_);
    post_b_ = w.vec_opt("v.post_ln.bias", D_);
  }
  if (w.has("v.fc_norm.weight")) {
    fcn_g_ = w.vec("v.fc_norm.weight", D_);
    fcn_b_ = w.vec_opt("v.fc_norm.bias", D_);
  }
  if (w.has("v.map.probe")) {
    map_ = std::make_unique<MapHead>();
    const float* probe = w.vec("v.map.probe", D_);
    const float* wq = w.tensor_f32("v.map.attn_q.weight", {D_, D_});
    const float* bq = w.vec_opt("v.map.attn_q.bias", D_);
    map_->q.resize(D_);
    for (int64_t n = 0; n < D_; ++n) {
      double s = bq ? bq[n] : 0.0;
      for (int64_t k = 0; k < D_; ++k) s += static_cast<double>(wq[n * D_ + k]) * probe[k];
      map_->q[n] = static_cast<float>(s);
    }
    map_->kv = w.linear_concat({"v.map.attn_k.weight", "v.map.attn_v.weight"}, {"v.map.attn_k.bias", "v.map.attn_v.bias"},
                               D_, D_);
    map_->out = w.linear("v.map.attn_out.weight", "v.map.attn_out.bias", D_, D_);
    map_->ln_g = w.vec("v.map.ln.weight", D_);
    map_->ln_b = w.vec_opt("v.map.ln.bias", D_);
    map_->fc1 = w.linear("v.map.ffn_up.weight", "v.map.ffn_up.bias", F_, D_);
    map_->fc2 = w.linear("v.map.ffn_down.weight", "v.map.ffn_down.bias", D_, F_);
  }
  if (pooling_.empty()) pooling_ = cls_ ? "cls" : (map_ ? "map" : "avg");
  if (pooling_ == "cls") {
    if (!cls_) throw ModelError(path_ + ": " + p + "pooling 'cls' but the model has no class token");
  } else if (pooling_ == "cls_dist_avg") {
    if (!dist_) throw ModelError(path_ + ": " + p + "pooling 'cls_dist_avg' but the model has no distillation token");
  } else if (pooling_ == "map") {
    if (!map_) throw ModelError(path_ + ": " + p + "pooling 'map' but the model has no v.map.* attention-pooling head");
  } else if (pooling_ != "avg") {
    throw ModelError(path_ + ": unsupported " + p + "pooling '" + pooling_ + "' (cls, avg, cls_dist_avg, map)");
  }
  if (post_norm_ == "pooled" && !post_g_) throw ModelError(path_ + ": " + p + "post_norm 'pooled' needs v.post_ln");
  if (w.has("v.pooler.weight")) {
    if (!cls_) throw ModelError(path_ + ": a pooler needs a class token");
    pooler_ = w.linear("v.pooler.weight", "v.pooler.bias", D_, D_);
  }
  if (w.has("v.proj.weight")) {
    const GGUFTensorInfo* t = w.file().find_tensor("v.proj.weight");
    const int64_t E = t->ne.size() == 2 ? t->ne[1] : 0;
    if (E <= 0) throw ModelError(path_ + ": v.proj.weight must be a matrix [projection_dim, D]");
    proj_ = w.linear("v.proj.weight", "v.proj.bias", E, D_);
  }
  if (arch_ == "clip") {
    projector_type_ = f.get_str_or("clip.vision.projector_type", f.get_str_or("clip.projector_type", ""));
    if (projector_type_ == "mlp" && w.has("mm.0.weight") && w.has("mm.2.weight")) {
      // LLaVA: mm.2(gelu(mm.0(patch tokens))), ggml's GELU being the tanh form.
      const GGUFTensorInfo* t0 = w.file().find_tensor("mm.0.weight");
      const GGUFTensorInfo* t2 = w.file().find_tensor("mm.2.weight");
      const int64_t H0 = t0->ne.size() == 2 ? t0->ne[1] : 0, E = t2->ne.size() == 2 ? t2->ne[1] : 0;
      if (H0 <= 0 || E <= 0) throw ModelError(path_ + ": mm.0.weight / mm.2.weight must be matrices");
      mm0_ = w.linear("mm.0.weight", "mm.0.bias", H0, D_);
      mm2_ = w.linear("mm.2.weight", "mm.2.bias", E, H0);
    }
  }
  if (w.has("v.head.weight")) {
    const GGUFTensorInfo* h = w.file().find_tensor("v.head.weight");
    const int64_t n_cls = h->ne.size() == 2 ? h->ne[1] : 0;
    if (n_cls <= 0) throw ModelError(path_ + ": v.head.weight must be a matrix [classes, D]");
    head_ = w.linear("v.head.weight", "v.head.bias", n_cls, D_);
    if (w.has("v.head_dist.weight")) {
      if (!dist_) throw ModelError(path_ + ": v.head_dist needs a distillation token");
      head_dist_ = w.linear("v.head_dist.weight", "v.head_dist.bias", n_cls, D_);
    }
  }
}

std::vector<std::string> VitFamily::output_names() const {
  std::vector<std::string> n = {"last_hidden_state", "pooled", "embedding", "patch_tokens", "feature_map"};
  if (cls_) n.push_back("cls");
  if (head_) n.push_back("logits");
  if (mm0_) n.push_back("mm_projection");
  for (int64_t i = 0; i <= L_; ++i) n.push_back("hidden_states." + std::to_string(i));
  return n;
}

void VitFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("input has " + std::to_string(C) + " channels; this model takes " + std::to_string(C_));
  if (H < patch_ || W < patch_)
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; it must be at least one " +
                     std::to_string(patch_) + "x" + std::to_string(patch_) + " patch");
  if (H > 16384 || W > 16384) throw ModelError("input " + std::to_string(H) + "x" + std::to_string(W) + " is too large");
  if (pos_ && pos_resize_ == PosResize::None && (H / patch_ != grid0_ || W / patch_ != grid0_))
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this model runs at its native " +
                     std::to_string(image_size_) + "x" + std::to_string(image_size_) +
                     " resolution only (its reference has no position-table resize)");
}

const float* VitFamily::pos_table(int64_t gh, int64_t gw) const {
  if (!pos_ || (gh == grid0_ && gw == grid0_)) return pos_;
  std::lock_guard<std::mutex> lk(pos_cache_->mu);
  auto& t = pos_cache_->value[{gh, gw}];
  if (t.empty()) {
    t.resize(static_cast<size_t>((n_pos_prefix_ + gh * gw) * D_));
    std::copy(pos_, pos_ + n_pos_prefix_ * D_, t.begin());
    resize_pos_table(pos_ + n_pos_prefix_ * D_, grid0_, grid0_, D_, gh, gw, pos_resize_,
                     t.data() + n_pos_prefix_ * D_);
  }
  return t.data();
}

std::unique_ptr<Graph> VitFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  const int64_t p = patch_, gh = H / p, gw = W / p, n_patches = gh * gw;
  const int64_t T = n_prefix_ + n_patches, Dh = D_ / heads_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));

  // Patch embedding: the pixels' p x p patches as rows (c, ky, kx), the conv weight's order
  // (pixels past the last whole patch are dropped, as the strided conv does), then a GEMM.
  int px = b.input("pixels", {B, C_, H, W});
  px = b.slice(b.slice(px, 2, 0, gh * p), 3, 0, gw * p);
  int patches = b.permute(b.reshape(px, {B, C_, gh, p, gw, p}), {0, 2, 4, 1, 3, 5});
  patches = b.reshape(b.contiguous(patches), {B, n_patches, C_ * p * p});
  int x = b.linear("patch_embed", patches, patch_w_);
  if (const float* pos = pos_table(gh, gw))
    x = b.add("pos_embed", x, b.constant("pos_patches", {n_patches, D_}, pos + n_pos_prefix_ * D_));
  if (n_prefix_ > 0) {
    const int prefix = b.constant("prefix_tokens", {1, n_prefix_, D_}, prefix_tokens_.data());
    x = b.concat("tokens", {b.broadcast(prefix, {B, n_prefix_, D_}), x}, 1);
  }
  if (pre_g_) x = b.layernorm("pre_ln", x, pre_g_, pre_b_, eps_);
  b.output("hidden_states.0", x);

  // x + layer_scale * (h W^T + b), or the fused residual Linear when there is no layer scale.
  auto residual_linear = [&](const std::string& name, int x, int h, const LinearWeight* w, const float* ls) {
    if (!ls) return b.linear(name, h, w, Act::None, x);
    const int t = b.linear(name + "_branch", h, w);
    return b.add_mul(name, x, t, b.constant(name + ".scale", {D_}, ls));
  };
  for (int64_t i = 0; i < L_; ++i) {
    const VitBlock& blk = blocks_[i];
    const std::string pf = "blk" + std::to_string(i) + ".";
    int h = b.layernorm(pf + "ln1", x, blk.ln1_g, blk.ln1_b, eps_);
    int qkv = b.linear(pf + "qkv", h, blk.qkv);
    int att = b.self_attention(pf + "attn", qkv, heads_, scale);
    x = residual_linear(pf + "attn_out", x, att, blk.out, blk.ls1);
    h = b.layernorm(pf + "ln2", x, blk.ln2_g, blk.ln2_b, eps_);
    int u;
    if (blk.swiglu) {
      int gu = b.linear(pf + "fc1", h, blk.fc1);
      u = b.act_mul(pf + "swiglu", b.slice(gu, -1, 0, F_), b.slice(gu, -1, F_, 2 * F_), Act::Silu);
    } else {
      u = b.linear(pf + "fc1", h, blk.fc1, act_);
    }
    x = residual_linear(pf + "fc2", x, u, blk.fc2, blk.ls2);
    b.output("hidden_states." + std::to_string(i + 1), x);
  }
  const bool norm_tokens = post_g_ && post_norm_ == "tokens";
  const int last = norm_tokens ? b.layernorm("post_ln", x, post_g_, post_b_, eps_) : x;
  b.output("last_hidden_state", last);
  const int pt = b.slice(last, 1, n_prefix_, T);
  b.output("patch_tokens", pt);
  b.output("feature_map", b.permute(b.reshape(pt, {B, gh, gw, D_}), {0, 3, 1, 2}));
  if (mm0_) {
    const int h = b.linear("mm.0", pt, mm0_, Act::GeluTanh);
    b.output("mm_projection", b.linear("mm.2", h, mm2_));
  }

  const int cls_tok = cls_ ? b.select(last, 1, 0) : -1;
  if (cls_tok >= 0) b.output("cls", cls_tok);
  int pre;
  if (pooling_ == "cls") {
    pre = cls_tok;
  } else if (pooling_ == "cls_dist_avg") {
    pre = b.add("pool_cls_dist", b.select(last, 1, 0), b.select(last, 1, 1), 0.5f);
  } else if (pooling_ == "map") {
    // One learned probe (already projected, the same for every image) attends over the tokens.
    const int kv = b.reshape(b.linear("map.kv", last, map_->kv), {B, T, 2, heads_, Dh});
    const int q = b.constant("map.query", {1, 1, heads_, Dh}, map_->q.data());
    const int att = b.reshape(b.attention("map.attn", q, b.select(kv, 2, 0), b.select(kv, 2, 1), scale), {B, D_});
    const int o = b.linear("map.out", att, map_->out);
    const int h = b.layernorm("map.ln", o, map_->ln_g, map_->ln_b, eps_);
    const int u = b.linear("map.fc1", h, map_->fc1, act_);
    pre = b.linear("map.fc2", u, map_->fc2, Act::None, o);
  } else {
    pre = b.mean("pool_avg", pt, 1);
  }
  if (post_g_ && post_norm_ == "pooled") pre = b.layernorm("post_ln_pooled", pre, post_g_, post_b_, eps_);
  if (fcn_g_) pre = b.layernorm("fc_norm", pre, fcn_g_, fcn_b_, eps_);
  const int pooled = pooler_ ? b.linear("pooler", cls_tok, pooler_, Act::Tanh) : pre;
  b.output("pooled", pooled);
  b.output("embedding", proj_ ? b.linear("proj", pooled, proj_) : pooled);
  if (head_) {
    int logits;
    if (head_dist_) {
      const int l1 = b.linear("head", cls_tok, head_);
      const int l2 = b.linear("head_dist", b.select(last, 1, 1), head_dist_);
      logits = b.add("logits", l1, l2, 0.5f);
    } else {
      logits = b.linear("head", pre, head_);
    }
    b.output("logits", logits);
  }
  return g;
}

std::map<std::string, std::string> VitFamily::hparams() const {
  return {
      {"architecture", arch_},
      {"embedding_length", std::to_string(D_)},
      {"block_count", std::to_string(L_)},
      {"feed_forward_length", std::to_string(F_)},
      {"head_count", std::to_string(heads_)},
      {"patch_size", std::to_string(patch_)},
      {"image_size", std::to_string(image_size_)},
      {"num_channels", std::to_string(C_)},
      {"hidden_act", act_name_},
      {"pooling", pooling_},
      {"post_norm", post_norm_},
      {"pos_resize", pos_resize_name(pos_resize_)},
      {"num_prefix_tokens", std::to_string(n_prefix_)},
      {"num_register_tokens", std::to_string(n_reg_)},
      {"num_classes", std::to_string(head_ ? head_->N : 0)},
      {"projection_dim", std::to_string(proj_ ? proj_->N : 0)},
      {"has_pooler", pooler_ ? "true" : "false"},
      {"mlp", blocks_.empty() || !blocks_[0].swiglu ? "mlp" : "swiglu"},
      {"projector_type", mm0_ ? projector_type_ : ""},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_vit_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<VitFamily>(f, w);
}

}  // namespace pyvitcpp
