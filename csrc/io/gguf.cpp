// GGUF v2/v3 reader.
//
// The file is mapped read-only and parsed front to back by a bounded cursor. Every read checks
// the bytes left first, and every count (keys, tensors, array and string lengths) is checked
// against the bytes left *before* anything is allocated for it, so a corrupt or hostile file
// costs memory proportional to its size at most and always ends in a GGUFError, never a crash
// or a giant allocation. Values are decoded byte by byte (little-endian), so the parser does
// not depend on the host's byte order or on the alignment of fields in the file.
#include "io/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

#include "core/dtype.h"

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace pyvitcpp {

namespace {

constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;  // magic, version, n_tensors, n_kv
// Arrays under a key count as level 1; deeper nesting is never used by real files, and the
// limit keeps the recursion (and a "depth bomb") bounded.
constexpr int kMaxArrayDepth = 4;
// Smallest possible encodings, used to reject counts that cannot fit in the bytes left.
constexpr uint64_t kMinKVBytes = 8 + 4 + 1;                  // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, 1 dim, type, offset
constexpr uint64_t kMinArrayHeaderBytes = 4 + 8;             // element type, length
constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool is_valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GGUFType::FLOAT64); }

bool is_integer_type(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::UINT16: case GGUFType::INT16:
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::UINT64: case GGUFType::INT64:
      return true;
    default:
      return false;
  }
}

bool is_float_type(GGUFType t) { return t == GGUFType::FLOAT32 || t == GGUFType::FLOAT64; }

// Encoded size of a fixed-size value; 0 for STRING and ARRAY.
uint64_t scalar_size(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
    case GGUFType::UINT16: case GGUFType::INT16: return 2;
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
    case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
    default: return 0;
  }
}

uint64_t load_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

// Names from a corrupt file can be megabytes of binary, and an error message must be valid
// UTF-8 (Python decodes it); keep messages short, printable and decodable.
bool is_valid_utf8(const std::string& s);

std::string printable(const std::string& s, size_t max_len = 96) {
  static const char* hex = "0123456789abcdef";
  const bool utf8 = is_valid_utf8(s);
  size_t cut = std::min(s.size(), max_len);
  if (utf8)  // do not split a multi-byte character
    while (cut < s.size() && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  for (size_t k = 0; k < cut; ++k) {
    unsigned char c = static_cast<unsigned char>(s[k]);
    if (c < 0x20 || c == 0x7f || c == '\\' || (c >= 0x80 && !utf8)) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (cut < s.size()) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string message_path(const std::string& path) { return printable(path, path.size()); }

std::string quoted(const std::string& s) { return "'" + printable(s) + "'"; }

std::string hex32(uint32_t v) {
  static const char* hex = "0123456789abcdef";
  std::string s(8, '0');
  for (int k = 7; k >= 0; --k, v >>= 4) s[static_cast<size_t>(k)] = hex[v & 15];
  return s;
}

bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), k = 0;
  while (k < n) {
    unsigned char c = p[k];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++k; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - k < len) return false;
    for (size_t j = 1; j < len; ++j) {
      if ((p[k + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[k + j] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
      return false;
    k += len;
  }
  return true;
}

// a * b, false if the product exceeds limit.
bool mul_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return true;
}

std::string dims_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t k = 0; k < ne.size(); ++k) s += (k ? ", " : "") + std::to_string(ne[k]);
  return s + "]";
}

std::string range_str(uint64_t begin, uint64_t nbytes) {
  std::string end = nbytes <= std::numeric_limits<uint64_t>::max() - begin
                        ? std::to_string(begin + nbytes)
                        : std::to_string(begin) + " + " + std::to_string(nbytes);
  return "[" + std::to_string(begin) + ", " + end + ")";
}

}  // namespace

const char* gguf_type_name(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: return "uint8";
    case GGUFType::INT8: return "int8";
    case GGUFType::UINT16: return "uint16";
    case GGUFType::INT16: return "int16";
    case GGUFType::UINT32: return "uint32";
    case GGUFType::INT32: return "int32";
    case GGUFType::FLOAT32: return "float32";
    case GGUFType::BOOL: return "bool";
    case GGUFType::STRING: return "string";
    case GGUFType::ARRAY: return "array";
    case GGUFType::UINT64: return "uint64";
    case GGUFType::INT64: return "int64";
    case GGUFType::FLOAT64: return "float64";
  }
  return "unknown";
}

