// search_faiss: FAISS flat / IVF-Flat / HNSW indexes (inner product) behind daug::VectorSearch.
#include "faiss_search.h"

#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/register.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/utils/random.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>

namespace daug::plugins {

const Choices<FaissIndexType> kFaissIndexTypes = choices<FaissIndexType>(
    {{"flat", FaissIndexType::flat}, {"ivf_flat", FaissIndexType::ivf_flat}, {"hnsw", FaissIndexType::hnsw}});

void FaissSearchOptions::visit(OptionVisitor& v) {
  v("type", type,
    "FAISS index: flat (exact, IndexFlatIP), ivf_flat (IndexIVFFlat: k-means lists, approximate), hnsw "
    "(IndexHNSWFlat: graph, approximate)",
    kFaissIndexTypes);
  v("nlist", nlist, "ivf_flat: number of k-means lists (unset: round(4*sqrt(rows)), at most rows); must be <= rows",
    Check::at_least(1));
  v("nprobe", nprobe, "ivf_flat: lists scanned per query (unset: 16, at most nlist); must be <= nlist",
    Check::at_least(1));
  v("train_rows", train_rows,
    "ivf_flat: database rows sampled (with `seed`) to train k-means (unset: every row; FAISS keeps at most 256 "
    "per list); must be in [nlist, rows]",
    Check::at_least(1));
  v("M", M, "hnsw: graph neighbours per node (unset: 32)", Check::range(2, 4096));
  v("ef_construction", ef_construction, "hnsw: candidate list size while building (unset: 200)", Check::at_least(1));
  v("ef_search", ef_search, "hnsw: candidate list size while searching, raised to k when smaller (unset: 64)",
    Check::at_least(1));
  v("seed", seed,
    "ivf_flat: k-means and training-sample seed; hnsw: level seed (unset: derived from [run].seed and the table)",
    Check::range(0, 2147483647));
}

int64_t faiss_default_nlist(int64_t rows) {
  const auto n = static_cast<int64_t>(std::llround(4.0 * std::sqrt(static_cast<double>(rows))));
  return std::clamp<int64_t>(n, 1, std::max<int64_t>(rows, 1));
}

namespace {

const char* const kIvfKeys[] = {"nlist", "nprobe", "train_rows"};
const char* const kHnswKeys[] = {"M", "ef_construction", "ef_search"};

std::optional<int64_t>* field(FaissSearchOptions& o, const std::string& key) {
  if (key == "nlist") return &o.nlist;
  if (key == "nprobe") return &o.nprobe;
  if (key == "train_rows") return &o.train_rows;
  if (key == "M") return &o.M;
  if (key == "ef_construction") return &o.ef_construction;
  if (key == "ef_search") return &o.ef_search;
  if (key == "seed") return &o.seed;
  return nullptr;
}

void check_rows(const FloatRows& m, const std::string& what, const std::string& where) {
  DAUG_CHECK_AS(DataError, m.rows >= 0 && m.dim >= 1 && (m.rows == 0 || m.data != nullptr), where, ": ", what,
                " must be >= 0 rows of dimension >= 1 with data, but got ", m.rows, " x ", m.dim,
                m.data ? "" : " (null data)");
  const int64_t n = m.rows * m.dim;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(m.data[i]))
      throw DataError(fmt::format("{}: {} row {} has a non-finite value {} at column {} (rows must be finite)", where,
                                  what, i / m.dim, m.data[i], i % m.dim));
}

/// Runs a FAISS call, turning its exceptions into daug::Error naming `where`.
template <class F>
void faiss_call(const std::string& where, F&& f) {
  try {
    f();
  } catch (const faiss::FaissException& e) {
    throw Error(where + ": FAISS failed: " + e.what());
  }
}

using Hit = std::pair<float, int64_t>;

}  // namespace

FaissSearch::FaissSearch(Options opts, std::string table, uint64_t seed, Locations locations)
    : opts_(std::move(opts)), table_(std::move(table)), seed_(seed), where_(std::move(locations)) {
  check_options(opts_, "[" + table_ + "]");
  const std::string type = kFaissIndexTypes.name(opts_.type);
  auto only_for = [&](const char* const* keys, size_t n, FaissIndexType owner) {
    for (size_t i = 0; i < n; ++i)
      DAUG_CHECK_AS(ConfigError, opts_.type == owner || !field(opts_, keys[i])->has_value(), where(keys[i]),
                    " applies to type = \"", kFaissIndexTypes.name(owner), "\", but type = \"", type, "\"");
  };
  only_for(kIvfKeys, 3, FaissIndexType::ivf_flat);
  only_for(kHnswKeys, 3, FaissIndexType::hnsw);
  DAUG_CHECK_AS(ConfigError, opts_.type != FaissIndexType::flat || !opts_.seed, where("seed"),
                " applies to types \"ivf_flat\" and \"hnsw\", but type = \"flat\" (exact, no randomness)");
  if (opts_.nlist && opts_.nprobe)
    DAUG_CHECK_AS(ConfigError, *opts_.nprobe <= *opts_.nlist, where("nprobe"), " = ", *opts_.nprobe,
                  " must be <= nlist = ", *opts_.nlist, " (", where("nlist"), ")");
  if (opts_.nlist && opts_.train_rows)
    DAUG_CHECK_AS(ConfigError, *opts_.train_rows >= *opts_.nlist, where("train_rows"), " = ", *opts_.train_rows,
                  " must be >= nlist = ", *opts_.nlist, " (k-means needs a point per list)");
}

