#include "quant/requantize.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <cerrno>
#include <atomic>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "core/fp16.h"
#include "io/gguf.h"
#include "quant/quantize.h"

namespace pyvitcpp {

namespace {

// ggml's LLAMA_FTYPE ids for the general.file_type key.
uint32_t file_type_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    default: return 0;
  }
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// The writer's rule (pyvitcpp/convert/writer.py): embeddings and SAM's rel-pos tables are added
// to activations or scores directly.
bool keeps_f32_by_name(const std::string& n) {
  return n.find("position_embd") != std::string::npos || n.find("class_embd") != std::string::npos ||
         n.find("dist_embd") != std::string::npos || ends_with(n, ".attn_rel_h") || ends_with(n, ".attn_rel_w");
}

// SAM's prompt encoder / mask decoder, kept for a later decoder: never block-quantized.
bool never_quantized_by_name(const std::string& n) {
  return n.rfind("sam.pe.", 0) == 0 || n.rfind("sam.md.", 0) == 0 || n.rfind("sam.shared_pe.", 0) == 0;
}

class Out {
 public:
  // Creates `path`, which must not exist yet (O_EXCL: a temporary name of our own).
  explicit Out(const std::string& path) : path_(path) {
#ifdef _WIN32
    f_ = std::fopen(path.c_str(), "wbx");
#else
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    f_ = fd < 0 ? nullptr : ::fdopen(fd, "wb");
    if (fd >= 0 && !f_) ::close(fd);
#endif
    if (!f_) throw std::system_error(errno, std::generic_category(), "cannot write " + path);
  }
  ~Out() { if (f_) std::fclose(f_); }
  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) throw std::system_error(errno, std::generic_category(), "write failed: " + path_);
    pos_ += n;
  }
  template <typename T> void pod(T v) { bytes(&v, sizeof v); }
  void str(const std::string& s) { pod<uint64_t>(s.size()); bytes(s.data(), s.size()); }
  void pad_to(uint64_t align) {
    static const char zeros[256] = {};
    while (pos_ % align) bytes(zeros, std::min<uint64_t>(align - pos_ % align, sizeof zeros));
  }
  void close() {
    if (std::fclose(f_) != 0) { f_ = nullptr; throw std::system_error(errno, std::generic_category(), "close failed: " + path_); }
    f_ = nullptr;
  }
  uint64_t pos() const { return pos_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
};

void write_scalar(Out& o, GGUFType t, int64_t i, uint64_t u, double f) {
  switch (t) {
    case GGUFType::UINT8: o.pod<uint8_t>(static_cast<uint8_t>(u)); break;
    case GGUFType::INT8: o.pod<int8_t>(static_cast<int8_t>(i)); break;
    case GGUFType::UINT16: o.pod<uint16_t>(static_cast<uint16_t>(u)); break;
    case GGUFType::INT16: o.pod<int16_t>(static_cast<int16_t>(i)); break;
    case GGUFType::UINT32: o.pod<uint32_t>(static_cast<uint32_t>(u)); break;
    case GGUFType::INT32: o.pod<int32_t>(static_cast<int32_t>(i)); break;
    case GGUFType::UINT64: o.pod<uint64_t>(u); break;
    case GGUFType::INT64: o.pod<int64_t>(i); break;
    case GGUFType::FLOAT32: o.pod<float>(static_cast<float>(f)); break;
    case GGUFType::FLOAT64: o.pod<double>(f); break;
    case GGUFType::BOOL: o.pod<uint8_t>(static_cast<uint8_t>(i != 0)); break;
    default: throw std::logic_error("write_scalar: not a scalar type");
  }
}

