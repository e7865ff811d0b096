// Darknet YOLO (general.architecture "darknet": YOLOv3, YOLOv3-tiny, YOLOv4-tiny, ...): the
// .cfg's layer list, stored by the converter as metadata arrays (one entry per layer,
// docs/GGUF_SCHEMA.md), interpreted here when a graph is built. Batch norm is folded into each
// conv by the converter. Maps are NHWC inside; `head.{i}` (the input of the i-th [yolo] layer)
// and `features.{k}` are NCHW as darknet and PyTorch write them.
//
// Layers: [convolutional] = one conv op with its bias/activation epilogue (and, when the next
// layer is a linear [shortcut] that nothing else reads this conv through, the residual add
// too: darknet's act(conv) + from is exactly the epilogue's order); [maxpool] = Pool2d with
// darknet's padding (padding = size - 1 in total by default, padding / 2 before the data;
// out-of-image taps are skipped, i.e. -inf); [upsample] = nearest; [route] = channel slices
// (groups / group_id) and a Concat; [shortcut] = Eltwise add + activation; [yolo] = an output.
#include <set>

#include "core/checked.h"
#include "graph/builder.h"
#include "kernels/conv.h"
#include "models/conv_weights.h"
#include "models/model.h"

namespace pyvitcpp {

namespace {

enum class LType { Conv, MaxPool, Upsample, Route, Shortcut, Yolo };

struct Layer {
  LType type = LType::Conv;
  int64_t size = 1, stride = 1, padding = 0, groups = 1, group_id = 0;
  Act act = Act::None;
  std::vector<int64_t> inputs;  // route: the layers it concatenates; shortcut: {i - 1, from}
  ConvW conv;
  int64_t out_c = 0;
  bool fuse_shortcut = false;  // conv: the next layer's shortcut add is this conv's epilogue
};

Act darknet_act(const std::string& path, size_t i, const std::string& name) {
  if (name == "leaky") return Act::LeakyRelu01;
  if (name == "linear") return Act::None;
  if (name == "mish") return Act::Mish;
  if (name == "logistic") return Act::Sigmoid;
  if (name == "relu") return Act::Relu;
  throw ModelError(path + ": layer " + std::to_string(i) + ": unsupported activation '" + name +
                   "' (leaky, linear, mish, logistic, relu)");
}

class DarknetFamily : public ModelFamily {
 public:
  DarknetFamily(const GGUFFile& f, WeightStore& w);
  std::string architecture() const override { return "darknet"; }
  std::vector<std::string> output_names() const override;
  int64_t num_channels() const override { return C_; }
  void check_input(int64_t C, int64_t H, int64_t W) const override;
  std::unique_ptr<Graph> build(int64_t B, int64_t H, int64_t W) const override;
  std::map<std::string, std::string> hparams() const override;

