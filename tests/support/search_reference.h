#pragma once
// Test-side references for VectorSearch plugins (header-only, no plugin code): an obvious O(n·d) brute force with a
// full sort, synthetic clustered unit vectors (a Gaussian mixture, so that approximate search is meaningful), and
// recall@k. Used by the search plugins' tests, the conformance contract and tests/bench/search_bench.cpp.
#include <daug/vector_search.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace daug::testing {

/// Row-major rows with their shape, convertible to the FloatRows view.
struct RowMatrix {
  std::vector<float> values;
  int64_t rows = 0;
  int64_t dim = 0;
  FloatRows view() const { return FloatRows{values.data(), rows, dim}; }
  const float* row(int64_t i) const { return values.data() + i * dim; }
};

/// Exact top-k by inner product, accumulated in double, every row scored and fully sorted by (score descending,
/// row ascending): the contract's order. Scores are returned as float.
inline std::vector<SearchHits> brute_force_search(const RowMatrix& db, const RowMatrix& q, int64_t k) {
  std::vector<SearchHits> out(static_cast<size_t>(q.rows));
  std::vector<double> score(static_cast<size_t>(db.rows));
  std::vector<int64_t> order(static_cast<size_t>(db.rows));
  for (int64_t i = 0; i < q.rows; ++i) {
    for (int64_t r = 0; r < db.rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < db.dim; ++c) s += static_cast<double>(q.row(i)[c]) * db.row(r)[c];
      score[static_cast<size_t>(r)] = s;
    }
    std::iota(order.begin(), order.end(), int64_t{0});
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
      return sa > sb || (sa == sb && a < b);
    });
    const int64_t m = std::min(k, db.rows);
    for (int64_t j = 0; j < m; ++j) {
      out[static_cast<size_t>(i)].rows.push_back(order[static_cast<size_t>(j)]);
      out[static_cast<size_t>(i)].scores.push_back(
          static_cast<float>(score[static_cast<size_t>(order[static_cast<size_t>(j)])]));
    }
  }
  return out;
}

/// `rows` Gaussian rows of dimension `dim` (N(0, 1) entries), fixed `seed`.
inline RowMatrix gaussian_rows(int64_t rows, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n01(0.f, 1.f);
  RowMatrix m{std::vector<float>(static_cast<size_t>(rows * dim)), rows, dim};
  for (auto& v : m.values) v = n01(rng);
  return m;
}

/// L2-normalises every row in place.
inline void normalize_rows(RowMatrix& m) {
  for (int64_t i = 0; i < m.rows; ++i) {
    float* r = m.values.data() + i * m.dim;
    double ss = 0;
    for (int64_t c = 0; c < m.dim; ++c) ss += static_cast<double>(r[c]) * r[c];
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.f;
    for (int64_t c = 0; c < m.dim; ++c) r[c] *= inv;
  }
}

/// L2-normalised rows from a Gaussian mixture: `clusters` random unit centres, each row = its centre + N(0, spread²)
/// per coordinate, then normalised; centres picked uniformly (fixed `seed`). Queries drawn the same way with another
/// seed (and the same `centre_seed`) share the clusters.
inline RowMatrix clustered_unit_rows(int64_t rows, int64_t dim, int64_t clusters, float spread, uint64_t seed,
                                     uint64_t centre_seed = 12345) {
  RowMatrix centres = gaussian_rows(clusters, dim, centre_seed);
  normalize_rows(centres);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.f, spread);
  std::uniform_int_distribution<int64_t> pick(0, clusters - 1);
  RowMatrix m{std::vector<float>(static_cast<size_t>(rows * dim)), rows, dim};
  for (int64_t i = 0; i < rows; ++i) {
    const float* c = centres.row(pick(rng));
    for (int64_t j = 0; j < dim; ++j) m.values[static_cast<size_t>(i * dim + j)] = c[j] + noise(rng);
  }
  normalize_rows(m);
  return m;
}

/// Mean over queries of |found[i] ∩ truth[i]| / |truth[i]| (recall@k with k = the truth's length).
inline double recall(const std::vector<SearchHits>& found, const std::vector<SearchHits>& truth) {
  double sum = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    std::set<int64_t> t(truth[i].rows.begin(), truth[i].rows.end());
    int64_t hit = 0;
    for (int64_t r : found[i].rows) hit += t.count(r) ? 1 : 0;
    sum += t.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(t.size());
  }
  return truth.empty() ? 1.0 : sum / static_cast<double>(truth.size());
}

}  // namespace daug::testing
