#pragma once
// Parametric lesions drawn into chest X-rays (no LibTorch; tested in lesions_test.cpp).
//
// Each lesion is a binary region R (its mask) and an opacity profile a(y, x) in [0, 1] that is nonzero only in and
// around R; the lesioned image is clamp(x + contrast · a, 0, 1) (opacities are bright on a radiograph).
//  * nodule: a sphere seen in projection: a = sqrt(1 - (d/r)²) inside the disc d <= r (chord length through a
//    ball), R = the disc.
//  * consolidation: R = a union of 3-6 overlapping discs (an irregular patch); a = R blurred (σ = 3 px, soft
//    borders) times a smooth texture in [0.6, 1] (bilinear value noise on a coarse grid).
//  * effusion: R = the region below a meniscus at a costophrenic angle, rising towards the lateral chest wall;
//    a = R blurred (σ = 2 px), denser towards the base.
// Positions use fixed lung-field boxes of a frontal (PA/AP) radiograph, in fractions of the image.
#include <cstdint>
#include <string>
#include <vector>

namespace daug::plugins::lesions {

enum class Kind { nodule, consolidation, effusion };

/// Portable uniform numbers from one 64-bit state (splitmix64): the same lesions on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next();
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  ///< [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

 private:
  uint64_t s_;
};

struct Params {
  double contrast = 0.3;             ///< peak added intensity, in units of the [0, 1] intensity range
  double nodule_radius[2] = {12, 24};     ///< px of the image, uniform in [lo, hi]
  double consolidation_size[2] = {40, 70};  ///< px: extent of the patch
  double effusion_height[2] = {30, 60};     ///< px: height of the fluid at the lateral wall
};

/// A drawn lesion: its profile and mask over the image, and the mask's bounding box.
struct Lesion {
  Kind kind = Kind::nodule;
  int64_t h = 0, w = 0;
  std::vector<float> profile;  ///< h·w values in [0, 1]
  std::vector<uint8_t> mask;   ///< h·w, 1 = lesion
  int64_t x0 = 0, y0 = 0, x1 = -1, y1 = -1;  ///< inclusive bounding box of the mask
  std::string where;           ///< "right lung", "left costophrenic angle", ... (radiological sides)
};

/// Draws a lesion of `kind` for an h×w image; every random choice comes from `rng`.
Lesion draw(Kind kind, int64_t h, int64_t w, const Params& p, Rng& rng);

/// Adds the lesion to a row-major h·w image with values in [0, 1]: x ← clamp(x + contrast · a, 0, 1).
void apply(std::vector<float>& image, const Lesion& lesion, double contrast);

/// Separable Gaussian blur of a row-major h·w map (edges clamped).
std::vector<float> blur(const std::vector<float>& v, int64_t h, int64_t w, double sigma);

const char* kind_name(Kind k);

}  // namespace daug::plugins::lesions
