// The transformer vision-tower family: ViT, DeiT (distilled), DINOv2 (layer scale, registers,
// SwiGLU), CLIP (pre-LN, post-LN on the pooled token, visual projection) and SigLIP (no class
// token, attention-pooling head), at any input resolution (the position table is resized as the
// reference library does and cached per patch grid). Driven by the GGUF hyper-parameters and by
// which tensors are present (docs/GGUF_SCHEMA.md); reads llama.cpp mmproj files (architecture
// `clip`, keys `clip.vision.*`) as well.
#include <cmath>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "models/model.h"
#include "models/vit_builder.h"
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
  std::vector<float> prefix_tokens_;  // [n_prefix, D]: class, distillation, registers
  std::vector<VitBlock> blocks_;
  const float *pre_g_ = nullptr, *pre_b_ = nullptr;
  const float *post_g_ = nullptr, *post_b_ = nullptr, *fcn_g_ = nullptr, *fcn_b_ = nullptr;
  LinearWeight *pooler_ = nullptr, *head_ = nullptr, *head_dist_ = nullptr, *proj_ = nullptr;
  LinearWeight *mm0_ = nullptr, *mm2_ = nullptr;  // llama.cpp LLaVA "mlp" projector
  std::string projector_type_;
  std::unique_ptr<MapHead> map_;

  mutable std::mutex pos_mu_;
  mutable std::map<std::pair<int64_t, int64_t>, std::vector<float>> pos_cache_;
};

int64_t positive(const GGUFFile& f, const std::string& key) {
  int64_t v = f.get_int(key);
  if (v <= 0 || v > (int64_t{1} << 20))
    throw ModelError(f.path() + ": hyper-parameter " + key + " = " + std::to_string(v) + " is out of range");
  return v;
}

std::vector<int64_t> torch_dims_of(const GGUFTensorInfo& t) { return {t.ne.rbegin(), t.ne.rend()}; }

