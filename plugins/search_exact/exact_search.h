#pragma once
/// `exact` VectorSearch: exact inner-product top-K by blocked matrix multiply (queries × database blocks through
/// at::mm, i.e. BLAS sgemm) and a bounded heap per query. The default search plugin. Declared in a header for tests.
#include <daug/options.h>
#include <daug/vector_search.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

/// Example TOML (every key optional):
///   [search]
///   plugin = "exact"
///   block_rows = 65536
struct ExactSearchOptions {
  int64_t block_rows = 65536;
  int64_t query_rows = 256;
  void visit(OptionVisitor& v);
};

class ExactSearch final : public VectorSearch {
 public:
  using Options = ExactSearchOptions;
  /// `table`: the config table this search is built from (error messages name it).
  explicit ExactSearch(Options opts, std::string table = "search");
  static std::shared_ptr<VectorSearch> create(Options opts, BuildContext& ctx);

  void add(const FloatRows& database) override;
  std::vector<SearchHits> search(const FloatRows& queries, int64_t k) const override;
  int64_t size() const override { return rows_; }
  int64_t dim() const override { return dim_; }
  std::string describe() const override;

 private:
  Options opts_;
  std::string table_;
  at::Tensor db_;  // [rows, dim] float32, contiguous: a copy of the caller's rows
  int64_t rows_ = 0;
  int64_t dim_ = 0;
};

/// Throws daug::DataError naming `what` ("database", "query"), the row and column of the first value that is not
/// finite, and `where` (e.g. "[search] exact").
void check_finite_rows(const FloatRows& rows, const std::string& what, const std::string& where);

}  // namespace daug::plugins
