#pragma once
/// VectorSearch: the k nearest rows of a fixed set of float32 vectors by inner product (for L2-normalised rows, the
/// cosine similarity), for `daug query` over an index built by `daug index build`. Exact search is the default
/// plugin (`exact`); approximate ones (`faiss`: IVF-Flat, HNSW) trade recall for speed, selected through TOML:
///
///   [search]
///   plugin = "faiss"
///   type = "hnsw"
///
/// Contract:
///  * add() is called once with every database row before any search(); an approximate index may train on them
///    (IVF) there. The rows are copied or indexed: the caller's buffer may be freed afterwards.
///  * search() returns, for each of the nq queries, min(k, size()) hits ordered by score descending; among equal
///    scores exact search orders by row ascending. Scores are inner products of the float32 vectors as the plugin
///    computes them (an approximate plugin may return fewer hits than asked when its probes find fewer).
///  * Dimension mismatches and k < 1 throw daug::ConfigError/DataError naming what was expected and what was found.
///  * search() may be called from one thread at a time; it may use several threads internally.
#include <daug/api.h>
#include <daug/component.h>

#include <cstdint>
#include <vector>

namespace daug {

/// Row-major float32 matrix view: `rows` vectors of `dim` floats each, `data` holding rows*dim values.
struct FloatRows {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t dim = 0;
};

/// One query's hits, best first: `rows[i]` is a database row index, `scores[i]` its score.
struct SearchHits {
  std::vector<int64_t> rows;
  std::vector<float> scores;
};

class DAUG_SDK_API VectorSearch : public Component {
 public:
  static constexpr const char* kInterface = "VectorSearch";
  ~VectorSearch() override;
  /// Takes the database (see the contract). Called once.
  virtual void add(const FloatRows& database) = 0;
  /// The k best rows for every query (queries.dim must equal the database's dim).
  virtual std::vector<SearchHits> search(const FloatRows& queries, int64_t k) const = 0;
  /// Number of database rows added.
  virtual int64_t size() const = 0;
  /// Dimension of the database rows (0 before add()).
  virtual int64_t dim() const = 0;
};

}  // namespace daug
