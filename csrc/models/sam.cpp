// Segment Anything's image encoder (segment_anything ImageEncoderViT, HF SamVisionModel): a
// ViT over the NHWC patch grid [B, gh, gw, D] with windowed and global blocks, SAM's decomposed
// relative position in every attention, then the neck (1x1 conv, LayerNorm2d, 3x3 conv,
// LayerNorm2d) -> image embeddings [B, C_out, gh, gw]. Keys and tensors: docs/GGUF_SCHEMA.md.
//
// A windowed block pads the normalised grid bottom/right with zeros to whole windows (the
// padded tokens take part in the attention, as in the reference), partitions it into windows
// (a permuted view copied once), runs one Attention over all windows as the batch, and undoes
// the partition before the output projection: the projection is per token, so it runs on the
// cropped grid only and carries the residual add in its epilogue.
//
// Other input sizes (multiples of the patch) follow timm's SAM ViT: the position table is resized
// (sam.pos_resize, bicubic with antialiasing by default) and the global blocks' rel-pos tables
// are linearly interpolated to 2 g - 1 rows per axis, as get_rel_pos does; windowed blocks keep
// theirs. Both are computed once per grid and cached.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>

#include "graph/builder.h"
#include "models/model.h"
#include "ops/conv_ops.h"
#include "ops/pos_resize.h"

namespace pyvitcpp {

namespace {

struct SamBlock {
  const float *ln1_g, *ln1_b, *ln2_g, *ln2_b;
  LinearWeight *qkv, *out, *fc1, *fc2;
  const float *rel_h = nullptr, *rel_w = nullptr;  // [2 g - 1, Dh] each, g the attention grid
  int64_t window = 0;                              // 0: global attention
};

class SamFamily : public ModelFamily {
 public:
  SamFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return "sam"; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;
  void reset_after_fork() override { grid_cache_.reset_after_fork(); }
  void trim_memo(const std::vector<std::pair<int64_t, int64_t>>& live_hw) override {
    grid_cache_.erase_unless([&](const std::pair<int64_t, int64_t>& grid) {
      for (const auto& hw : live_hw)  // the grid build() uses for that input
        if (hw.first / patch_ == grid.first && hw.second / patch_ == grid.second) return true;
      return false;
    });
  }

 private:
  void read_hparams(const GGUFFile& f);
  // Position table [gh, gw, D] and the global blocks' rel-pos tables for a gh x gw grid.
  struct GridTables {
    std::vector<float> pos;
    std::map<int64_t, std::pair<std::vector<float>, std::vector<float>>> rel;  // block -> (h, w)
  };
  const GridTables& grid_tables(int64_t gh, int64_t gw) const;

