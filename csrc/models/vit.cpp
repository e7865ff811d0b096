// The ViT family graph (ViT, DeiT and distilled DeiT; HF and timm layouts after conversion),
// driven entirely by the GGUF hyper-parameters and by which tensors are present
// (docs/GGUF_SCHEMA.md).
#include <cmath>
#include <sstream>

#include "models/model.h"
#include "models/vit_builder.h"

namespace pyvitcpp {

namespace {

struct VitBlock {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
  LinearWeight *qkv, *out, *fc1, *fc2;
  const float *ls1 = nullptr, *ls2 = nullptr;
};

class VitFamily : public ModelFamily {
 public:
  VitFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return "vit"; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;

 private:
  std::string path_;
  int64_t D_, L_, F_, heads_, patch_, image_size_, C_, n_prefix_, n_patches_;
  float eps_;
  Act act_;
  std::string act_name_, pooling_;
  LinearWeight* patch_w_;
  const float *cls_ = nullptr, *dist_ = nullptr, *pos_ = nullptr;
  std::vector<VitBlock> blocks_;
  const float *post_g_ = nullptr, *post_b_ = nullptr, *fcn_g_ = nullptr, *fcn_b_ = nullptr;
  LinearWeight *pooler_ = nullptr, *head_ = nullptr, *head_dist_ = nullptr;
};

int64_t positive(const GGUFFile& f, const std::string& key) {
  int64_t v = f.get_int(key);
  if (v <= 0 || v > (int64_t{1} << 20))
    throw ModelError(f.path() + ": hyper-parameter " + key + " = " + std::to_string(v) + " is out of range");
  return v;
}

VitFamily::VitFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()) {
  try {
    D_ = positive(f, "vit.embedding_length");
    L_ = positive(f, "vit.block_count");
    F_ = positive(f, "vit.feed_forward_length");
    heads_ = positive(f, "vit.attention.head_count");
    patch_ = positive(f, "vit.patch_size");
    image_size_ = positive(f, "vit.image_size");
    C_ = f.get_int_or("vit.num_channels", 3);
    eps_ = static_cast<float>(f.get_float("vit.attention.layer_norm_epsilon"));
    act_name_ = f.get_str_or("vit.hidden_act", "gelu");
    pooling_ = f.get_str_or("vit.pooling", "cls");
  } catch (const GGUFError& e) {
    throw ModelError(std::string("invalid ViT hyper-parameters: ") + e.what());
  }
  if (D_ % heads_ != 0)
    throw ModelError(path_ + ": vit.embedding_length " + std::to_string(D_) + " is not divisible by head_count " +
                     std::to_string(heads_));
  if (image_size_ % patch_ != 0)
    throw ModelError(path_ + ": vit.image_size " + std::to_string(image_size_) + " is not a multiple of patch_size " +
                     std::to_string(patch_));
  if (C_ <= 0 || C_ > 64) throw ModelError(path_ + ": vit.num_channels out of range");
  if (!(eps_ > 0.0f) || !(eps_ < 1.0f)) throw ModelError(path_ + ": vit.attention.layer_norm_epsilon out of range");
  if (act_name_ == "gelu") act_ = Act::GeluErf;
  else if (act_name_ == "gelu_tanh" || act_name_ == "gelu_pytorch_tanh") act_ = Act::GeluTanh;
  else if (act_name_ == "quick_gelu") act_ = Act::QuickGelu;
  else throw ModelError(path_ + ": unsupported vit.hidden_act '" + act_name_ + "' (gelu, gelu_tanh, quick_gelu)");

  patch_w_ = w.linear("v.patch_embd.weight", "v.patch_embd.bias", D_, C_ * patch_ * patch_);
  cls_ = w.vec_opt("v.class_embd", D_);
  dist_ = w.vec_opt("v.dist_embd", D_);
  if (dist_ && !cls_) throw ModelError(path_ + ": a distillation token needs a class token");
  n_prefix_ = (cls_ ? 1 : 0) + (dist_ ? 1 : 0);
  const int64_t grid = image_size_ / patch_;
  n_patches_ = grid * grid;
  if (w.has("v.position_embd.weight")) pos_ = w.tensor_f32("v.position_embd.weight", {n_prefix_ + n_patches_, D_});

  for (int64_t i = 0; i < L_; ++i) {
    const std::string p = "v.blk." + std::to_string(i) + ".";
    VitBlock b;
    b.ln1_g = w.vec(p + "ln1.weight", D_);
    b.ln1_b = w.vec_opt(p + "ln1.bias", D_);
    if (w.has(p + "attn_qkv.weight"))
      b.qkv = w.linear(p + "attn_qkv.weight", p + "attn_qkv.bias", 3 * D_, D_);
    else
      b.qkv = w.linear_concat({p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"},
                              {p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"}, D_, D_);
    b.out = w.linear(p + "attn_out.weight", p + "attn_out.bias", D_, D_);
    b.ln2_g = w.vec(p + "ln2.weight", D_);
    b.ln2_b = w.vec_opt(p + "ln2.bias", D_);
    b.fc1 = w.linear(p + "ffn_up.weight", p + "ffn_up.bias", F_, D_);
    b.fc2 = w.linear(p + "ffn_down.weight", p + "ffn_down.bias", D_, F_);
    b.ls1 = w.vec_opt(p + "ls1", D_);
    b.ls2 = w.vec_opt(p + "ls2", D_);
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
  if (pooling_ == "cls") {
    if (!cls_) throw ModelError(path_ + ": vit.pooling 'cls' but the model has no class token");
  } else if (pooling_ == "cls_dist_avg") {
    if (!dist_) throw ModelError(path_ + ": vit.pooling 'cls_dist_avg' but the model has no distillation token");
  } else if (pooling_ != "avg") {
    throw ModelError(path_ + ": unsupported vit.pooling '" + pooling_ + "' (cls, avg, cls_dist_avg)");
  }
  if (w.has("v.pooler.weight")) {
    if (!cls_) throw ModelError(path_ + ": a pooler needs a class token");
    pooler_ = w.linear("v.pooler.weight", "v.pooler.bias", D_, D_);
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
  std::vector<std::string> n = {"last_hidden_state", "pooled", "embedding"};
  if (cls_) n.push_back("cls");
  if (head_) n.push_back("logits");
  return n;
}

void VitFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("input has " + std::to_string(C) + " channels; this model takes " + std::to_string(C_));
  if (H != image_size_ || W != image_size_)
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this model runs at its native " +
                     std::to_string(image_size_) + "x" + std::to_string(image_size_) + " resolution");
}

std::unique_ptr<Graph> VitFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  TowerBuilder tb(*g);
  const int64_t T = n_prefix_ + n_patches_, BT = B * T, K = C_ * patch_ * patch_;
  const std::vector<int64_t> tok_shape = {B, T, D_};

  int px = g->add_input("pixels", {B, C_, H, W}, B * C_ * H, W);
  int patches = tb.tensor("patches", {B * n_patches_, K}, B * n_patches_, K);
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
  int pe = tb.linear("patch_embed", patches, patch_w_, B * n_patches_, {B, n_patches_, D_});
  int x = tb.tensor("tokens", tok_shape, BT, D_);
  {
    Node n{OpType::EmbedTokens, "embed_tokens"};
    n.out = x;
    n.in = {pe};
    n.B = B;
    n.T = T;
    n.n_prefix = n_prefix_;
    n.cls = cls_;
    n.dist = dist_;
    n.pos = pos_;
    g->add_node(n);
  }
  for (int64_t i = 0; i < L_; ++i) {
    const VitBlock& b = blocks_[i];
    const std::string p = "blk" + std::to_string(i) + ".";
    int h = tb.layernorm(p + "ln1", x, b.ln1_g, b.ln1_b, eps_);
    int qkv = tb.linear(p + "qkv", h, b.qkv, BT, {B, T, 3 * D_});
    int att = tb.self_attention(p + "attn", qkv, B, T, heads_, D_ / heads_);
    x = tb.residual_linear(p + "attn_out", x, att, b.out, b.ls1);
    h = tb.layernorm(p + "ln2", x, b.ln2_g, b.ln2_b, eps_);
    int u = tb.linear(p + "fc1", h, b.fc1, BT, {B, T, F_}, act_);
    x = tb.residual_linear(p + "fc2", x, u, b.fc2, b.ls2);
  }
  int last = post_g_ ? tb.layernorm("post_ln", x, post_g_, post_b_, eps_) : x;
  g->set_output("last_hidden_state", last);

  int cls_tok = cls_ ? tb.pool("cls", last, B, T, PoolMode::Token, 0, 0) : -1;
  if (cls_tok >= 0) g->set_output("cls", cls_tok);
  int pre;
  if (pooling_ == "cls") pre = cls_tok;
  else if (pooling_ == "cls_dist_avg") pre = tb.pool("pool_cls_dist", last, B, T, PoolMode::MeanOfTwo, 0, 1);
  else pre = tb.pool("pool_avg", last, B, T, PoolMode::MeanRange, n_prefix_, T);
  if (fcn_g_) pre = tb.layernorm("fc_norm", pre, fcn_g_, fcn_b_, eps_);
  int pooled = pooler_ ? tb.linear("pooler", cls_tok, pooler_, B, {B, D_}, Act::Tanh) : pre;
  g->set_output("pooled", pooled);
  g->set_output("embedding", pooled);
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
      {"architecture", "vit"},
      {"embedding_length", std::to_string(D_)},
      {"block_count", std::to_string(L_)},
      {"feed_forward_length", std::to_string(F_)},
      {"head_count", std::to_string(heads_)},
      {"patch_size", std::to_string(patch_)},
      {"image_size", std::to_string(image_size_)},
      {"num_channels", std::to_string(C_)},
      {"hidden_act", act_name_},
      {"pooling", pooling_},
      {"num_prefix_tokens", std::to_string(n_prefix_)},
      {"num_classes", std::to_string(head_ ? head_->N : 0)},
      {"has_pooler", pooler_ ? "true" : "false"},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_vit_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<VitFamily>(f, w);
}

}  // namespace pyvitcpp