std::string gguf_value_type_desc(const GGUFValue& v) {
  if (v.type != GGUFType::ARRAY) return gguf_type_name(v.type);
  if (v.elem_type != GGUFType::ARRAY) return std::string("array[") + gguf_type_name(v.elem_type) + "]";
  // Nested: describe the first sub-array (they may differ; the first one is representative).
  if (!v.arr_arr.empty()) return "array[" + gguf_value_type_desc(v.arr_arr.front()) + "]";
  return "array[array]";
}

bool GGUFValue::is_int() const { return is_integer_type(type) || type == GGUFType::BOOL; }
bool GGUFValue::is_float() const { return is_float_type(type); }

int64_t GGUFTensorInfo::nelements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // validated at open: no partial product overflows
  return n;
}

// ---------------------------------------------------------------------------------------------
// Parser

class GGUFParser {
 public:
  explicit GGUFParser(GGUFFile& f) : f_(f), base_(f.base_), size_(f.size_) {}
  void parse();

 private:
  [[noreturn]] void fail(uint64_t at, const std::string& what) const {
    throw GGUFError(message_path(f_.path_) + ": " + what + " (at byte offset " + std::to_string(at) + ")");
  }
  uint64_t left() const { return size_ - pos_; }
  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      fail(pos_, "file truncated: reading " + what + " needs " + std::to_string(n) + " bytes, only " +
                     std::to_string(left()) + " left");
  }
  uint64_t read_uint(int n, const std::string& what) {
    need(static_cast<uint64_t>(n), what);
    uint64_t v = load_le(base_ + pos_, n);
    pos_ += static_cast<uint64_t>(n);
    return v;
  }
  uint32_t u32(const std::string& what) { return static_cast<uint32_t>(read_uint(4, what)); }
  uint64_t u64(const std::string& what) { return read_uint(8, what); }
  std::string str(const std::string& what);
  GGUFType value_type(const std::string& what);
  void value(GGUFType t, GGUFValue& v, int depth, const std::string& key);
  void scalar_into(GGUFType t, GGUFValue& v, const std::string& key);
  void array_into(GGUFValue& v, int depth, const std::string& key);
  void parse_header(uint64_t* n_tensors, uint64_t* n_kv);
  void parse_metadata(uint64_t n_kv);
  void parse_tensor_infos(uint64_t n_tensors, std::vector<uint64_t>* info_at);
  void place_tensors(const std::vector<uint64_t>& info_at);

  GGUFFile& f_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

std::string GGUFParser::str(const std::string& what) {
  const uint64_t at = pos_;
  const uint64_t n = u64(what + " length");
  if (n > left())
    fail(at, what + ": string length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
                 " bytes left in the file");
  std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(n));
  pos_ += n;
  return s;
}

GGUFType GGUFParser::value_type(const std::string& what) {
  const uint64_t at = pos_;
  const uint32_t t = u32(what);
  if (!is_valid_type(t)) fail(at, what + ": unknown GGUF value type " + std::to_string(t));
  return static_cast<GGUFType>(t);
}

void GGUFParser::scalar_into(GGUFType t, GGUFValue& v, const std::string& key) {
  const uint64_t at = pos_;
  const std::string what = "value of metadata key " + quoted(key);
  switch (t) {
    case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64: {
      v.u = read_uint(static_cast<int>(scalar_size(t)), what);
      v.i = v.u <= kMaxInt64 ? static_cast<int64_t>(v.u) : 0;  // get_int refuses the latter
      break;
    }
    case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64: {
      const int n = static_cast<int>(scalar_size(t));
      uint64_t raw = read_uint(n, what);
      if (n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);  // sign-extend
      std::memcpy(&v.i, &raw, sizeof raw);
      if (v.i >= 0) v.u = static_cast<uint64_t>(v.i);
      break;
    }
    case GGUFType::BOOL: {
      const uint64_t b = read_uint(1, what);
      // Any other byte means the file is not what it claims; refusing it beats guessing.
      if (b > 1) fail(at, what + ": bool byte is " + std::to_string(b) + ", must be 0 or 1");
      v.i = static_cast<int64_t>(b);
      v.u = b;
      break;
    }
    case GGUFType::FLOAT32: {
      const uint32_t raw = static_cast<uint32_t>(read_uint(4, what));
      float x;
      std::memcpy(&x, &raw, sizeof x);
      v.f = x;
      break;
    }
    case GGUFType::FLOAT64: {
      const uint64_t raw = read_uint(8, what);
      std::memcpy(&v.f, &raw, sizeof raw);
      break;
    }
    case GGUFType::STRING:
      v.s = str(what);
      break;
    case GGUFType::ARRAY:
      break;  // handled by array_into
  }
}