  std::string path_;
  int64_t D_, L_, F_, heads_, patch_, image_size_, C_, grid_, window_, out_ch_;
  float eps_, neck_eps_;
  bool use_rel_pos_, use_abs_pos_, qkv_bias_;
  PosResize pos_resize_ = PosResize::BicubicAntialias;
  std::vector<int64_t> global_;
  LinearWeight* patch_w_;
  const float* pos_ = nullptr;  // [grid, grid, D]
  std::vector<SamBlock> blocks_;
  LinearWeight *neck0_, *neck2_;
  const float *neck1_g_, *neck1_b_, *neck3_g_, *neck3_b_;
  mutable ForkSafeMemo<std::map<std::pair<int64_t, int64_t>, GridTables>> grid_cache_;
};

void SamFamily::read_hparams(const GGUFFile& f) {
  const std::string p = "sam.";
  try {
    D_ = positive_hparam(f, p + "embedding_length");
    L_ = positive_hparam(f, p + "block_count");
    F_ = positive_hparam(f, p + "feed_forward_length");
    heads_ = positive_hparam(f, p + "attention.head_count");
    patch_ = positive_hparam(f, p + "patch_size");
    image_size_ = positive_hparam(f, p + "image_size");
    out_ch_ = positive_hparam(f, p + "output_channels");
    C_ = f.get_int_or(p + "num_channels", 3);
    window_ = f.get_int_or(p + "window_size", 0);
    eps_ = static_cast<float>(f.get_float(p + "attention.layer_norm_epsilon"));
    neck_eps_ = static_cast<float>(f.get_float_or(p + "neck.layer_norm_epsilon", eps_));
    use_rel_pos_ = f.get_bool_or(p + "use_rel_pos", true);
    use_abs_pos_ = f.get_bool_or(p + "use_abs_pos", true);
    qkv_bias_ = f.get_bool_or(p + "qkv_bias", true);
    if (f.find(p + "global_attn_indexes")) global_ = f.get_int_array(p + "global_attn_indexes");
    const std::string pr = f.get_str_or(p + "pos_resize", "bicubic_antialias");
    try {
      pos_resize_ = parse_pos_resize(pr);
    } catch (const std::invalid_argument& e) {
      throw ModelError(path_ + ": sam.pos_resize: " + e.what());
    }
  } catch (const GGUFError& e) {
    throw ModelError("invalid sam hyper-parameters: " + std::string(e.what()));
  }
  if (D_ % heads_ != 0)
    throw ModelError(path_ + ": sam.embedding_length " + std::to_string(D_) + " is not divisible by " +
                     "sam.attention.head_count " + std::to_string(heads_));
  if (image_size_ % patch_ != 0)
    throw ModelError(path_ + ": sam.image_size " + std::to_string(image_size_) + " is not a multiple of sam.patch_size " +
                     std::to_string(patch_));
  if (C_ <= 0 || C_ > 64) throw ModelError(path_ + ": sam.num_channels out of range");
  if (!(eps_ > 0.0f) || !(eps_ < 1.0f)) throw ModelError(path_ + ": sam.attention.layer_norm_epsilon out of range");
  if (!(neck_eps_ > 0.0f) || !(neck_eps_ < 1.0f)) throw ModelError(path_ + ": sam.neck.layer_norm_epsilon out of range");
  grid_ = image_size_ / patch_;
  if (window_ < 0 || window_ > grid_)
    throw ModelError(path_ + ": sam.window_size " + std::to_string(window_) + " must be in [0, " +
                     std::to_string(grid_) + "] (0: every block global; the patch grid is " + std::to_string(grid_) +
                     ")");
  std::set<int64_t> seen;
  for (int64_t i : global_) {
    if (i < 0 || i >= L_)
      throw ModelError(path_ + ": sam.global_attn_indexes holds " + std::to_string(i) + ", outside the " +
                       std::to_string(L_) + " blocks");
    if (!seen.insert(i).second)
      throw ModelError(path_ + ": sam.global_attn_indexes holds " + std::to_string(i) + " twice");
  }
}

SamFamily::SamFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()) {
  read_hparams(f);
  const int64_t Dh = D_ / heads_;
  patch_w_ = w.linear("v.patch_embd.weight", "v.patch_embd.bias", D_, C_ * patch_ * patch_);
  if (use_abs_pos_) {
    const GGUFTensorInfo* t = w.file().find_tensor("v.position_embd.weight");
    if (!t) throw ModelError(path_ + ": sam.use_abs_pos is set but tensor 'v.position_embd.weight' is missing");
    // [1, g, g, D] as segment_anything / HF hold it, [g, g, D] or [g * g, D]: the same rows.
    std::vector<int64_t> dims = {grid_ * grid_, D_};
    if (t->ne.size() == 3) dims = {grid_, grid_, D_};
    if (t->ne.size() == 4) dims = {1, grid_, grid_, D_};
    pos_ = w.tensor_f32("v.position_embd.weight", dims);
  }
  const std::set<int64_t> global(global_.begin(), global_.end());
  for (int64_t i = 0; i < L_; ++i) {
    const std::string b_ = "v.blk." + std::to_string(i) + ".";
    SamBlock b;
    b.window = global.count(i) ? 0 : window_;
    b.ln1_g = w.vec(b_ + "ln1.weight", D_);
    b.ln1_b = w.vec_opt(b_ + "ln1.bias", D_);
    b.qkv = w.linear(b_ + "attn_qkv.weight", qkv_bias_ ? b_ + "attn_qkv.bias" : "", 3 * D_, D_);
    b.out = w.linear(b_ + "attn_out.weight", b_ + "attn_out.bias", D_, D_);
    b.ln2_g = w.vec(b_ + "ln2.weight", D_);
    b.ln2_b = w.vec_opt(b_ + "ln2.bias", D_);
    b.fc1 = w.linear(b_ + "ffn_up.weight", b_ + "ffn_up.bias", F_, D_);
    b.fc2 = w.linear(b_ + "ffn_down.weight", b_ + "ffn_down.bias", D_, F_);
    if (use_rel_pos_) {
      const int64_t g = b.window > 0 ? b.window : grid_;
      b.rel_h = w.tensor_f32(b_ + "attn_rel_h", {2 * g - 1, Dh});
      b.rel_w = w.tensor_f32(b_ + "attn_rel_w", {2 * g - 1, Dh});
    }
    blocks_.push_back(b);
  }
  neck0_ = w.linear("v.neck.0.weight", "", out_ch_, D_);
  neck1_g_ = w.vec("v.neck.1.weight", out_ch_);
  neck1_b_ = w.vec_opt("v.neck.1.bias", out_ch_);
  {
    const std::string wn = "v.neck.2.weight";
    const GGUFTensorInfo* t = w.file().find_tensor(wn);
    if (!t) throw ModelError(path_ + ": required tensor '" + wn + "' is missing");
    if (t->ne != std::vector<int64_t>{3, 3, out_ch_, out_ch_})
      throw ModelError(path_ + ": tensor '" + wn + "' must be a 3x3 conv weight [" + std::to_string(out_ch_) + ", " +
                       std::to_string(out_ch_) + ", 3, 3]");
    const DType type = static_cast<DType>(t->type);
    if (type != DType::F32 && type != DType::F16)
      throw ModelError(path_ + ": conv weight '" + wn + "' has type " + dtype_name(t->type) + "; must be f32 or f16");
    const size_t esz = type == DType::F32 ? 4 : 2;
    AlignedBuffer buf(static_cast<size_t>(out_ch_ * out_ch_ * 9) * esz);
    permute_conv_weight_khwc(t->data, type, out_ch_, out_ch_, 3, 3, buf.data());
    neck2_ = w.linear_owned(wn, type, out_ch_, 9 * out_ch_, std::move(buf), nullptr);
  }
  neck3_g_ = w.vec("v.neck.3.weight", out_ch_);
  neck3_b_ = w.vec_opt("v.neck.3.bias", out_ch_);
}

std::vector<std::string> SamFamily::output_names() const {
  std::vector<std::string> n = {"image_embeddings", "last_hidden_state", "embedding"};
  for (int64_t i = 0; i <= L_; ++i) n.push_back("hidden_states." + std::to_string(i));
  return n;
}

void SamFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("input has " + std::to_string(C) + " channels; this model takes " + std::to_string(C_));
  const bool native = H == image_size_ && W == image_size_;
  if (!native && pos_ && pos_resize_ == PosResize::None)
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this SAM encoder runs at its native " +
                     std::to_string(image_size_) + "x" + std::to_string(image_size_) +
                     " input size only (sam.pos_resize = none)");
  if (H < patch_ || W < patch_ || H % patch_ != 0 || W % patch_ != 0 || H > 16384 || W > 16384)
    throw ModelError("input is " + std::to_string(H) + "x" + std::to_string(W) + "; this SAM encoder takes its native " +
                     std::to_string(image_size_) + "x" + std::to_string(image_size_) + " input, or other sizes that " +
                     "are multiples of its " + std::to_string(patch_) + "-pixel patch (up to 16384)");
}