void write_array_body(Out& o, const GGUFValue& v) {
  o.pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
  switch (v.elem_type) {
    case GGUFType::STRING:
      o.pod<uint64_t>(v.arr_s.size());
      for (const auto& s : v.arr_s) o.str(s);
      break;
    case GGUFType::ARRAY:
      o.pod<uint64_t>(v.arr_arr.size());
      for (const auto& a : v.arr_arr) write_array_body(o, a);
      break;
    case GGUFType::FLOAT32: case GGUFType::FLOAT64:
      o.pod<uint64_t>(v.arr_f.size());
      for (double f : v.arr_f) write_scalar(o, v.elem_type, 0, 0, f);
      break;
    default:
      o.pod<uint64_t>(v.arr_i.size());
      for (size_t k = 0; k < v.arr_i.size(); ++k) {
        const int64_t i = v.arr_i[k];
        const uint64_t u = v.elem_type == GGUFType::UINT64 ? v.arr_u[k] : static_cast<uint64_t>(i);
        write_scalar(o, v.elem_type, i, u, 0.0);
      }
  }
}

void write_kv(Out& o, const std::string& key, const GGUFValue& v) {
  o.str(key);
  o.pod<uint32_t>(static_cast<uint32_t>(v.type));
  if (v.type == GGUFType::STRING) o.str(v.s);
  else if (v.type == GGUFType::ARRAY) write_array_body(o, v);
  else write_scalar(o, v.type, v.i, v.type == GGUFType::INT8 || v.type == GGUFType::INT16 || v.type == GGUFType::INT32 ||
                                         v.type == GGUFType::INT64 ? static_cast<uint64_t>(v.i) : v.u, v.f);
}

int64_t tensor_rows(const GGUFTensorInfo& t) {
  int64_t rows = 1;
  for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];  // checked at open
  return rows;
}

}  // namespace

RequantDecision requant_decision(const std::string& name, const std::vector<int64_t>& ne, uint32_t from, DType target) {
  RequantDecision d;
  d.name = name;
  d.from = from;
  d.to = from;
  const bool floaty = from == static_cast<uint32_t>(DType::F32) || from == static_cast<uint32_t>(DType::F16);
  if (!floaty) d.why = "kept: source type " + dtype_name(from) + " is not f32/f16";
  else if (ne.size() < 2) d.why = "kept: 1-D";
  else if (keeps_f32_by_name(name)) d.why = "kept: embedding added to activations";
  else if (target == DType::F32 || target == DType::F16) d.to = static_cast<uint32_t>(target);
  else if (never_quantized_by_name(name)) {
    d.to = static_cast<uint32_t>(DType::F16);
    d.why = "f16: SAM decoder tensor, kept for a later decoder";
  } else if (ne[0] % 32 != 0) {
    d.to = static_cast<uint32_t>(DType::F16);
    d.why = "f16 fallback: rows of " + std::to_string(ne[0]) + " are not a multiple of 32";
  } else {
    d.to = static_cast<uint32_t>(target);
  }
  return d;
}