void GGUFParser::array_into(GGUFValue& v, int depth, const std::string& key) {
  const uint64_t at = pos_;
  const std::string what = "array of metadata key " + quoted(key);
  if (depth + 1 > kMaxArrayDepth)
    fail(at, what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
  const GGUFType elem = value_type(what + " element type");
  const uint64_t len_at = pos_;
  const uint64_t n = u64(what + " length");
  const uint64_t min_elem = elem == GGUFType::STRING ? 8 : elem == GGUFType::ARRAY ? kMinArrayHeaderBytes
                                                                                     : scalar_size(elem);
  if (n > left() / min_elem)
    fail(len_at, what + ": array length " + std::to_string(n) + " of " + gguf_type_name(elem) +
                     " cannot fit in the " + std::to_string(left()) + " bytes left in the file");
  v.elem_type = elem;
  const size_t count = static_cast<size_t>(n);  // n <= file size, so it fits
  GGUFValue tmp;
  if (elem == GGUFType::STRING) {
    v.arr_s.reserve(count);
    for (size_t k = 0; k < count; ++k) v.arr_s.push_back(str(what + " element " + std::to_string(k)));
  } else if (elem == GGUFType::ARRAY) {
    v.arr_arr.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      GGUFValue sub;
      sub.type = GGUFType::ARRAY;
      array_into(sub, depth + 1, key);
      v.arr_arr.push_back(std::move(sub));
    }
  } else if (is_float_type(elem)) {
    v.arr_f.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      scalar_into(elem, tmp, key);
      v.arr_f.push_back(tmp.f);
    }
  } else {
    v.arr_i.reserve(count);
    if (elem == GGUFType::UINT64) v.arr_u.reserve(count);
    for (size_t k = 0; k < count; ++k) {
      scalar_into(elem, tmp, key);
      v.arr_i.push_back(tmp.i);
      if (elem == GGUFType::UINT64) v.arr_u.push_back(tmp.u);
    }
  }
}

void GGUFParser::value(GGUFType t, GGUFValue& v, int depth, const std::string& key) {
  v.type = t;
  if (t == GGUFType::ARRAY)
    array_into(v, depth, key);
  else
    scalar_into(t, v, key);
}

void GGUFParser::parse_header(uint64_t* n_tensors, uint64_t* n_kv) {
  if (size_ == 0) fail(0, "file is empty (0 bytes), too small to be GGUF");
  static const uint8_t kMagic[4] = {'G', 'G', 'U', 'F'};
  const size_t m = static_cast<size_t>(std::min<uint64_t>(size_, 4));
  if (std::memcmp(base_, kMagic, m) != 0) {
    const std::string got(reinterpret_cast<const char*>(base_), m);
    std::string hint;
    if (size_ >= 4) {
      const std::string magic(reinterpret_cast<const char*>(base_), 4);
      // Pre-GGUF llama.cpp formats (ggml, ggmf, ggjt, ggla) store their magic as a uint32.
      if (magic == "lmgg" || magic == "fmgg" || magic == "tjgg" || magic == "algg")
        hint = "; this is a legacy GGML-era file, convert it to GGUF first";
    }
    fail(0, "bad magic \"" + printable(got) + "\", expected \"GGUF\": not a GGUF file" + hint);
  }
  if (size_ < kHeaderBytes)
    fail(size_, "file is too small to be GGUF (" + std::to_string(size_) + " bytes; the header alone needs " +
                    std::to_string(kHeaderBytes) + ")");
  pos_ = 4;
  const uint32_t version = u32("version");
  if (version == 1)
    fail(4, "GGUF version 1 is not supported (only versions 2 and 3); re-convert the file with a current tool");
  if (version != 2 && version != 3) {
    const uint32_t swapped = ((version & 0xFFu) << 24) | ((version & 0xFF00u) << 8) |
                             ((version >> 8) & 0xFF00u) | (version >> 24);
    if (swapped >= 1 && swapped <= 3)
      fail(4, "version field reads " + std::to_string(version) + " (0x" + hex32(version) +
                  "): this looks like a big-endian GGUF file; only little-endian files are supported");
    fail(4, "unsupported GGUF version " + std::to_string(version) + " (supported: 2, 3)");
  }
  f_.version_ = version;
  *n_tensors = u64("tensor count");
  *n_kv = u64("metadata key/value count");
  // Cheap early bounds; the tensor count is checked again once the metadata is consumed.
  if (*n_kv > left() / kMinKVBytes)
    fail(16, "metadata key/value count " + std::to_string(*n_kv) + " cannot fit in the " +
                 std::to_string(left()) + " bytes left in the file");
  if (*n_tensors > left() / kMinTensorInfoBytes)
    fail(8, "tensor count " + std::to_string(*n_tensors) + " cannot fit in the " + std::to_string(left()) +
                " bytes left in the file");
}

