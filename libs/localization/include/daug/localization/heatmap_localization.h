#pragma once
// Heatmap localisation metrics shared by `daug evaluate-heatmaps` and the `localize` stage (header-only, no
// LibTorch; tested in heatmap_localization_test.cpp beside it).
//
// Definitions (Wang et al., "ChestX-ray8", CVPR 2017, §4.3 and Table 3):
//  * Pointing game: the heatmap's maximum (first in row-major order on ties), its pixel centre rescaled to box
//    coordinates, falls inside a ground-truth box of that image and label.
//  * IoBB ("intersection over the detected B-Box area ratio"): the heatmap is min-max normalised and thresholded
//    at `threshold`; the detected box B is the bounding box of the largest 8-connected component of that mask
//    (ChestX-ray8 draws boxes around the thresholded heatmap's blobs); IoBB = area(B ∩ G) / area(B) for the
//    ground-truth box G. A hit is IoBB > `iobb` (ChestX-ray8 reports T(IoBB) = 0.1 ... 0.7). With several boxes
//    for one image/label the best box counts.
//  * Chance: the fraction of the image covered by the ground-truth boxes (the pointing-game hit rate of a
//    uniformly random point).
// Heatmap pixel (i, j) of an H×W map covers [j·S/W, (j+1)·S/W) × [i·S/H, (i+1)·S/H) in an S×S box image.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace daug::loc {

struct Box {
  double x = 0, y = 0, w = 0, h = 0;  ///< top-left corner and size, in box-image pixels
};

/// A row-major H×W heatmap.
struct Map {
  int64_t h = 0, w = 0;
  std::vector<float> v;
  float at(int64_t i, int64_t j) const { return v[static_cast<size_t>(i * w + j)]; }
};

inline double overlap_1d(double a0, double a1, double b0, double b1) {
  return std::max(0.0, std::min(a1, b1) - std::max(a0, b0));
}

/// Union area of boxes (clipped to the S×S image), exact, by coordinate compression.
inline double union_area(const std::vector<Box>& boxes, double s) {
  std::vector<double> xs = {0, s};
  for (const auto& b : boxes) {
    xs.push_back(std::clamp(b.x, 0.0, s));
    xs.push_back(std::clamp(b.x + b.w, 0.0, s));
  }
  std::sort(xs.begin(), xs.end());
  double area = 0;
  for (size_t k = 0; k + 1 < xs.size(); ++k) {
    const double x0 = xs[k], x1 = xs[k + 1];
    if (x1 <= x0) continue;
    std::vector<std::pair<double, double>> iv;
    for (const auto& b : boxes)
      if (b.x <= x0 && b.x + b.w >= x1) iv.emplace_back(std::clamp(b.y, 0.0, s), std::clamp(b.y + b.h, 0.0, s));
    std::sort(iv.begin(), iv.end());
    double covered = 0, cur0 = 0, cur1 = -1;
    for (auto [a, b] : iv) {
      if (a > cur1) {
        if (cur1 > cur0) covered += cur1 - cur0;
        cur0 = a;
        cur1 = b;
      } else {
        cur1 = std::max(cur1, b);
      }
    }
    if (cur1 > cur0) covered += cur1 - cur0;
    area += covered * (x1 - x0);
  }
  return area;
}

/// Pointing game: is the argmax pixel's centre (in box coordinates of an S×S image) inside any box?
inline bool pointing_hit(const Map& m, const std::vector<Box>& boxes, double s) {
  size_t best = 0;
  for (size_t k = 1; k < m.v.size(); ++k)
    if (m.v[k] > m.v[best]) best = k;
  const double cy = (static_cast<double>(best / static_cast<size_t>(m.w)) + 0.5) * s / static_cast<double>(m.h);
  const double cx = (static_cast<double>(best % static_cast<size_t>(m.w)) + 0.5) * s / static_cast<double>(m.w);
  for (const auto& b : boxes)
    if (cx >= b.x && cx <= b.x + b.w && cy >= b.y && cy <= b.y + b.h) return true;
  return false;
}

/// Bounding box (in box coordinates) of the largest 8-connected component of minmax(m) >= threshold.
/// A constant map has no detection (returns a zero-size box).
inline Box detected_box(const Map& m, double threshold, double s) {
  float lo = m.v[0], hi = m.v[0];
  for (float x : m.v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  if (!(hi > lo)) return {};
  std::vector<uint8_t> mask(m.v.size());
  for (size_t k = 0; k < m.v.size(); ++k) mask[k] = (m.v[k] - lo) / (hi - lo) >= threshold ? 1 : 0;
  std::vector<int32_t> comp(m.v.size(), -1);
  int64_t best_size = 0, bi0 = 0, bi1 = 0, bj0 = 0, bj1 = 0;
  std::vector<int64_t> stack;
  int32_t id = 0;
  for (int64_t start = 0; start < static_cast<int64_t>(m.v.size()); ++start) {
    if (!mask[static_cast<size_t>(start)] || comp[static_cast<size_t>(start)] >= 0) continue;
    int64_t size = 0, i0 = m.h, i1 = -1, j0 = m.w, j1 = -1;
    stack.assign(1, start);
    comp[static_cast<size_t>(start)] = id;
    while (!stack.empty()) {
      const int64_t k = stack.back();
      stack.pop_back();
      ++size;
      const int64_t i = k / m.w, j = k % m.w;
      i0 = std::min(i0, i);
      i1 = std::max(i1, i);
      j0 = std::min(j0, j);
      j1 = std::max(j1, j);
      for (int64_t di = -1; di <= 1; ++di)
        for (int64_t dj = -1; dj <= 1; ++dj) {
          const int64_t ni = i + di, nj = j + dj;
          if (ni < 0 || nj < 0 || ni >= m.h || nj >= m.w) continue;
          const auto nk = static_cast<size_t>(ni * m.w + nj);
          if (mask[nk] && comp[nk] < 0) {
            comp[nk] = id;
            stack.push_back(static_cast<int64_t>(nk));
          }
        }
    }
    if (size > best_size) {
      best_size = size;
      bi0 = i0;
      bi1 = i1;
      bj0 = j0;
      bj1 = j1;
    }
    ++id;
  }
  const double sy = s / static_cast<double>(m.h), sx = s / static_cast<double>(m.w);
  return {static_cast<double>(bj0) * sx, static_cast<double>(bi0) * sy, static_cast<double>(bj1 - bj0 + 1) * sx,
          static_cast<double>(bi1 - bi0 + 1) * sy};
}

/// IoBB = area(det ∩ gt) / area(det); 0 for an empty detection.
inline double iobb(const Box& det, const Box& gt) {
  const double a = det.w * det.h;
  if (a <= 0) return 0;
  return overlap_1d(det.x, det.x + det.w, gt.x, gt.x + gt.w) * overlap_1d(det.y, det.y + det.h, gt.y, gt.y + gt.h) / a;
}

/// Per (image, label) result.
struct Result {
  bool pointing = false;
  double best_iobb = 0;
  double chance = 0;  ///< union box area / image area
};

inline Result evaluate(const Map& m, const std::vector<Box>& boxes, double s, double threshold) {
  Result r;
  r.pointing = pointing_hit(m, boxes, s);
  const Box det = detected_box(m, threshold, s);
  for (const auto& b : boxes) r.best_iobb = std::max(r.best_iobb, iobb(det, b));
  r.chance = union_area(boxes, s) / (s * s);
  return r;
}

}  // namespace daug::loc