std::vector<RequantDecision> requantize_file(const std::string& src, const std::string& dst, DType target, int nthreads) {
  auto in = GGUFFile::open(src);
  std::vector<RequantDecision> plan;
  for (const auto& t : in->tensors()) {
    plan.push_back(requant_decision(t.name, t.ne, t.type, target));
    RequantDecision& d = plan.back();
    if (!is_block_quant(static_cast<DType>(d.to)) || d.to == t.type) continue;
    // A block scale of Inf/NaN would poison every weight of its block: such matrices keep F16
    // (as the converter does).
    bool finite = true;
    for (int64_t i = 0; i < t.nelements() && finite; ++i) {
      float v;
      if (t.type == static_cast<uint32_t>(DType::F32)) {
        std::memcpy(&v, t.data + 4 * i, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        v = fp16_to_fp32(h);
      }
      finite = std::isfinite(v);
    }
    if (!finite) {
      d.to = static_cast<uint32_t>(DType::F16);
      d.why = "f16 fallback: non-finite values";
    }
  }
  const uint64_t align = in->alignment();

  // The output is written under a temporary name of its own in the same folder and renamed
  // over dst only when complete: a model open elsewhere (memory-mapped) is never truncated
  // under its reader, a failure leaves no partial file, and an existing dst stays intact.
  static std::atomic<unsigned> serial{0};
#ifdef _WIN32
  const long pid = 0;
#else
  const long pid = static_cast<long>(::getpid());
#endif
  const std::string tmp = dst + ".tmp-" + std::to_string(pid) + "-" + std::to_string(serial.fetch_add(1));
  try {
#ifndef _WIN32
    // Renaming a file over a directory or a device would fail only at the end; say so first.
    struct stat st;
    if (::stat(dst.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw std::system_error(S_ISDIR(st.st_mode) ? EISDIR : EINVAL, std::generic_category(),
                              "cannot write " + dst + ": not a regular file");
#endif
    Out o(tmp);
    o.bytes("GGUF", 4);
    o.pod<uint32_t>(3);
    o.pod<uint64_t>(in->tensors().size());
    const bool has_ft = in->has("general.file_type");
    o.pod<uint64_t>(in->metadata().size() + (has_ft ? 0 : 1));
    GGUFValue ft;
    ft.type = GGUFType::UINT32;
    ft.u = file_type_id(target);
    ft.i = static_cast<int64_t>(ft.u);
    for (const auto& kv : in->metadata()) {
      if (kv.first == "general.file_type") write_kv(o, kv.first, ft);
      else write_kv(o, kv.first, kv.second);
    }
    if (!has_ft) write_kv(o, "general.file_type", ft);
    // Tensor infos with offsets of the new sizes.
    std::vector<size_t> nbytes(plan.size());
    uint64_t off = 0;
    for (size_t k = 0; k < plan.size(); ++k) {
      const GGUFTensorInfo& t = in->tensors()[k];
      size_t rb = 0;
      if (!row_bytes(plan[k].to, t.ne[0], &rb)) throw std::logic_error("row size of " + t.name);
      // Rows from the outer dims, not nelements / ne[0]: ne[0] may be 0 (an empty tensor).
      // The reader checked this product (and the byte size) at open.
      nbytes[k] = rb * static_cast<size_t>(tensor_rows(t));
      o.str(t.name);
      o.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (int64_t d : t.ne) o.pod<uint64_t>(static_cast<uint64_t>(d));
      o.pod<uint32_t>(plan[k].to);
      o.pod<uint64_t>(off);
      off += (nbytes[k] + align - 1) / align * align;
    }
    o.pad_to(align);
    std::vector<float> f32;
    std::vector<uint8_t> buf;
    for (size_t k = 0; k < plan.size(); ++k) {
      const GGUFTensorInfo& t = in->tensors()[k];
      if (plan[k].to == t.type) {
        o.bytes(t.data, t.nbytes);
      } else {
        const int64_t n = t.nelements(), cols = t.ne[0], rows = tensor_rows(t);
        f32.resize(static_cast<size_t>(n));
        // (n == 0 is a valid empty tensor: f32.data() may then be null, which memcpy must not get)
        if (t.type == static_cast<uint32_t>(DType::F32)) {
          if (n > 0) std::memcpy(f32.data(), t.data, t.nbytes);
        } else {
          const uint16_t* h = reinterpret_cast<const uint16_t*>(t.data);
          for (int64_t i = 0; i < n; ++i) f32[i] = fp16_to_fp32(h[i]);
        }
        buf.resize(nbytes[k]);
        if (plan[k].to == static_cast<uint32_t>(DType::F16)) {
          uint16_t* h = reinterpret_cast<uint16_t*>(buf.data());
          for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(f32[i]);
        } else if (plan[k].to == static_cast<uint32_t>(DType::F32)) {
          if (n > 0) std::memcpy(buf.data(), f32.data(), nbytes[k]);
        } else {
          quantize_rows(static_cast<DType>(plan[k].to), f32.data(), rows, cols, buf.data(), nthreads);
        }
        o.bytes(buf.data(), buf.size());
      }
      o.pad_to(align);
    }
    o.close();
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), dst.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::system_error(errno, std::generic_category(), "cannot rename " + tmp + " to " + dst);
  }
  return plan;
}

}  // namespace pyvitcpp