FaissSearch::~FaissSearch() = default;

std::shared_ptr<VectorSearch> FaissSearch::create(Options opts, BuildContext& ctx) {
  Locations where;
  for (const char* k : {"nlist", "nprobe", "train_rows", "M", "ef_construction", "ef_search", "seed"})
    where.emplace_back(k, ctx.where(k));
  return std::make_shared<FaissSearch>(std::move(opts), ctx.table_or("search"), ctx.seed_for("faiss"),
                                       std::move(where));
}

std::string FaissSearch::where(const std::string& key) const {
  for (const auto& [k, w] : where_)
    if (k == key) return w;
  return "[" + table_ + "]." + key;
}

void FaissSearch::add(const FloatRows& database) {
  const std::string where_add = "[" + table_ + "] faiss search add()";
  DAUG_CHECK(!index_, where_add, ": add() takes every database row in one call, but it was already called with ", rows_,
             " rows");
  check_rows(database, "database", where_add);
  DAUG_CHECK_AS(DataError, database.rows >= 1, where_add, ": the database must have >= 1 row, but got 0 x ",
                database.dim);
  const int64_t n = database.rows, d = database.dim;
  const int seed = static_cast<int>(opts_.seed ? *opts_.seed : static_cast<int64_t>(seed_ % 2147483647u));
  std::unique_ptr<faiss::Index> index;
  faiss_call(where_add, [&] {
    switch (opts_.type) {
      case FaissIndexType::flat: {
        index = std::make_unique<faiss::IndexFlatIP>(d);
        index->add(n, database.data);
        break;
      }
      case FaissIndexType::ivf_flat: {
        const int64_t nlist = opts_.nlist ? *opts_.nlist : faiss_default_nlist(n);
        DAUG_CHECK_AS(ConfigError, nlist <= n, where("nlist"), " = ", nlist,
                      " must be <= the database's rows (k-means needs a row per list), but the database has ", n,
                      " rows");
        const int64_t nprobe = opts_.nprobe ? *opts_.nprobe : std::min(kFaissDefaultNprobe, nlist);
        DAUG_CHECK_AS(ConfigError, nprobe <= nlist, where("nprobe"), " = ", nprobe, " must be <= nlist = ", nlist,
                      opts_.nlist ? "" : " (unset nlist: round(4*sqrt(rows)))");
        const int64_t train = opts_.train_rows ? *opts_.train_rows : n;
        DAUG_CHECK_AS(ConfigError, train <= n, where("train_rows"), " = ", train,
                      " must be <= the database's rows, but the database has ", n, " rows");
        DAUG_CHECK_AS(ConfigError, train >= nlist, where("train_rows"), " = ", train, " must be >= nlist = ", nlist);
        auto ivf = std::make_unique<faiss::IndexIVFFlat>(new faiss::IndexFlatIP(d), d, static_cast<size_t>(nlist),
                                                         faiss::METRIC_INNER_PRODUCT);
        ivf->own_fields = true;  // deletes the quantizer
        ivf->cp.seed = seed;
        ivf->nprobe = static_cast<size_t>(nprobe);
        if (train < n) {
          // A seeded sample of distinct rows, in row order.
          std::vector<int64_t> pick(static_cast<size_t>(n));
          std::iota(pick.begin(), pick.end(), int64_t{0});
          std::mt19937_64 rng(static_cast<uint64_t>(seed));
          for (int64_t i = 0; i < train; ++i) {
            std::uniform_int_distribution<int64_t> u(i, n - 1);
            std::swap(pick[static_cast<size_t>(i)], pick[static_cast<size_t>(u(rng))]);
          }
          pick.resize(static_cast<size_t>(train));
          std::sort(pick.begin(), pick.end());
          std::vector<float> sample(static_cast<size_t>(train * d));
          for (int64_t i = 0; i < train; ++i)
            std::copy_n(database.data + pick[static_cast<size_t>(i)] * d, d, sample.data() + i * d);
          ivf->train(train, sample.data());
        } else {
          ivf->train(n, database.data);
        }
        ivf->add(n, database.data);
        nlist_ = nlist;
        nprobe_ = nprobe;
        index = std::move(ivf);
        break;
      }
      case FaissIndexType::hnsw: {
        auto h = std::make_unique<faiss::IndexHNSWFlat>(
            static_cast<int>(d), static_cast<int>(opts_.M.value_or(kFaissDefaultM)), faiss::METRIC_INNER_PRODUCT);
        h->hnsw.efConstruction = static_cast<int>(opts_.ef_construction.value_or(kFaissDefaultEfConstruction));
        h->hnsw.efSearch = static_cast<int>(opts_.ef_search.value_or(kFaissDefaultEfSearch));
        h->hnsw.rng = faiss::RandomGenerator(seed);  // node levels
        h->add(n, database.data);
        index = std::move(h);
        break;
      }
    }
  });
  index_ = std::move(index);
  rows_ = n;
  dim_ = d;
}