const SamFamily::GridTables& SamFamily::grid_tables(int64_t gh, int64_t gw) const {
  std::lock_guard<std::mutex> lk(grid_cache_->mu);
  GridTables& t = grid_cache_->value[{gh, gw}];
  if (pos_ && t.pos.empty()) {
    t.pos.resize(static_cast<size_t>(gh * gw * D_));
    resize_pos_table(pos_, grid_, grid_, D_, gh, gw, pos_resize_, t.pos.data());
  }
  const int64_t Dh = D_ / heads_;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const SamBlock& blk = blocks_[i];
    if (blk.window > 0 || !blk.rel_h || t.rel.count(static_cast<int64_t>(i))) continue;
    auto& r = t.rel[static_cast<int64_t>(i)];
    r.first.resize(static_cast<size_t>((2 * gh - 1) * Dh));
    r.second.resize(static_cast<size_t>((2 * gw - 1) * Dh));
    resize_rel_pos_linear(blk.rel_h, 2 * grid_ - 1, Dh, 2 * gh - 1, r.first.data());
    resize_rel_pos_linear(blk.rel_w, 2 * grid_ - 1, Dh, 2 * gw - 1, r.second.data());
  }
  return t;
}

std::unique_ptr<Graph> SamFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  const int64_t p = patch_, gh = H / p, gw = W / p, N = gh * gw, Dh = D_ / heads_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const bool native = gh == grid_ && gw == grid_;
  const GridTables* resized = native ? nullptr : &grid_tables(gh, gw);

  // Patch embedding (the stride-p conv): patches as rows (c, ky, kx), then a GEMM.
  const int px = b.input("pixels", {B, C_, H, W});
  int patches = b.permute(b.reshape(px, {B, C_, gh, p, gw, p}), {0, 2, 4, 1, 3, 5});
  patches = b.reshape(b.contiguous(patches), {B, N, C_ * p * p});
  int x = b.reshape(b.linear("patch_embed", patches, patch_w_), {B, gh, gw, D_});
  if (pos_) x = b.add("pos_embed", x, b.constant("pos_embed.table", {gh, gw, D_}, native ? pos_ : resized->pos.data()));
  b.output("hidden_states.0", x);

  for (int64_t i = 0; i < L_; ++i) {
    const SamBlock& blk = blocks_[i];
    const std::string pf = "blk" + std::to_string(i) + ".";
    int h = b.layernorm(pf + "ln1", x, blk.ln1_g, blk.ln1_b, eps_);  // [B, gh, gw, D]
    const int64_t w = blk.window;
    int64_t Bq = B, T = N, ah = gh, aw = gw, Hp = gh, Wp = gw, nh = 1, nw = 1;
    if (w > 0) {
      Hp = (gh + w - 1) / w * w;
      Wp = (gw + w - 1) / w * w;
      nh = Hp / w;
      nw = Wp / w;
      if (Hp != gh || Wp != gw) h = b.pad(pf + "pad", h, {0, 0, 0, 0}, {0, Hp - gh, Wp - gw, 0});
      h = b.permute(b.reshape(h, {B, nh, w, nw, w, D_}), {0, 1, 3, 2, 4, 5});
      Bq = B * nh * nw;
      T = w * w;
      ah = aw = w;
    }
    h = b.reshape(h, {Bq, T, D_});  // a Copy for the window partition
    const int qkv = b.reshape(b.linear(pf + "qkv", h, blk.qkv), {Bq, T, 3, heads_, Dh});
    GraphBuilder::AttentionTerms terms;
    if (blk.rel_h) {
      const bool own = w > 0 || native;  // windowed blocks keep their tables at any grid
      const auto* r = own ? nullptr : &resized->rel.at(i);
      terms.rel_h = b.constant(pf + "rel_h", {2 * ah - 1, Dh}, own ? blk.rel_h : r->first.data());
      terms.rel_w = b.constant(pf + "rel_w", {2 * aw - 1, Dh}, own ? blk.rel_w : r->second.data());
      terms.grid_h = ah;
      terms.grid_w = aw;
    }
    int att = b.attention(pf + "attn", b.select(qkv, 2, 0), b.select(qkv, 2, 1), b.select(qkv, 2, 2), scale, terms);
    if (w > 0) {
      // Unpartition (a Copy), then crop the padding away (a view).
      att = b.reshape(b.permute(b.reshape(att, {B, nh, nw, w, w, D_}), {0, 1, 3, 2, 4, 5}), {B, Hp, Wp, D_});
      if (Hp != gh || Wp != gw) att = b.slice(b.slice(att, 1, 0, gh), 2, 0, gw);
    }
    x = b.linear(pf + "attn_out", b.reshape(b.contiguous(att), {B, gh, gw, D_}), blk.out, Act::None, x);
    h = b.layernorm(pf + "ln2", x, blk.ln2_g, blk.ln2_b, eps_);
    const int u = b.linear(pf + "fc1", h, blk.fc1, Act::GeluErf);
    x = b.linear(pf + "fc2", u, blk.fc2, Act::None, x);
    b.output("hidden_states." + std::to_string(i + 1), x);
  }

  // Neck over the NHWC map; LayerNorm2d normalises over channels, the last dim here.
  int y = b.linear("neck.0", x, neck0_);
  y = b.layernorm("neck.1", y, neck1_g_, neck1_b_, neck_eps_);
  const ConvAxis ax_h{gh, gh, 3, 1, 1, 1}, ax_w{gw, gw, 3, 1, 1, 1};
  y = b.conv2d("neck.2", y, neck2_, ax_h, ax_w, Act::None);
  y = b.layernorm("neck.3", y, neck3_g_, neck3_b_, neck_eps_);
  const int nchw = b.permute(y, {0, 3, 1, 2});
  for (const char* name : {"image_embeddings", "last_hidden_state", "embedding"}) b.output(name, nchw);
  return g;
}

std::map<std::string, std::string> SamFamily::hparams() const {
  std::string gl;
  for (int64_t i : global_) gl += (gl.empty() ? "" : ",") + std::to_string(i);
  return {
      {"architecture", "sam"},
      {"embedding_length", std::to_string(D_)},
      {"block_count", std::to_string(L_)},
      {"feed_forward_length", std::to_string(F_)},
      {"head_count", std::to_string(heads_)},
      {"patch_size", std::to_string(patch_)},
      {"image_size", std::to_string(image_size_)},
      {"num_channels", std::to_string(C_)},
      {"window_size", std::to_string(window_)},
      {"global_attn_indexes", gl},
      {"output_channels", std::to_string(out_ch_)},
      {"use_rel_pos", use_rel_pos_ ? "true" : "false"},
      {"use_abs_pos", use_abs_pos_ ? "true" : "false"},
      {"qkv_bias", qkv_bias_ ? "true" : "false"},
      {"pos_resize", pos_resize_name(pos_resize_)},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_sam_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<SamFamily>(f, w);
}

}  // namespace pyvitcpp
