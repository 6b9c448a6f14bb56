#pragma once
/// `faiss` VectorSearch: FAISS 1.7.3 (Debian's libfaiss-dev) indexes with the inner-product metric: exact `flat`
/// (IndexFlatIP), `ivf_flat` (IndexIVFFlat: k-means coarse quantizer, `nprobe` of `nlist` lists scanned) and `hnsw`
/// (IndexHNSWFlat: a navigable small-world graph). Declared in a header for tests.
#include <daug/options.h>
#include <daug/vector_search.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace daug {
class BuildContext;
}

namespace daug::plugins {

/// The FAISS index built by add() (TOML names "flat", "ivf_flat", "hnsw").
enum class FaissIndexType { flat, ivf_flat, hnsw };
extern const Choices<FaissIndexType> kFaissIndexTypes;

/// Example TOML:
///   [search]
///   plugin = "faiss"
///   type = "ivf_flat"
///   nlist = 1024
///   nprobe = 32
/// The type-specific keys are optional (unset: the documented default); setting one of another type is an error.
struct FaissSearchOptions {
  FaissIndexType type = FaissIndexType::flat;
  std::optional<int64_t> nlist;       // ivf_flat
  std::optional<int64_t> nprobe;      // ivf_flat
  std::optional<int64_t> train_rows;  // ivf_flat
  std::optional<int64_t> M;           // hnsw
  std::optional<int64_t> ef_construction;
  std::optional<int64_t> ef_search;
  std::optional<int64_t> seed;  // ivf_flat k-means, hnsw levels
  void visit(OptionVisitor& v);
};

/// Defaults of the unset type-specific options.
constexpr int64_t kFaissDefaultNprobe = 16;
constexpr int64_t kFaissDefaultM = 32;
constexpr int64_t kFaissDefaultEfConstruction = 200;
constexpr int64_t kFaissDefaultEfSearch = 64;
/// nlist when unset: round(4·√rows), at least 1 and at most rows.
int64_t faiss_default_nlist(int64_t rows);

class FaissSearch final : public VectorSearch {
 public:
  using Options = FaissSearchOptions;
  /// Where each option is written ("file:line:col: [search].nlist"), for errors found only in add().
  using Locations = std::vector<std::pair<std::string, std::string>>;
  /// `table`: the config table (error messages name it); `seed`: used when opts.seed is unset; `locations`: where
  /// the keys are written (default "[table].key").
  FaissSearch(Options opts, std::string table = "search", uint64_t seed = 0, Locations locations = {});
  ~FaissSearch() override;
  static std::shared_ptr<VectorSearch> create(Options opts, BuildContext& ctx);

  void add(const FloatRows& database) override;
  std::vector<SearchHits> search(const FloatRows& queries, int64_t k) const override;
  int64_t size() const override { return rows_; }
  int64_t dim() const override { return dim_; }
  std::string describe() const override;
  /// Changes the search-time parameters of the built index without rebuilding it: `nprobe` (ivf_flat, <= nlist)
  /// and `ef_search` (hnsw); an unset one is left as it is. For benchmarks that sweep them over one index.
  void set_search_params(std::optional<int64_t> nprobe, std::optional<int64_t> ef_search);
  /// nlist and nprobe of the built IVF index (0 before add() or for other types).
  int64_t nlist() const { return nlist_; }
  int64_t nprobe() const { return nprobe_; }

 private:
  std::string where(const std::string& key) const;
  Options opts_;
  std::string table_;
  uint64_t seed_;
  Locations where_;
  std::unique_ptr<faiss::Index> index_;
  int64_t rows_ = 0;
  int64_t dim_ = 0;
  int64_t nlist_ = 0;
  int64_t nprobe_ = 0;
};

}  // namespace daug::plugins