std::vector<SearchHits> FaissSearch::search(const FloatRows& queries, int64_t k) const {
  const std::string where_search = "[" + table_ + "] faiss search";
  DAUG_CHECK(index_, where_search, ": search() before add(): the index holds no rows yet");
  DAUG_CHECK_AS(ConfigError, k >= 1, where_search, ": k must be >= 1, but got ", k);
  DAUG_CHECK_AS(DataError, queries.dim == dim_, where_search, ": queries must have dimension ", dim_,
                " (the database's), but got ", queries.dim);
  check_rows(queries, "query", where_search);
  const int64_t nq = queries.rows, kk = std::min(k, rows_);
  std::vector<SearchHits> out(static_cast<size_t>(nq));
  if (nq == 0) return out;
  std::vector<float> scores(static_cast<size_t>(nq * kk));
  std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(nq * kk));
  faiss_call(where_search, [&] { index_->search(nq, queries.data, kk, scores.data(), labels.data()); });
  std::vector<Hit> hits;
  for (int64_t i = 0; i < nq; ++i) {
    hits.clear();
    for (int64_t j = 0; j < kk; ++j) {
      const auto label = labels[static_cast<size_t>(i * kk + j)];
      if (label >= 0) hits.emplace_back(scores[static_cast<size_t>(i * kk + j)], label);  // -1: fewer found
    }
    // FAISS orders by score; the contract also orders equal scores by row.
    std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    auto& o = out[static_cast<size_t>(i)];
    for (const auto& [s, r] : hits) {
      o.rows.push_back(r);
      o.scores.push_back(s);
    }
  }
  return out;
}

void FaissSearch::set_search_params(std::optional<int64_t> nprobe, std::optional<int64_t> ef_search) {
  const std::string w = "[" + table_ + "] faiss search set_search_params()";
  DAUG_CHECK(index_, w, ": called before add()");
  if (nprobe) {
    auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(index_.get());
    DAUG_CHECK_AS(ConfigError, ivf, w, ": nprobe applies to type = \"ivf_flat\", but type = \"",
                  kFaissIndexTypes.name(opts_.type), "\"");
    DAUG_CHECK_AS(ConfigError, *nprobe >= 1 && *nprobe <= nlist_, w, ": nprobe must be in [1, nlist = ", nlist_,
                  "], but got ", *nprobe);
    ivf->nprobe = static_cast<size_t>(*nprobe);
    nprobe_ = *nprobe;
    opts_.nprobe = *nprobe;
  }
  if (ef_search) {
    auto* h = dynamic_cast<faiss::IndexHNSWFlat*>(index_.get());
    DAUG_CHECK_AS(ConfigError, h, w, ": ef_search applies to type = \"hnsw\", but type = \"",
                  kFaissIndexTypes.name(opts_.type), "\"");
    DAUG_CHECK_AS(ConfigError, *ef_search >= 1, w, ": ef_search must be >= 1, but got ", *ef_search);
    h->hnsw.efSearch = static_cast<int>(*ef_search);
    opts_.ef_search = *ef_search;
  }
}

std::string FaissSearch::describe() const {
  std::string s = "faiss(type=" + kFaissIndexTypes.name(opts_.type);
  if (opts_.type == FaissIndexType::ivf_flat)
    s += nlist_ ? fmt::format(", nlist={}, nprobe={}", nlist_, nprobe_)
                : fmt::format(", nlist={}, nprobe={}", opts_.nlist ? fmt::format("{}", *opts_.nlist) : "auto",
                              opts_.nprobe ? fmt::format("{}", *opts_.nprobe) : "auto");
  if (opts_.type == FaissIndexType::hnsw)
    s += fmt::format(", M={}, ef_construction={}, ef_search={}", opts_.M.value_or(kFaissDefaultM),
                     opts_.ef_construction.value_or(kFaissDefaultEfConstruction),
                     opts_.ef_search.value_or(kFaissDefaultEfSearch));
  return s + fmt::format(", rows={}, dim={})", rows_, dim_);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::VectorSearch, "faiss", daug::plugins::FaissSearch,
                     "FAISS inner-product index: flat (exact), ivf_flat or hnsw (approximate), options from TOML")
