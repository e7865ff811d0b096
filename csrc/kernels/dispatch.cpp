#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/cpu.h"
#include "kernels/kernels.h"

namespace pyvitcpp {

namespace {

std::unique_ptr<KernelTable> build(Isa isa) {
  auto t = std::make_unique<KernelTable>();
  if (isa == Isa::Ref) {
    register_gemm_ref(*t);
    register_ops_ref(*t);
    register_conv_ref(*t);
    register_quant_ref(*t);
    register_layout_ref(*t);
  } else if (isa == Isa::Avx2) {
    *t = kernel_table(Isa::Ref);
    register_gemm_avx2(*t);
    register_ops_avx2(*t);
    register_conv_avx2(*t);
    register_quant_avx2(*t);
    register_layout_avx2(*t);
  } else {
    *t = kernel_table(Isa::Avx2);
    register_gemm_avx512(*t);
    register_ops_avx512(*t);
    register_conv_avx512(*t);
    register_quant_avx512(*t);
    register_layout_avx512(*t);
  }
  t->isa = isa;
  return t;
}

}  // namespace

const KernelTable& kernel_table(Isa isa) {
  static std::once_flag once[3];
  static std::unique_ptr<KernelTable> tables[3];
  std::string why;
  if (!isa_supported(isa, &why))
    throw std::runtime_error(std::string("kernel level ") + isa_name(isa) + " needs " + why +
                             ", which this CPU/OS lacks");
  int i = static_cast<int>(isa);
  std::call_once(once[i], [&] { tables[i] = build(isa); });
  return *tables[i];
}

}  // namespace pyvitcpp