 private:
  std::string path_;
  int64_t C_ = 3, max_stride_ = 32;
  std::vector<Layer> layers_;
  std::vector<int64_t> heads_;           // index of each [yolo] layer
  std::vector<int64_t> feature_layers_;  // layers whose outputs are features.{k}
  ConvLoader convs_;
};

DarknetFamily::DarknetFamily(const GGUFFile& f, WeightStore& w) : path_(f.path()), convs_(w, f.path()) {
  try {
    C_ = f.has("darknet.num_channels") ? positive_hparam(f, "darknet.num_channels") : 3;
    const int64_t n = positive_hparam(f, "darknet.layer_count");
    const size_t N = static_cast<size_t>(n);
    const std::vector<std::string> types = f.get_str_array("darknet.layer_types");
    const std::vector<std::string> acts = f.get_str_array("darknet.activation");
    const std::vector<int64_t> size = f.get_int_array("darknet.size"), stride = f.get_int_array("darknet.stride"),
                               padding = f.get_int_array("darknet.padding"), groups = f.get_int_array("darknet.groups"),
                               group_id = f.get_int_array("darknet.group_id"), filters = f.get_int_array("darknet.filters"),
                               counts = f.get_int_array("darknet.input_counts");
    // Absent when no layer reads another one (GGUF arrays cannot be empty).
    const std::vector<int64_t> inputs =
        f.has("darknet.inputs") ? f.get_int_array("darknet.inputs") : std::vector<int64_t>{};
    auto check_len = [&](const char* key, size_t got) {
      if (got != N)
        throw ModelError(path_ + ": " + key + " has " + std::to_string(got) + " entries for " + std::to_string(n) +
                         " layers (darknet.layer_count)");
    };
    check_len("darknet.layer_types", types.size());
    check_len("darknet.activation", acts.size());
    check_len("darknet.size", size.size());
    check_len("darknet.stride", stride.size());
    check_len("darknet.padding", padding.size());
    check_len("darknet.groups", groups.size());
    check_len("darknet.group_id", group_id.size());
    check_len("darknet.filters", filters.size());
    check_len("darknet.input_counts", counts.size());
    size_t pos = 0;
    std::vector<int64_t> stride_of(N, 1);
    std::vector<int> readers(N, 0);  // how many later layers (or outputs) read each layer
    int64_t C = C_, total_stride = 1;
    for (size_t i = 0; i < N; ++i) {
      const std::string where = path_ + ": layer " + std::to_string(i) + " [" + types[i] + "]";
      Layer L;
      L.size = size[i];
      L.stride = stride[i];
      L.padding = padding[i];
      L.groups = groups[i];
      L.group_id = group_id[i];
      if (counts[i] < 0 || counts[i] > 64 || pos + static_cast<size_t>(counts[i]) > inputs.size())
        throw ModelError(where + ": darknet.input_counts / darknet.inputs are inconsistent");
      for (int64_t k = 0; k < counts[i]; ++k) {
        const int64_t j = inputs[pos++];
        if (j < 0 || static_cast<size_t>(j) >= i) throw ModelError(where + ": input layer " + std::to_string(j) + " is not an earlier layer");
        if (layers_[j].type == LType::Yolo) throw ModelError(where + ": reads a [yolo] layer's output");
        L.inputs.push_back(j);
      }
      const int64_t prev_c = i ? layers_[i - 1].out_c : C_;
      const int64_t prev_s = i ? stride_of[i - 1] : 1;
      if (i) ++readers[i - 1];
      const std::string& t = types[i];
      const bool windowed = t == "convolutional" || t == "maxpool";
      if ((windowed && (L.size < 1 || L.size > 64 || L.padding < 0 || L.padding > 64)) ||
          ((windowed || t == "upsample") && (L.stride < 1 || L.stride > 64)))
        throw ModelError(where + ": size, stride or padding out of range");
      int64_t out_s = prev_s;
      if (t == "convolutional") {
        L.type = LType::Conv;
        L.act = darknet_act(path_, i, acts[i]);
        const bool dw = L.groups != 1;
        if (dw && !(L.groups == prev_c && filters[i] == prev_c))
          throw ModelError(where + ": groups=" + std::to_string(L.groups) + " (only 1, or depthwise)");
        L.conv = convs_.load("layer." + std::to_string(i), prev_c, L.stride, dw);
        if (L.conv.k != L.size) throw ModelError(where + ": tensor 'layer." + std::to_string(i) + ".weight' is " +
                                                 std::to_string(L.conv.k) + "x" + std::to_string(L.conv.k) +
                                                 ", darknet.size says " + std::to_string(L.size));
        L.out_c = L.conv.OC;
        out_s = prev_s * L.stride;
      } else if (t == "maxpool") {
        L.type = LType::MaxPool;
        L.out_c = prev_c;
        out_s = prev_s * L.stride;
      } else if (t == "upsample") {
        L.type = LType::Upsample;
        L.out_c = prev_c;
        out_s = prev_s / L.stride > 0 ? prev_s / L.stride : 1;
      } else if (t == "route") {
        L.type = LType::Route;
        if (L.inputs.empty()) throw ModelError(where + ": no input layers");
        if (L.groups < 1 || L.group_id < 0 || L.group_id >= L.groups) throw ModelError(where + ": bad groups / group_id");
        for (int64_t j : L.inputs) {
          if (layers_[j].out_c % L.groups) throw ModelError(where + ": layer " + std::to_string(j) + "'s channels are not divisible by groups");
          if (stride_of[j] != stride_of[L.inputs[0]]) throw ModelError(where + ": concatenates maps of different strides");
          L.out_c += layers_[j].out_c / L.groups;
          ++readers[j];
        }
        --readers[i - 1];  // a route does not read the previous layer unless it names it
        out_s = stride_of[L.inputs[0]];
      } else if (t == "shortcut") {
        L.type = LType::Shortcut;
        L.act = darknet_act(path_, i, acts[i]);
        if (L.inputs.size() != 2 || L.inputs[0] != static_cast<int64_t>(i) - 1)
          throw ModelError(where + ": darknet.inputs must be {i - 1, from}");
        const int64_t j = L.inputs[1];
        if (layers_[j].out_c != prev_c || stride_of[j] != prev_s) throw ModelError(where + ": adds maps of different shapes");
        ++readers[j];
        L.out_c = prev_c;
      } else if (t == "yolo") {
        L.type = LType::Yolo;
        if (i == 0) throw ModelError(where + ": a [yolo] layer cannot come first");
        L.out_c = prev_c;
        heads_.push_back(static_cast<int64_t>(i));
      } else {
        throw ModelError(where + ": unsupported layer type (convolutional, maxpool, upsample, route, shortcut, yolo)");
      }
      stride_of[i] = out_s;
      total_stride = std::max(total_stride, out_s);
      C = L.out_c;
      layers_.push_back(std::move(L));
    }
    (void)C;
    if (pos != inputs.size()) throw ModelError(path_ + ": darknet.inputs has entries no layer uses");
    if (heads_.empty()) throw ModelError(path_ + ": no [yolo] layer");
    if (f.has("darknet.feature_layers")) feature_layers_ = f.get_int_array("darknet.feature_layers");
    for (int64_t k : feature_layers_) {
      if (k < 0 || k >= n || layers_[k].type == LType::Yolo)
        throw ModelError(path_ + ": darknet.feature_layers entry " + std::to_string(k) + " is not a map layer");
      ++readers[k];
    }
    for (int64_t h : heads_) ++readers[h - 1];
    max_stride_ = f.has("darknet.max_stride") ? positive_hparam(f, "darknet.max_stride") : total_stride;
    if (max_stride_ < total_stride) throw ModelError(path_ + ": darknet.max_stride is smaller than the layers' total stride");
    // A conv read only by the next layer, a shortcut with a linear activation, takes the add into
    // its epilogue (act(conv + b) + from).
    for (size_t i = 0; i + 1 < N; ++i) {
      const Layer& nx = layers_[i + 1];
      Layer& L = layers_[i];
      if (L.type == LType::Conv && !L.conv.dw && nx.type == LType::Shortcut && nx.act == Act::None &&
          readers[i] == 1 && nx.inputs[1] != static_cast<int64_t>(i))
        L.fuse_shortcut = true;
    }
  } catch (const GGUFError& e) {
    throw ModelError(std::string("invalid darknet hyper-parameters: ") + e.what());
  }
}

std::vector<std::string> DarknetFamily::output_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < heads_.size(); ++i) names.push_back("head." + std::to_string(i));
  for (size_t k = 0; k < feature_layers_.size(); ++k) names.push_back("features." + std::to_string(k));
  return names;
}

