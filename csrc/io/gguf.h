// GGUF v2/v3 reader over a read-only mmap. Every count, offset and size is validated
// (overflow-safe) before use; any problem throws GGUFError naming what is wrong and where.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned.h"

namespace pyvitcpp {

class GGUFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// GGUF metadata value types, numbered as in the GGUF specification.
enum class GGUFType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GGUFValue {
  GGUFType type = GGUFType::UINT8;
  GGUFType elem_type = GGUFType::UINT8;  // for ARRAY
  // Scalars: integer types (and BOOL) in i (UINT64 values above INT64_MAX are kept in u),
  // floats in f, STRING in s. Arrays: numeric elements in the vector matching their kind.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  std::string s;
  std::vector<int64_t> arr_i;   // integer / bool arrays
  std::vector<double> arr_f;    // float arrays
  std::vector<std::string> arr_s;
  std::vector<GGUFValue> arr_arr;  // nested arrays (rare; kept for completeness)
  // UINT64 arrays only: the exact values (arr_i holds them too, but only those <= INT64_MAX
  // are meaningful there; get_int_array refuses the rest).
  std::vector<uint64_t> arr_u;

  bool is_int() const;     // any integer type or BOOL
  bool is_float() const;   // FLOAT32 / FLOAT64
  bool is_array() const { return type == GGUFType::ARRAY; }
};

struct GGUFTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // dimensions, innermost first (ggml order), 1..4 of them
  uint32_t type = 0;        // ggml type id (see core/dtype.h)
  uint64_t offset = 0;      // relative to the start of the data section
  const uint8_t* data = nullptr;  // points into the mapping; valid while the file lives
  size_t nbytes = 0;
  int64_t nelements() const;
};

class GGUFFile {
 public:
  // Opens and fully validates the file. Throws GGUFError (bad content) or std::runtime_error
  // (cannot open/map), both with the path in the message. Open/map failures are
  // std::system_error carrying the errno (ENOENT, EISDIR, EACCES, ...), so callers can tell them
  // apart. The object is immutable after open: safe to share between threads.
  //
  // use_mmap = true maps the file: nothing is read until used, but the file must not be
  // truncated or rewritten in place while open (the process would get SIGBUS reading a page
  // past the new end). use_mmap = false reads the whole file into memory once (same
  // validation): the file can then change or disappear without affecting this object.
  static std::shared_ptr<GGUFFile> open(const std::string& path, bool use_mmap = true);
  ~GGUFFile();
  GGUFFile(const GGUFFile&) = delete;
  GGUFFile& operator=(const GGUFFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }
  bool mapped() const { return owned_.size() == 0 && size_ > 0; }
  // Absolute file offset of the tensor data section (aligned end of the tensor infos).
  uint64_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GGUFValue>>& metadata() const { return kv_; }
  const GGUFValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

  // Typed getters. The *_or forms return the default when the key is absent; all throw
  // GGUFError when the key is present with an incompatible type (naming key and types).
  // The plain forms throw GGUFError when the key is missing.
  std::string get_str(const std::string& key) const;
  std::string get_str_or(const std::string& key, const std::string& def) const;
  int64_t get_int(const std::string& key) const;  // any integer type
  int64_t get_int_or(const std::string& key, int64_t def) const;
  double get_float(const std::string& key) const;  // float or integer types
  double get_float_or(const std::string& key, double def) const;
  bool get_bool_or(const std::string& key, bool def) const;
  std::vector<double> get_float_array(const std::string& key) const;  // numeric arrays
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::vector<std::string> get_str_array(const std::string& key) const;

  const std::vector<GGUFTensorInfo>& tensors() const { return tensors_; }
  const GGUFTensorInfo* find_tensor(const std::string& name) const;

 private:
  GGUFFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t data_offset_ = 0;
  void* map_handle_ = nullptr;  // platform mapping bookkeeping
  AlignedBuffer owned_;         // the file's bytes when opened without mmap
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GGUFTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend class GGUFParser;
};

const char* gguf_type_name(GGUFType t);
// The type as people write it: "uint32", "string", "array[float32]", "array[array[int32]]".
std::string gguf_value_type_desc(const GGUFValue& v);

}  // namespace pyvitcpp
