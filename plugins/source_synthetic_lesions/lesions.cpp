#include "lesions.h"

#include <algorithm>
#include <cmath>

namespace daug::plugins::lesions {

uint64_t Rng::next() {
  uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::nodule: return "nodule";
    case Kind::consolidation: return "consolidation";
    case Kind::effusion: return "effusion";
  }
  return "?";
}

std::vector<float> blur(const std::vector<float>& v, int64_t h, int64_t w, double sigma) {
  const int64_t r = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  std::vector<double> k(static_cast<size_t>(2 * r + 1));
  double sum = 0;
  for (int64_t i = -r; i <= r; ++i) sum += k[static_cast<size_t>(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (auto& x : k) x /= sum;
  std::vector<float> tmp(v.size()), out(v.size());
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double acc = 0;
      for (int64_t i = -r; i <= r; ++i)
        acc += k[static_cast<size_t>(i + r)] * v[static_cast<size_t>(y * w + std::clamp<int64_t>(x + i, 0, w - 1))];
      tmp[static_cast<size_t>(y * w + x)] = static_cast<float>(acc);
    }
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double acc = 0;
      for (int64_t i = -r; i <= r; ++i)
        acc += k[static_cast<size_t>(i + r)] * tmp[static_cast<size_t>(std::clamp<int64_t>(y + i, 0, h - 1) * w + x)];
      out[static_cast<size_t>(y * w + x)] = static_cast<float>(acc);
    }
  return out;
}

namespace {

// Lung fields of a frontal radiograph as fractions of the image (x0, x1, y0, y1). The patient's right lung is on
// the image's left.
struct Field {
  double x0, x1, y0, y1;
  const char* name;
};
constexpr Field kLungs[2] = {{0.20, 0.42, 0.28, 0.70, "right lung"}, {0.58, 0.80, 0.28, 0.70, "left lung"}};

// The pixels a computation needs to visit: [y0, y1) × [x0, x1), inside the image.
struct Window {
  int64_t y0, y1, x0, x1;
  Window clipped(int64_t h, int64_t w) const {
    return {std::clamp<int64_t>(y0, 0, h), std::clamp<int64_t>(y1, 0, h), std::clamp<int64_t>(x0, 0, w),
            std::clamp<int64_t>(x1, 0, w)};
  }
};

Window window(double cx, double cy, double radius, int64_t h, int64_t w) {
  return Window{static_cast<int64_t>(std::floor(cy - radius)), static_cast<int64_t>(std::ceil(cy + radius)) + 1,
                static_cast<int64_t>(std::floor(cx - radius)), static_cast<int64_t>(std::ceil(cx + radius)) + 1}
      .clipped(h, w);
}

// blur() of the window's crop (which must hold every nonzero pixel with a 3σ margin), pasted into a zero map:
// the same values as blurring the whole map, at the cost of the window.
std::vector<float> blur_window(const std::vector<float>& v, int64_t h, int64_t w, double sigma, const Window& win) {
  const int64_t ch = win.y1 - win.y0, cw = win.x1 - win.x0;
  std::vector<float> out(v.size(), 0.f);
  if (ch <= 0 || cw <= 0) return out;
  std::vector<float> crop(static_cast<size_t>(ch * cw));
  for (int64_t y = 0; y < ch; ++y)
    for (int64_t x = 0; x < cw; ++x) crop[static_cast<size_t>(y * cw + x)] = v[static_cast<size_t>((y + win.y0) * w + x + win.x0)];
  const auto b = blur(crop, ch, cw, sigma);
  for (int64_t y = 0; y < ch; ++y)
    for (int64_t x = 0; x < cw; ++x) out[static_cast<size_t>((y + win.y0) * w + x + win.x0)] = b[static_cast<size_t>(y * cw + x)];
  return out;
}

void finish_box(Lesion& l) {
  l.x0 = l.w, l.y0 = l.h, l.x1 = -1, l.y1 = -1;
  for (int64_t y = 0; y < l.h; ++y)
    for (int64_t x = 0; x < l.w; ++x)
      if (l.mask[static_cast<size_t>(y * l.w + x)]) {
        l.x0 = std::min(l.x0, x), l.x1 = std::max(l.x1, x);
        l.y0 = std::min(l.y0, y), l.y1 = std::max(l.y1, y);
      }
}

// Smooth value noise in [0, 1]: a (g+1)×(g+1) grid of uniform values, bilinearly interpolated over the image.
std::vector<float> value_noise(int64_t h, int64_t w, int64_t g, Rng& rng) {
  std::vector<double> grid(static_cast<size_t>((g + 1) * (g + 1)));
  for (auto& v : grid) v = rng.uniform();
  std::vector<float> out(static_cast<size_t>(h * w));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const double gy = static_cast<double>(y) / static_cast<double>(h) * static_cast<double>(g);
      const double gx = static_cast<double>(x) / static_cast<double>(w) * static_cast<double>(g);
      const auto iy = static_cast<int64_t>(gy), ix = static_cast<int64_t>(gx);
      const double fy = gy - static_cast<double>(iy), fx = gx - static_cast<double>(ix);
      auto at = [&](int64_t a, int64_t b) { return grid[static_cast<size_t>(a * (g + 1) + b)]; };
      out[static_cast<size_t>(y * w + x)] = static_cast<float>(
          (1 - fy) * ((1 - fx) * at(iy, ix) + fx * at(iy, ix + 1)) + fy * ((1 - fx) * at(iy + 1, ix) + fx * at(iy + 1, ix + 1)));
    }
  return out;
}

}  // namespace