void GGUFParser::parse_metadata(uint64_t n_kv) {
  uint64_t alignment_at = 0;
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t at = pos_;
    std::string key = str("key of metadata entry " + std::to_string(k));
    if (!is_valid_utf8(key)) fail(at, "metadata key " + quoted(key) + " is not valid UTF-8");
    if (f_.kv_index_.count(key)) fail(at, "duplicate metadata key " + quoted(key));
    const GGUFType t = value_type("type of metadata key " + quoted(key));
    GGUFValue v;
    value(t, v, 0, key);
    if (key == "general.alignment") alignment_at = at;
    f_.kv_index_.emplace(key, f_.kv_.size());
    f_.kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GGUFValue* a = f_.find("general.alignment")) {
    if (a->type != GGUFType::UINT32)
      fail(alignment_at, "general.alignment has type " + gguf_value_type_desc(*a) + ", must be uint32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail(alignment_at, "general.alignment " + std::to_string(a->u) + " is not a nonzero power of two");
    f_.alignment_ = a->u;
  }
}

void GGUFParser::parse_tensor_infos(uint64_t n_tensors, std::vector<uint64_t>* info_at) {
  if (n_tensors > left() / kMinTensorInfoBytes)
    fail(8, "tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(left()) +
                " bytes left after the metadata");
  f_.tensors_.reserve(static_cast<size_t>(n_tensors));
  info_at->reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const uint64_t at = pos_;
    GGUFTensorInfo ti;
    ti.name = str("name of tensor " + std::to_string(k));
    if (!is_valid_utf8(ti.name)) fail(at, "tensor name " + quoted(ti.name) + " is not valid UTF-8");
    if (f_.tensor_index_.count(ti.name)) fail(at, "duplicate tensor name " + quoted(ti.name));
    const std::string what = "tensor " + quoted(ti.name);
    const uint64_t dims_at = pos_;
    const uint32_t n_dims = u32(what + " n_dims");
    if (n_dims < 1 || n_dims > 4)
      fail(dims_at, what + " has n_dims " + std::to_string(n_dims) + "; must be 1 to 4");
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne_at = pos_;
      const uint64_t ne = u64(what + " dimension " + std::to_string(d));
      if (ne > kMaxInt64)
        fail(ne_at, what + " dimension " + std::to_string(d) + " is " + std::to_string(ne) +
                        ", more than INT64_MAX (negative as int64)");
      ti.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint64_t type_at = pos_;
    ti.type = u32(what + " type");
    if (!dtype_traits(ti.type).known)
      fail(type_at, what + " has unknown type id " + std::to_string(ti.type) +
                        " (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0)");
    ti.offset = u64(what + " data offset");
    f_.tensor_index_.emplace(ti.name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(ti));
    info_at->push_back(at);
  }
}