void DarknetFamily::check_input(int64_t C, int64_t H, int64_t W) const {
  if (C != C_)
    throw ModelError("this model takes " + std::to_string(C_) + "-channel images, got " + std::to_string(C) + " channels");
  if (H < max_stride_ || W < max_stride_ || H > 16384 || W > 16384 || H % max_stride_ || W % max_stride_)
    throw ModelError("image size " + std::to_string(H) + "x" + std::to_string(W) +
                     " does not suit this darknet model: each side must be a multiple of its stride " +
                     std::to_string(max_stride_) + ", at most 16384");
}

std::unique_ptr<Graph> DarknetFamily::build(int64_t B, int64_t H, int64_t W) const {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  const int px = b.input("pixels", {B, C_, H, W});
  auto to_nchw = [&](int x) { return b.permute(x, {0, 3, 1, 2}); };
  std::vector<int> out(layers_.size(), -1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    const std::string name = "layer." + std::to_string(i);
    if (L.type == LType::Route) {
      std::vector<int> parts;
      for (int64_t j : L.inputs) {
        int t = out[j];
        if (L.groups > 1) {
          const int64_t cg = layers_[j].out_c / L.groups;
          t = b.slice(t, 3, cg * L.group_id, cg * (L.group_id + 1));
        }
        parts.push_back(t);
      }
      out[i] = parts.size() == 1 ? parts[0] : b.concat(name, parts, 3);
      continue;
    }
    if (L.type == LType::Shortcut) {
      if (layers_[i - 1].fuse_shortcut) {
        out[i] = out[i - 1];
      } else {
        const int s = b.add(name, out[i - 1], out[L.inputs[1]]);
        out[i] = L.act == Act::None ? s : b.activation(name + ".act", s, L.act);
      }
      continue;
    }
    if (L.type == LType::Yolo) {
      out[i] = out[i - 1];
      continue;
    }
    const bool first = i == 0;
    int x = first ? px : out[i - 1];
    if (first && L.type != LType::Conv) x = b.contiguous(b.permute(px, {0, 2, 3, 1}));
    const bool nchw = first && L.type == LType::Conv;
    const std::vector<int64_t> s = b.shape(x);
    const int64_t h = nchw ? s[2] : s[1], w = nchw ? s[3] : s[2];
    if (L.type == LType::Conv) {
      const ConvAxis ah = conv_axis_sym(h, L.size, L.stride, 1, L.padding);
      const ConvAxis aw = conv_axis_sym(w, L.size, L.stride, 1, L.padding);
      if (ah.out < 1 || aw.out < 1) throw ModelError(name + ": the map is too small for this conv");
      if (L.conv.dw) {
        out[i] = b.dwconv2d(name, x, L.conv.dw, L.conv.dw_b, ah, aw, L.act);
      } else {
        const int res = L.fuse_shortcut ? out[layers_[i + 1].inputs[1]] : -1;
        out[i] = b.conv2d(name, x, L.conv.lin, ah, aw, L.act, res, nchw);
      }
    } else if (L.type == LType::MaxPool) {
      auto axis = [&](int64_t in) {
        ConvAxis a;
        a.in = in;
        a.k = L.size;
        a.stride = L.stride;
        a.pad0 = L.padding / 2;
        a.out = (in + L.padding - L.size) / L.stride + 1;
        return a;
      };
      const ConvAxis ah = axis(h), aw = axis(w);
      if (ah.out < 1 || aw.out < 1) throw ModelError(name + ": the map is too small for this maxpool");
      out[i] = b.pool2d(name, x, PoolKind::Max, ah, aw);
    } else {  // upsample
      out[i] = b.upsample_nearest(name, x, L.stride);
    }
  }
  for (size_t k = 0; k < heads_.size(); ++k) b.output("head." + std::to_string(k), to_nchw(out[heads_[k] - 1]));
  for (size_t k = 0; k < feature_layers_.size(); ++k)
    b.output("features." + std::to_string(k), to_nchw(out[feature_layers_[k]]));
  return g;
}

std::map<std::string, std::string> DarknetFamily::hparams() const {
  return {
      {"architecture", "darknet"},
      {"num_channels", std::to_string(C_)},
      {"layer_count", std::to_string(layers_.size())},
      {"num_heads", std::to_string(heads_.size())},
      {"max_stride", std::to_string(max_stride_)},
  };
}

}  // namespace

std::unique_ptr<ModelFamily> make_darknet_family(const GGUFFile& f, WeightStore& w) {
  return std::make_unique<DarknetFamily>(f, w);
}

}  // namespace pyvitcpp
