// The vector-math members of a level's vector traits VT (kernels/<isa>/vec_<isa>.h): each
// forwards to that level's own vector math (vm:: in kernels/<isa>/vecmath_<isa>.h, whose
// accuracy and NaN/inf behaviour are documented there), so a shared body that calls
// VT::gelu_erf gets the level's algorithm (avx2: a division-free path for |x| <= 3; avx512:
// vscalefps for the exponent scaling). Included INSIDE the struct VT of each level, after its
// `using V`; vm resolves to the including level's namespace.
static V exp(V x) { return vm::exp(x); }
static V exp2_neg(V x) { return vm::exp2_neg(x); }  // 2^x for x <= 0 (softmax after max subtraction)
static V tanh(V x) { return vm::tanh(x); }
static V sigmoid(V x) { return vm::sigmoid(x); }
static V gelu_erf(V x) { return vm::gelu_erf(x); }
static V gelu_tanh(V x) { return vm::gelu_tanh(x); }
static V quick_gelu(V x) { return vm::quick_gelu(x); }
static V silu(V x) { return vm::silu(x); }
static V hard_swish(V x) { return vm::hard_swish(x); }