void GGUFParser::place_tensors(const std::vector<uint64_t>& info_at) {
  const uint64_t align = f_.alignment_;
  // pos_ <= size_ and align <= 2^32, so this cannot wrap.
  const uint64_t data_start = (pos_ + align - 1) / align * align;
  f_.data_offset_ = data_start;

  struct Extent {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Extent> extents;
  for (size_t k = 0; k < f_.tensors_.size(); ++k) {
    GGUFTensorInfo& ti = f_.tensors_[k];
    const uint64_t at = info_at[k];
    const std::string what = "tensor " + quoted(ti.name);
    const DTypeTraits tr = dtype_traits(ti.type);

    // Every partial product of the dims must fit in int64 too (nelements() and the models
    // multiply them in their own order, and a zero dim would otherwise hide absurd others:
    // [9, 2^60, 0] has 0 elements but 9 * 2^60 overflows): the non-zero dims' product bounds them.
    uint64_t nonzero = 1;
    for (int64_t d : ti.ne)
      if (d != 0 && !mul_within(nonzero, static_cast<uint64_t>(d), kMaxInt64, &nonzero))
        fail(at, what + " dims " + dims_str(ti.ne) + ": element count overflows int64");
    // Rows first, then the whole: a zero ne[0] must not hide absurd outer dimensions.
    uint64_t rows = 1;
    for (size_t d = 1; d < ti.ne.size(); ++d)
      if (!mul_within(rows, static_cast<uint64_t>(ti.ne[d]), kMaxInt64, &rows))
        fail(at, what + " dims " + dims_str(ti.ne) + ": element count overflows int64");
    uint64_t nel;
    if (!mul_within(rows, static_cast<uint64_t>(ti.ne[0]), kMaxInt64, &nel))
      fail(at, what + " dims " + dims_str(ti.ne) + ": element count overflows int64");
    if (ti.ne[0] % tr.block_size != 0)
      fail(at, what + " row length ne[0] = " + std::to_string(ti.ne[0]) + " is not a multiple of the " +
                   tr.name + " block size " + std::to_string(tr.block_size));
    size_t row = 0;
    uint64_t nbytes = 0;
    if (!row_bytes(ti.type, ti.ne[0], &row) ||
        !mul_within(rows, row, std::numeric_limits<size_t>::max(), &nbytes))
      fail(at, what + " dims " + dims_str(ti.ne) + ": byte size overflows");

    if (ti.offset % align != 0)
      fail(at, what + " data offset " + std::to_string(ti.offset) + " is misaligned: not a multiple of the alignment " +
                   std::to_string(align));
    // The kernels read F32 through float*, and F16/BF16 and the blocks (whose scales are
    // halves) through uint16_t*: with a small general.alignment the data could start at an
    // address those types cannot be read from. The mapping / buffer itself is page / 64-byte
    // aligned, so the file offset decides.
    const uint64_t elem_align = ti.type == static_cast<uint32_t>(DType::F32) ? 4 : 2;
    if ((data_start + ti.offset) % elem_align != 0)
      fail(at, what + " data starts at file offset " + std::to_string(data_start + ti.offset) + ", misaligned for " +
                   tr.name + " (needs a multiple of " + std::to_string(elem_align) + ")");
    if (ti.offset > std::numeric_limits<uint64_t>::max() - data_start)
      fail(at, what + " data offset " + std::to_string(ti.offset) + " extends past end of file (size " +
                   std::to_string(size_) + ")");
    const uint64_t begin = data_start + ti.offset;
    if (begin > size_ || nbytes > size_ - begin)
      fail(at, what + " data " + range_str(begin, nbytes) + " extends past end of file (size " +
                   std::to_string(size_) + ")");
    ti.data = base_ + begin;
    ti.nbytes = static_cast<size_t>(nbytes);
    if (nbytes > 0) extents.push_back({begin, begin + nbytes, k});
  }

  // Writers lay tensors out back to back; overlapping data means a corrupt or forged file.
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < extents.size(); ++k) {
    const Extent& prev = extents[k - 1];
    const Extent& cur = extents[k];
    if (cur.begin < prev.end)
      fail(info_at[cur.index], "tensor " + quoted(f_.tensors_[cur.index].name) + " data " +
                                   range_str(cur.begin, cur.end - cur.begin) + " overlaps tensor " +
                                   quoted(f_.tensors_[prev.index].name) + " data " +
                                   range_str(prev.begin, prev.end - prev.begin));
  }
}

