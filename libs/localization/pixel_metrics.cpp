#include <daug/bootstrap.h>
#include <daug/paired_items.h>
#include <daug/localization/pixel_metrics.h>

#include <daug/seed.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace daug::loc {

double auroc(const std::vector<float>& scores, const std::vector<uint8_t>& labels) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0, pos = 0;
  for (size_t k = 0; k < n;) {
    size_t e = k;
    while (e < n && scores[order[e]] == scores[order[k]]) ++e;
    const double avg_rank = 0.5 * static_cast<double>(k + 1 + e);  // ranks k+1 .. e, averaged: ties count 1/2
    for (size_t q = k; q < e; ++q)
      if (labels[order[q]]) {
        rank_sum += avg_rank;
        pos += 1;
      }
    k = e;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

std::vector<uint8_t> mask_to_grid(const std::vector<uint8_t>& mask, int64_t mh, int64_t mw, int64_t h, int64_t w) {
  // Integer coordinates scaled by the other grid's size: cell i spans [i·mh, (i+1)·mh), mask row r spans
  // [r·h, (r+1)·h); overlaps and the area test are exact.
  auto overlaps = [](int64_t cells, int64_t pixels) {
    std::vector<std::vector<std::pair<int64_t, int64_t>>> o(static_cast<size_t>(cells));  // (pixel, overlap)
    for (int64_t i = 0; i < cells; ++i) {
      const int64_t a0 = i * pixels, a1 = (i + 1) * pixels;
      for (int64_t r = a0 / cells; r < pixels && r * cells < a1; ++r) {
        const int64_t ov = std::min(a1, (r + 1) * cells) - std::max(a0, r * cells);
        if (ov > 0) o[static_cast<size_t>(i)].emplace_back(r, ov);
      }
    }
    return o;
  };
  const auto oy = overlaps(h, mh), ox = overlaps(w, mw);
  std::vector<uint8_t> out(static_cast<size_t>(h * w), 0);
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      int64_t covered = 0;
      for (auto [r, wy] : oy[static_cast<size_t>(i)])
        for (auto [c, wx] : ox[static_cast<size_t>(j)])
          if (mask[static_cast<size_t>(r * mw + c)]) covered += wy * wx;
      out[static_cast<size_t>(i * w + j)] = 2 * covered >= mh * mw ? 1 : 0;  // cell area = mh·mw scaled units
    }
  return out;
}

const std::vector<double>& dice_thresholds() {
  static const std::vector<double> t = [] {
    std::vector<double> v;
    for (int k = 1; k <= 19; ++k) v.push_back(k / 20.0);
    return v;
  }();
  return t;
}

std::vector<double> dice_curve(const Map& m, const std::vector<uint8_t>& truth, const std::vector<double>& thresholds) {
  float lo = m.v[0], hi = m.v[0];
  for (float x : m.v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  int64_t g = 0;
  for (uint8_t t : truth) g += t != 0;
  std::vector<double> out;
  for (double t : thresholds) {
    int64_t p = 0, tp = 0;
    if (hi > lo)
      for (size_t k = 0; k < m.v.size(); ++k)
        if ((m.v[k] - lo) / (hi - lo) >= t) {
          ++p;
          tp += truth[k] != 0;
        }
    out.push_back(p + g == 0 ? 1.0 : 2.0 * static_cast<double>(tp) / static_cast<double>(p + g));
  }
  return out;
}

Map uniform_noise_map(int64_t h, int64_t w, uint64_t seed) {
  Map m{h, w, std::vector<float>(static_cast<size_t>(h * w))};
  for (size_t k = 0; k < m.v.size(); ++k)
    m.v[k] = static_cast<float>(static_cast<double>(mix_seed(seed, k) >> 40) * 0x1p-24);  // 24 bits: exact float
  return m;
}

Map centred_gaussian_map(int64_t h, int64_t w) {
  Map m{h, w, std::vector<float>(static_cast<size_t>(h * w))};
  const double sigma = static_cast<double>(std::min(h, w)) / 4.0;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const double dy = i + 0.5 - h / 2.0, dx = j + 0.5 - w / 2.0;
      m.v[static_cast<size_t>(i * w + j)] = static_cast<float>(std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
    }
  return m;
}

Interval bootstrap_mean_ci(const std::vector<double>& values, int64_t draws, uint64_t seed) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (values.empty() || draws <= 0) return {nan, nan};
  // The SDK's resampling (daug/bootstrap.h): the same draws `daug ablate` makes for its paired CIs.
  PairedMetric m{"mean", paired_kinds::kMean, {}};
  m.items.reserve(values.size());
  for (size_t k = 0; k < values.size(); ++k) m.items.push_back({std::to_string(k), {values[k]}, {}});
  const BootstrapInterval ci = bootstrap_interval(m, draws, seed);
  return {ci.lo, ci.hi};
}

}  // namespace daug::loc
