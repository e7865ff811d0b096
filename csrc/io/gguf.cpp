// PLACEHOLDER: the reader is being written; this file only lets the tree link.
#include "io/gguf.h"
namespace pyvitcpp {
std::shared_ptr<GGUFFile> GGUFFile::open(const std::string& path) { throw GGUFError("GGUF reader not implemented: " + path); }
GGUFFile::~GGUFFile() {}
const GGUFValue* GGUFFile::find(const std::string&) const { return nullptr; }
const GGUFTensorInfo* GGUFFile::find_tensor(const std::string&) const { return nullptr; }
std::string GGUFFile::get_str(const std::string& k) const { throw GGUFError(k); }
std::string GGUFFile::get_str_or(const std::string&, const std::string& d) const { return d; }
int64_t GGUFFile::get_int(const std::string& k) const { throw GGUFError(k); }
int64_t GGUFFile::get_int_or(const std::string&, int64_t d) const { return d; }
double GGUFFile::get_float(const std::string& k) const { throw GGUFError(k); }
double GGUFFile::get_float_or(const std::string&, double d) const { return d; }
bool GGUFFile::get_bool_or(const std::string&, bool d) const { return d; }
std::vector<double> GGUFFile::get_float_array(const std::string& k) const { throw GGUFError(k); }
std::vector<int64_t> GGUFFile::get_int_array(const std::string& k) const { throw GGUFError(k); }
std::vector<std::string> GGUFFile::get_str_array(const std::string& k) const { throw GGUFError(k); }
}  // namespace pyvitcpp