void GGUFParser::parse() {
  uint64_t n_tensors = 0, n_kv = 0;
  parse_header(&n_tensors, &n_kv);
  parse_metadata(n_kv);
  std::vector<uint64_t> info_at;
  parse_tensor_infos(n_tensors, &info_at);
  place_tensors(info_at);
}

// ---------------------------------------------------------------------------------------------
// Mapping

namespace {

[[noreturn]] void throw_os_error(int code, const std::string& path) {
  throw std::system_error(code, std::generic_category(), "cannot open GGUF file '" + path + "'");
}

}  // namespace

std::shared_ptr<GGUFFile> GGUFFile::open(const std::string& path, bool use_mmap) {
  // The constructor is private, so no make_shared; the destructor unmaps on any failure below.
  std::shared_ptr<GGUFFile> f(new GGUFFile());
  f->path_ = path;
#ifdef _WIN32
  // Untested: kept so the reader builds on Windows.
  int wlen = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
  std::wstring wpath(wlen > 0 ? static_cast<size_t>(wlen) : 1, L'\0');
  if (wlen > 0) MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, &wpath[0], wlen);
  HANDLE file = CreateFileW(wpath.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                            FILE_ATTRIBUTE_NORMAL, nullptr);
  if (file == INVALID_HANDLE_VALUE)
    throw std::system_error(static_cast<int>(GetLastError()), std::system_category(),
                            "cannot open GGUF file '" + path + "'");
  LARGE_INTEGER sz;
  if (!GetFileSizeEx(file, &sz)) {
    DWORD err = GetLastError();
    CloseHandle(file);
    throw std::system_error(static_cast<int>(err), std::system_category(), "cannot stat '" + path + "'");
  }
  if (static_cast<uint64_t>(sz.QuadPart) > std::numeric_limits<size_t>::max()) {
    CloseHandle(file);
    throw GGUFError(message_path(path) + ": file too large to map on this platform");
  }
  f->size_ = static_cast<size_t>(sz.QuadPart);
  if (f->size_ > 0) {
    HANDLE mapping = CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
    DWORD err = GetLastError();
    CloseHandle(file);
    if (mapping == nullptr)
      throw std::system_error(static_cast<int>(err), std::system_category(), "cannot map '" + path + "'");
    f->map_handle_ = mapping;
    void* p = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    if (p == nullptr)
      throw std::system_error(static_cast<int>(GetLastError()), std::system_category(),
                              "cannot map '" + path + "'");
    f->base_ = static_cast<const uint8_t*>(p);
  } else {
    CloseHandle(file);
  }
#else
  // O_NONBLOCK: opening a FIFO must not hang waiting for a writer (it is rejected below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_os_error(errno, path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw_os_error(err, path);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw_os_error(EISDIR, path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::system_error(EINVAL, std::generic_category(),
                            "cannot open GGUF file '" + path + "': not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max()) {
    ::close(fd);
    throw GGUFError(message_path(path) + ": file too large to map on this platform");
  }
  f->size_ = static_cast<size_t>(st.st_size);
  if (!use_mmap && f->size_ > 0) {
    // Read into memory: the file may shrink or grow while we read, so read until EOF and
    // parse what was read (a short read is a truncated file, reported by the parser).
    f->owned_.resize(f->size_, false);
    size_t got = 0;
    while (got < f->size_) {
      ssize_t r = ::read(fd, f->owned_.data() + got, f->size_ - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "cannot read GGUF file '" + path + "'");
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    ::close(fd);
    f->size_ = got;
    f->base_ = f->owned_.data();
  } else if (f->size_ > 0) {  // mmap of length 0 is an error; the parser reports the empty file
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);  // the mapping keeps the file referenced
    if (p == MAP_FAILED)
      throw std::system_error(err, std::generic_category(), "cannot map GGUF file '" + path + "'");
    f->base_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
#endif
  GGUFParser(*f).parse();
  return f;
}

GGUFFile::~GGUFFile() {
#ifdef _WIN32
  if (base_ && owned_.size() == 0) UnmapViewOfFile(base_);
  if (map_handle_) CloseHandle(static_cast<HANDLE>(map_handle_));
#else
  if (base_ && owned_.size() == 0) ::munmap(const_cast<uint8_t*>(base_), size_);
#endif
}

// ---------------------------------------------------------------------------------------------
// Lookup and typed getters