Lesion draw(Kind kind, int64_t h, int64_t w, const Params& p, Rng& rng) {
  Lesion l;
  l.kind = kind;
  l.h = h;
  l.w = w;
  const size_t n = static_cast<size_t>(h * w);
  l.profile.assign(n, 0.f);
  l.mask.assign(n, 0);
  const double scale = static_cast<double>(std::min(h, w)) / 256.0;  // sizes are given for a 256-px image
  const int side = rng.uniform() < 0.5 ? 0 : 1;
  const Field& f = kLungs[side];
  if (kind == Kind::nodule) {
    const double r = rng.uniform(p.nodule_radius[0], p.nodule_radius[1]) * scale;
    const double cx = rng.uniform(f.x0, f.x1) * static_cast<double>(w), cy = rng.uniform(f.y0, f.y1) * static_cast<double>(h);
    const Window win = window(cx, cy, r + 1, h, w);
    for (int64_t y = win.y0; y < win.y1; ++y)
      for (int64_t x = win.x0; x < win.x1; ++x) {
        const double dx = static_cast<double>(x) + 0.5 - cx, dy = static_cast<double>(y) + 0.5 - cy;
        const double q = (dx * dx + dy * dy) / (r * r);
        if (q <= 1) {
          l.mask[static_cast<size_t>(y * w + x)] = 1;
          l.profile[static_cast<size_t>(y * w + x)] = static_cast<float>(std::sqrt(1 - q));
        }
      }
    l.where = f.name;
  } else if (kind == Kind::consolidation) {
    const double size = rng.uniform(p.consolidation_size[0], p.consolidation_size[1]) * scale;
    const double cx = rng.uniform(f.x0, f.x1) * static_cast<double>(w), cy = rng.uniform(f.y0, f.y1) * static_cast<double>(h);
    const int blobs = 3 + static_cast<int>(rng.uniform() * 4);  // 3..6
    std::vector<float> region(n, 0.f);
    for (int b = 0; b < blobs; ++b) {
      const double bx = cx + rng.uniform(-0.3, 0.3) * size, by = cy + rng.uniform(-0.3, 0.3) * size;
      const double br = rng.uniform(0.2, 0.35) * size;
      const Window win = window(bx, by, br + 1, h, w);
      for (int64_t y = win.y0; y < win.y1; ++y)
        for (int64_t x = win.x0; x < win.x1; ++x) {
          const double dx = static_cast<double>(x) + 0.5 - bx, dy = static_cast<double>(y) + 0.5 - by;
          if (dx * dx + dy * dy <= br * br) region[static_cast<size_t>(y * w + x)] = 1.f;
        }
    }
    const auto soft = blur_window(region, h, w, 3 * scale, window(cx, cy, 0.7 * size + 12 * scale, h, w));
    const auto tex = value_noise(h, w, std::max<int64_t>(4, static_cast<int64_t>(std::lround(static_cast<double>(w) / (size / 4)))), rng);
    for (size_t k = 0; k < n; ++k) {
      l.mask[k] = region[k] > 0.5f;
      l.profile[k] = soft[k] * (0.6f + 0.4f * tex[k]);
    }
    l.where = f.name;
  } else {
    // The fluid fills the lung base from the diaphragm up to a meniscus that rises towards the lateral wall.
    const double height = rng.uniform(p.effusion_height[0], p.effusion_height[1]) * scale;
    const double base = rng.uniform(0.74, 0.80) * static_cast<double>(h);
    const double lateral = (side == 0 ? 0.14 : 0.86) * static_cast<double>(w);
    const double medial = (side == 0 ? 0.36 : 0.64) * static_cast<double>(w);
    std::vector<float> region(n, 0.f), depth(n, 0.f);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double xc = static_cast<double>(x) + 0.5, yc = static_cast<double>(y) + 0.5;
        const double q = (xc - medial) / (lateral - medial);  // 0 medially, 1 at the wall
        if (q < 0 || q > 1) continue;
        const double top = base - height * (0.3 + 0.7 * q * q);
        if (yc >= top && yc <= base) {
          region[static_cast<size_t>(y * w + x)] = 1.f;
          depth[static_cast<size_t>(y * w + x)] = static_cast<float>((yc - top) / (base - top + 1e-9));
        }
      }
    const auto soft = blur_window(region, h, w, 2 * scale,
                                  Window{0, h, static_cast<int64_t>(std::min(lateral, medial)) - 8,
                                         static_cast<int64_t>(std::max(lateral, medial)) + 9}.clipped(h, w));
    for (size_t k = 0; k < n; ++k) {
      l.mask[k] = region[k] > 0.5f;
      l.profile[k] = soft[k] * (0.7f + 0.3f * depth[k]);
    }
    l.where = side == 0 ? "right costophrenic angle" : "left costophrenic angle";
  }
  finish_box(l);
  return l;
}

void apply(std::vector<float>& image, const Lesion& lesion, double contrast) {
  for (size_t k = 0; k < image.size(); ++k)
    image[k] = std::clamp(image[k] + static_cast<float>(contrast) * lesion.profile[k], 0.f, 1.f);
}

}  // namespace daug::plugins::lesions