void VitFamily::read_hparams(const GGUFFile& f) {
  // Our own files use `<arch>.`; llama.cpp mmproj files (and our CLIP files, written in that
  // layout) use `clip.vision.`.
  prefix_ = arch_ == "clip" ? "clip.vision." : arch_ + ".";
  const std::string& p = prefix_;
  try {
    if (arch_ == "clip" && !f.get_bool_or("clip.has_vision_encoder", true))
      throw ModelError(path_ + ": this clip file has no vision encoder (clip.has_vision_encoder = false)");
    D_ = positive(f, p + "embedding_length");
    L_ = positive(f, p + "block_count");
    F_ = positive(f, p + "feed_forward_length");
    heads_ = positive(f, p + "attention.head_count");
    patch_ = positive(f, p + "patch_size");
    image_size_ = positive(f, p + "image_size");
    C_ = f.get_int_or(p + "num_channels", 3);
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

  patch_w_ = w.linear("v.patch_embd.weight", "v.patch_embd.bias", D_, C_ * patch_ * patch_);
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
  std::lock_guard<std::mutex> lk(pos_mu_);
  auto& t = pos_cache_[{gh, gw}];
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
  TowerBuilder tb(*g);
  const int64_t gh = H / patch_, gw = W / patch_, n_patches = gh * gw;
  const int64_t T = n_prefix_ + n_patches, BT = B * T, K = C_ * patch_ * patch_;
  const std::vector<int64_t> tok_shape = {B, T, D_};

  int px = g->add_input("pixels", {B, C_, H, W}, B * C_ * H, W);
  int patches = tb.tensor("patches", {B * n_patches, K}, B * n_patches, K);
  {
    Node n{OpType::Patchify, "patchify"};
    n.out = patches;
    n.in = {px};
    n.B = B;
    n.C = C_;
    n.img_h = H;
    n.img_w = W;
    n.patch = patch_;
    g->add_node(n);
  }
  int pe = tb.linear("patch_embed", patches, patch_w_, B * n_patches, {B, n_patches, D_});
  int x = tb.tensor("tokens", tok_shape, BT, D_);
  {
    Node n{OpType::EmbedPrefixed, "embed_tokens"};
    n.out = x;
    n.in = {pe};
    n.B = B;
    n.T = T;
    n.n_prefix = n_prefix_;
    n.n_pos_prefix = n_pos_prefix_;
    n.prefix = prefix_tokens_.empty() ? nullptr : prefix_tokens_.data();
    n.pos = pos_table(gh, gw);
    g->add_node(n);
  }
  if (pre_g_) x = tb.layernorm("pre_ln", x, pre_g_, pre_b_, eps_);
  g->set_output("hidden_states.0", x);
  for (int64_t i = 0; i < L_; ++i) {
    const VitBlock& b = blocks_[i];
    const std::string p = "blk" + std::to_string(i) + ".";
    int h = tb.layernorm(p + "ln1", x, b.ln1_g, b.ln1_b, eps_);
    int qkv = tb.linear(p + "qkv", h, b.qkv, BT, {B, T, 3 * D_});
    int att = tb.self_attention(p + "attn", qkv, B, T, heads_, D_ / heads_);
    x = tb.residual_linear(p + "attn_out", x, att, b.out, b.ls1);
    h = tb.layernorm(p + "ln2", x, b.ln2_g, b.ln2_b, eps_);
    int u;
    if (b.swiglu) {
      int gu = tb.linear(p + "fc1", h, b.fc1, BT, {B, T, 2 * F_});
      u = tb.tensor(p + "swiglu", {B, T, F_}, BT, F_);
      Node n{OpType::SwiGLU, p + "swiglu"};
      n.out = u;
      n.in = {gu};
      g->add_node(n);
    } else {
      u = tb.linear(p + "fc1", h, b.fc1, BT, {B, T, F_}, act_);
    }
    x = tb.residual_linear(p + "fc2", x, u, b.fc2, b.ls2);
    g->set_output("hidden_states." + std::to_string(i + 1), x);
  }
  const bool norm_tokens = post_g_ && post_norm_ == "tokens";
  int last = norm_tokens ? tb.layernorm("post_ln", x, post_g_, post_b_, eps_) : x;
  g->set_output("last_hidden_state", last);
  {
    int pt = tb.tensor("patch_tokens", {B, n_patches, D_}, B * n_patches, D_);
    Node n{OpType::TokenSlice, "patch_tokens"};
    n.out = pt;
    n.in = {last};
    n.B = B;
    n.T = T;
    n.tok0 = n_prefix_;
    n.tok1 = T;
    g->add_node(n);
    g->set_output("patch_tokens", pt);
    int fm = tb.tensor("feature_map", {B, D_, gh, gw}, B * D_, n_patches);
    Node m{OpType::FeatureMap, "feature_map"};
    m.out = fm;
    m.in = {last};
    m.B = B;
    m.T = T;
    m.tok0 = n_prefix_;
    m.grid_h = gh;
    m.grid_w = gw;
    g->add_node(m);
    g->set_output("feature_map", fm);
    if (mm0_) {
      int h = tb.linear("mm.0", pt, mm0_, B * n_patches, {B, n_patches, mm0_->N}, Act::GeluTanh);
      g->set_output("mm_projection", tb.linear("mm.2", h, mm2_, B * n_patches, {B, n_patches, mm2_->N}));
    }
  }

  int cls_tok = cls_ ? tb.pool("cls", last, B, T, PoolMode::Token, 0, 0) : -1;
  if (cls_tok >= 0) g->set_output("cls", cls_tok);
  int pre;
  if (pooling_ == "cls") {
    pre = cls_tok;
  } else if (pooling_ == "cls_dist_avg") {
    pre = tb.pool("pool_cls_dist", last, B, T, PoolMode::MeanOfTwo, 0, 1);
  } else if (pooling_ == "map") {
    const int64_t Dh = D_ / heads_;
    int kv = tb.linear("map.kv", last, map_->kv, BT, {B, T, 2 * D_});
    int att = tb.tensor("map.attn", {B, D_}, B, D_);
    Node n{OpType::QueryAttention, "map.attn"};
    n.out = att;
    n.in = {kv};
    n.B = B;
    n.T = T;
    n.H = heads_;
    n.Dh = Dh;
    n.query = map_->q.data();
    g->add_node(n);
    int o = tb.linear("map.out", att, map_->out, B, {B, D_});
    int h = tb.layernorm("map.ln", o, map_->ln_g, map_->ln_b, eps_);
    int u = tb.linear("map.fc1", h, map_->fc1, B, {B, F_}, act_);
    pre = tb.linear("map.fc2", u, map_->fc2, B, {B, D_}, Act::None, o);
  } else {
    pre = tb.pool("pool_avg", last, B, T, PoolMode::MeanRange, n_prefix_, T);
  }
  if (post_g_ && post_norm_ == "pooled") pre = tb.layernorm("post_ln_pooled", pre, post_g_, post_b_, eps_);
  if (fcn_g_) pre = tb.layernorm("fc_norm", pre, fcn_g_, fcn_b_, eps_);
  int pooled = pooler_ ? tb.linear("pooler", cls_tok, pooler_, B, {B, D_}, Act::Tanh) : pre;
  g->set_output("pooled", pooled);
  int emb = proj_ ? tb.linear("proj", pooled, proj_, B, {B, proj_->N}) : pooled;
  g->set_output("embedding", emb);
  if (head_) {
    const std::vector<int64_t> lshape = {B, head_->N};
    int logits;
    if (head_dist_) {
      int dist_tok = tb.pool("dist", last, B, T, PoolMode::Token, 1, 0);
      int l1 = tb.linear("head", cls_tok, head_, B, lshape);
      int l2 = tb.linear("head_dist", dist_tok, head_dist_, B, lshape);
      logits = tb.add_scaled("logits", l1, l2, 0.5f);
    } else {
      logits = tb.linear("head", pre, head_, B, lshape);
    }
    g->set_output("logits", logits);
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