const GGUFValue* GGUFFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GGUFTensorInfo* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void throw_type_mismatch(const std::string& path, const std::string& key, const GGUFValue& v,
                                      const char* expected) {
  throw GGUFError(message_path(path) + ": metadata key " + quoted(key) + " has type " + gguf_value_type_desc(v) + ", expected " +
                  expected);
}

[[noreturn]] void throw_missing(const std::string& path, const std::string& key) {
  throw GGUFError(message_path(path) + ": required metadata key " + quoted(key) + " is missing");
}

[[noreturn]] void throw_int64_range(const std::string& path, const std::string& key, uint64_t u) {
  throw GGUFError(message_path(path) + ": metadata key " + quoted(key) + " value " + std::to_string(u) +
                  " does not fit in int64");
}

}  // namespace

std::string GGUFFile::get_str(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw_missing(path_, key);
  return get_str_or(key, std::string());
}

std::string GGUFFile::get_str_or(const std::string& key, const std::string& def) const {
  const GGUFValue* v = find(key);
  if (!v) return def;
  if (v->type != GGUFType::STRING) throw_type_mismatch(path_, key, *v, "string");
  // The file reader keeps any bytes (Python sees them decoded with replacement), but a value
  // the engine uses must be text: it ends up in error messages and hyper-parameters.
  if (!is_valid_utf8(v->s))
    throw GGUFError(message_path(path_) + ": metadata key " + quoted(key) + " value " + quoted(v->s) +
                    " is not valid UTF-8");
  return v->s;
}

int64_t GGUFFile::get_int(const std::string& key) const {
  if (!find(key)) throw_missing(path_, key);
  return get_int_or(key, 0);
}

int64_t GGUFFile::get_int_or(const std::string& key, int64_t def) const {
  const GGUFValue* v = find(key);
  if (!v) return def;
  // BOOL is refused on purpose: a flag where a count is expected is a schema error.
  if (!is_integer_type(v->type)) throw_type_mismatch(path_, key, *v, "an integer type");
  if (v->type == GGUFType::UINT64 && v->u > kMaxInt64) throw_int64_range(path_, key, v->u);
  return v->i;
}

double GGUFFile::get_float(const std::string& key) const {
  if (!find(key)) throw_missing(path_, key);
  return get_float_or(key, 0.0);
}

double GGUFFile::get_float_or(const std::string& key, double def) const {
  const GGUFValue* v = find(key);
  if (!v) return def;
  if (is_float_type(v->type)) return v->f;
  if (v->type == GGUFType::UINT64) return static_cast<double>(v->u);
  if (is_integer_type(v->type)) return static_cast<double>(v->i);
  throw_type_mismatch(path_, key, *v, "a float or integer type");
}

bool GGUFFile::get_bool_or(const std::string& key, bool def) const {
  const GGUFValue* v = find(key);
  if (!v) return def;
  if (v->type != GGUFType::BOOL) throw_type_mismatch(path_, key, *v, "bool");
  return v->i != 0;
}

std::vector<double> GGUFFile::get_float_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw_missing(path_, key);
  if (v->type == GGUFType::ARRAY) {
    if (is_float_type(v->elem_type)) return v->arr_f;
    if (v->elem_type == GGUFType::UINT64) return std::vector<double>(v->arr_u.begin(), v->arr_u.end());
    if (is_integer_type(v->elem_type)) return std::vector<double>(v->arr_i.begin(), v->arr_i.end());
  }
  throw_type_mismatch(path_, key, *v, "an array of numbers");
}

std::vector<int64_t> GGUFFile::get_int_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw_missing(path_, key);
  if (v->type != GGUFType::ARRAY || !is_integer_type(v->elem_type))
    throw_type_mismatch(path_, key, *v, "an array of integers");
  for (uint64_t u : v->arr_u)
    if (u > kMaxInt64) throw_int64_range(path_, key, u);
  return v->arr_i;
}

std::vector<std::string> GGUFFile::get_str_array(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) throw_missing(path_, key);
  if (v->type != GGUFType::ARRAY || v->elem_type != GGUFType::STRING)
    throw_type_mismatch(path_, key, *v, "an array of strings");
  return v->arr_s;
}

}  // namespace pyvitcpp
