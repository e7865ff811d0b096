// Position-table resizing for transformer towers run at a resolution other than the one their
// table was trained at, reproducing the reference libraries' torch.nn.functional.interpolate
// calls (mode="bicubic", align_corners=False) number for number.
#pragma once
#include <cstdint>
#include <string>

namespace pyvitcpp {

enum class PosResize {
  None,              // the table only fits the native grid
  Bicubic,           // F.interpolate(bicubic, align_corners=False): Keys cubic A = -0.75, border
                     // samples clamped (HF ViT/DeiT/CLIP/SigLIP/Dinov2 interpolate_pos_encoding)
  BicubicAntialias,  // same with antialias=True: PIL's cubic (a = -0.5), support widened by the
                     // scale when shrinking, weights normalised (timm resample_abs_pos_embed)
};

// "none", "bicubic", "bicubic_antialias" -> PosResize; throws std::invalid_argument otherwise.
PosResize parse_pos_resize(const std::string& name);
const char* pos_resize_name(PosResize m);

// src: a [gh0, gw0] grid of D-vectors (row-major, y then x) -> dst: [gh, gw] grid.
void resize_pos_table(const float* src, int64_t gh0, int64_t gw0, int64_t D, int64_t gh, int64_t gw, PosResize mode,
                      float* dst);

// SAM's relative-position table [L0, C] -> [L, C] as segment_anything's get_rel_pos resizes it:
// F.interpolate(mode="linear", align_corners=False) along the rows (border clamped).
void resize_rel_pos_linear(const float* src, int64_t L0, int64_t C, int64_t L, float* dst);

}  // namespace pyvitcpp
