// The FAISS search: `flat` returns the exact rows (the independent brute force of tests/support/search_reference.h
// and the `exact` plugin, loaded through the core), `ivf_flat`/`hnsw` reach a recall@10 bound on clustered data
// with true inner-product scores, results are reproducible for a seed, and errors name keys and values.
#include "faiss_search.h"

#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "search_reference.h"
#include "test_support.h"

namespace daug::plugins {
namespace {

using daug::testing::brute_force_search;
using daug::testing::clustered_unit_rows;
using daug::testing::expect_error_contains;
using daug::testing::gaussian_rows;
using daug::testing::recall;
using daug::testing::RowMatrix;

FaissSearch make(FaissIndexType type, std::function<void(FaissSearchOptions&)> set = {}, uint64_t seed = 7) {
  FaissSearchOptions o;
  o.type = type;
  if (set) set(o);
  return FaissSearch(o, "search", seed);
}

/// A VectorSearch built from TOML through the core (PluginLoader over the built plugins + Experiment).
std::shared_ptr<VectorSearch> from_toml(const std::string& toml, daug::testing::TempDir& run) {
  static daug::core::PluginLoader* loader = [] {
    auto* l = new daug::core::PluginLoader();  // never destroyed: plugin libraries are never unloaded
    for (const char* p : {"search_exact", "search_faiss"})
      l->load_library(std::filesystem::path(DAUG_TEST_PLUGIN_DIR) / ("libdaug-plugin-" + std::string(p) + ".so"));
    return l;
  }();
  auto doc = daug::core::parse_config(toml, "inline.toml", {}, run.path());
  static std::vector<std::unique_ptr<daug::core::Experiment>> keep;  // components live as long as their experiment
  keep.push_back(std::make_unique<daug::core::Experiment>(*loader, doc, run.path()));
  return keep.back()->component<VectorSearch>("search");
}

/// Every returned score is the float inner product of the query and the returned row.
void expect_true_scores(const std::vector<SearchHits>& got, const RowMatrix& db, const RowMatrix& q) {
  for (size_t i = 0; i < got.size(); ++i)
    for (size_t j = 0; j < got[i].rows.size(); ++j) {
      const int64_t r = got[i].rows[j];
      ASSERT_GE(r, 0);
      ASSERT_LT(r, db.rows);
      double s = 0;
      for (int64_t c = 0; c < db.dim; ++c) s += static_cast<double>(q.row(static_cast<int64_t>(i))[c]) * db.row(r)[c];
      EXPECT_NEAR(got[i].scores[j], s, 1e-4) << "query " << i << " hit " << j << " (row " << r << ")";
      if (j > 0) EXPECT_GE(got[i].scores[j - 1], got[i].scores[j]) << "query " << i << ": not sorted by score";
    }
}

TEST(FaissSearch, FlatReturnsTheExactRowsAndScores) {
  const RowMatrix db = gaussian_rows(2000, 32, 1), q = gaussian_rows(40, 32, 2);
  const auto truth = brute_force_search(db, q, 10);
  auto s = make(FaissIndexType::flat);
  s.add(db.view());
  EXPECT_EQ(s.size(), 2000);
  EXPECT_EQ(s.dim(), 32);
  const auto got = s.search(q.view(), 10);
  ASSERT_EQ(got.size(), truth.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].rows, truth[i].rows) << "query " << i;
  expect_true_scores(got, db, q);

  // The same rows as the `exact` plugin, both built from TOML as `daug query` builds [search].
  daug::testing::TempDir run;
  auto exact = from_toml("[search]\nplugin = \"exact\"\n", run);
  auto flat = from_toml("[search]\nplugin = \"faiss\"\ntype = \"flat\"\n", run);
  exact->add(db.view());
  flat->add(db.view());
  for (int64_t k : {1, 10, 100}) {
    const auto a = exact->search(q.view(), k), b = flat->search(q.view(), k);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].rows, b[i].rows) << "k=" << k << " query " << i;
  }
}

TEST(FaissSearch, FlatTiesAtTheKthPlaceAreFaissChoiceButScoresAndOrderAreExact) {
  // Entries in {-1, 0, 1}, 3 columns: at most 27 distinct rows among 400, integer scores: ties everywhere. The
  // scores at every position are the brute force's; rows above the k-th score are the same rows in the same order;
  // among the rows tied with the k-th score FAISS keeps its own choice (not always the lowest rows: documented in
  // README.md), each of them really tied, in row order.
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> u(-1, 1);
  RowMatrix db{std::vector<float>(400 * 3), 400, 3}, q{std::vector<float>(30 * 3), 30, 3};
  for (auto& v : db.values) v = static_cast<float>(u(rng));
  for (auto& v : q.values) v = static_cast<float>(u(rng));
  auto s = make(FaissIndexType::flat);
  s.add(db.view());
  const auto all = brute_force_search(db, q, 400);
  for (int64_t k : {1, 7, 50}) {
    const auto got = s.search(q.view(), k), truth = brute_force_search(db, q, k);
    for (size_t i = 0; i < got.size(); ++i) {
      SCOPED_TRACE("k=" + std::to_string(k) + " query " + std::to_string(i));
      ASSERT_EQ(got[i].scores, truth[i].scores);
      const float kth = truth[i].scores.back();
      for (size_t j = 0; j < got[i].rows.size(); ++j) {
        if (truth[i].scores[j] > kth) {
          EXPECT_EQ(got[i].rows[j], truth[i].rows[j]) << "hit " << j;
        } else {
          const auto& a = all[i];
          const auto pos = std::find(a.rows.begin(), a.rows.end(), got[i].rows[j]) - a.rows.begin();
          EXPECT_EQ(a.scores[static_cast<size_t>(pos)], kth) << "hit " << j << ": row " << got[i].rows[j];
          if (j > 0 && got[i].scores[j - 1] == got[i].scores[j]) EXPECT_LT(got[i].rows[j - 1], got[i].rows[j]);
        }
      }
    }
  }
}

TEST(FaissSearch, KLargerThanTheDatabase) {
  const RowMatrix db = gaussian_rows(7, 8, 3), q = gaussian_rows(3, 8, 4);
  for (auto type : {FaissIndexType::flat, FaissIndexType::hnsw}) {
    auto s = make(type);
    s.add(db.view());
    const auto got = s.search(q.view(), 20);
    const auto truth = brute_force_search(db, q, 20);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].rows, truth[i].rows) << kFaissIndexTypes.name(type) << " query " << i << ": all 7 rows";
  }
  // IVF may find fewer than k when its probed lists hold fewer rows: FAISS's -1 labels are dropped.
  auto ivf = make(FaissIndexType::ivf_flat, [](auto& o) {
    o.nlist = 7;
    o.nprobe = 1;
  });
  ivf.add(db.view());
  for (const auto& h : ivf.search(q.view(), 20)) {
    EXPECT_GE(h.rows.size(), 1u);
    EXPECT_LE(h.rows.size(), 7u);
    for (int64_t r : h.rows) EXPECT_GE(r, 0) << "a -1 label leaked";
  }
}

TEST(FaissSearch, ApproximateIndexesReachRecallOnClusteredData) {
  // 6000 unit vectors in 64 dimensions around 40 centres; queries from the same mixture.
  const RowMatrix db = clustered_unit_rows(6000, 64, 40, 0.1f, 5), q = clustered_unit_rows(100, 64, 40, 0.1f, 6);
  const auto truth = brute_force_search(db, q, 10);
  struct Case {
    const char* name;
    FaissIndexType type;
    std::function<void(FaissSearchOptions&)> set;
    double min_recall;
  };
  const std::vector<Case> cases = {
      {"ivf nlist=64 nprobe=8", FaissIndexType::ivf_flat,
       [](auto& o) {
         o.nlist = 64;
         o.nprobe = 8;
       },
       0.9},
      {"ivf nprobe=nlist (exhaustive)", FaissIndexType::ivf_flat,
       [](auto& o) {
         o.nlist = 16;
         o.nprobe = 16;
       },
       1.0},
      {"ivf default nlist, train_rows=2000", FaissIndexType::ivf_flat, [](auto& o) { o.train_rows = 2000; }, 0.8},
      {"hnsw defaults", FaissIndexType::hnsw, {}, 0.95},
      {"hnsw M=8 ef_search=16", FaissIndexType::hnsw,
       [](auto& o) {
         o.M = 8;
         o.ef_search = 16;
       },
       0.7},
  };
  for (const auto& c : cases) {
    auto s = make(c.type, c.set);
    s.add(db.view());
    const auto got = s.search(q.view(), 10);
    const double r = recall(got, truth);
    EXPECT_GE(r, c.min_recall) << c.name << ": recall@10 " << r;
    expect_true_scores(got, db, q);
    std::printf("[ recall   ] %s: recall@10 = %.3f (%s)\n", c.name, r, s.describe().c_str());
  }
  auto defaults = make(FaissIndexType::ivf_flat, [](auto& o) { o.train_rows = 2000; });
  defaults.add(db.view());
  EXPECT_EQ(defaults.nlist(), std::llround(4 * std::sqrt(6000.0))) << "unset nlist: round(4*sqrt(rows))";
  EXPECT_EQ(defaults.nprobe(), kFaissDefaultNprobe);
}

TEST(FaissSearch, ReproducibleForASeed) {
  const RowMatrix db = clustered_unit_rows(3000, 32, 20, 0.15f, 7), q = clustered_unit_rows(60, 32, 20, 0.15f, 8);
  auto ivf = [&](int64_t seed) {
    auto s = make(FaissIndexType::ivf_flat, [&](auto& o) {
      o.nlist = 32;
      o.nprobe = 1;
      o.seed = seed;
      o.train_rows = 1000;
    });
    s.add(db.view());
    return s.search(q.view(), 10);
  };
  auto hnsw = [&](int64_t seed) {
    auto s = make(FaissIndexType::hnsw, [&](auto& o) {
      o.M = 4;
      o.ef_search = 10;
      o.seed = seed;
    });
    s.add(db.view());
    return s.search(q.view(), 10);
  };
  auto same = [](const std::vector<SearchHits>& a, const std::vector<SearchHits>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].rows != b[i].rows || a[i].scores != b[i].scores) return false;
    return true;
  };
  EXPECT_TRUE(same(ivf(1), ivf(1))) << "ivf_flat: same seed, different results";
  EXPECT_FALSE(same(ivf(1), ivf(2))) << "ivf_flat: the seed has no effect (k-means / training sample)";
  EXPECT_TRUE(same(hnsw(1), hnsw(1))) << "hnsw: same seed, different results (one thread)";
  // The seed reaches FAISS: another seed changes some approximate result.
  EXPECT_FALSE(same(hnsw(1), hnsw(2))) << "hnsw: the seed has no effect (node levels)";
}

TEST(FaissSearch, SearchParamsChangeWithoutRebuildingLikeAFreshIndex) {
  // set_search_params() on a built index gives the results of an index built with those parameters.
  const RowMatrix db = clustered_unit_rows(3000, 32, 20, 0.15f, 9), q = clustered_unit_rows(50, 32, 20, 0.15f, 10);
  auto same = [](const std::vector<SearchHits>& a, const std::vector<SearchHits>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].rows != b[i].rows || a[i].scores != b[i].scores) return false;
    return true;
  };
  auto ivf = [&](int64_t nprobe) {
    return make(FaissIndexType::ivf_flat, [&](auto& o) {
      o.nlist = 30;
      o.nprobe = nprobe;
      o.seed = 3;
    });
  };
  auto a = ivf(1), b = ivf(6);
  a.add(db.view());
  b.add(db.view());
  const auto before = a.search(q.view(), 10);
  a.set_search_params(6, std::nullopt);
  EXPECT_EQ(a.nprobe(), 6);
  EXPECT_FALSE(same(before, a.search(q.view(), 10))) << "nprobe 1 -> 6 changed nothing";
  EXPECT_TRUE(same(a.search(q.view(), 10), b.search(q.view(), 10))) << "nprobe set after add() != nprobe built in";
  auto hnsw = [&](int64_t ef) {
    return make(FaissIndexType::hnsw, [&](auto& o) {
      o.M = 4;
      o.ef_search = ef;
      o.seed = 3;
    });
  };
  auto c = hnsw(2), e = hnsw(40);
  c.add(db.view());
  e.add(db.view());
  const auto low = c.search(q.view(), 10);
  c.set_search_params(std::nullopt, 40);
  EXPECT_FALSE(same(low, c.search(q.view(), 10))) << "ef_search 2 -> 40 changed nothing";
  EXPECT_TRUE(same(c.search(q.view(), 10), e.search(q.view(), 10))) << "ef_search set after add() != built in";
  expect_error_contains([&] { a.set_search_params(31, std::nullopt); },
                        {"nprobe must be in [1, nlist = 30]", "got 31"});
  expect_error_contains([&] { c.set_search_params(4, std::nullopt); }, {"nprobe applies to type = \"ivf_flat\""});
  expect_error_contains([&] { a.set_search_params(std::nullopt, 8); }, {"ef_search applies to type = \"hnsw\""});
}

TEST(FaissSearch, ErrorsNameTheKeyAndWhatWasFound) {
  const RowMatrix db = gaussian_rows(50, 8, 9);
  // nlist > rows: known only in add(); the message names the key's file:line and both numbers.
  daug::testing::TempDir run;
  auto s = from_toml("[search]\nplugin = \"faiss\"\ntype = \"ivf_flat\"\nnlist = 100\n", run);
  EXPECT_THROW(s->add(db.view()), ConfigError);
  expect_error_contains(
      [&] { from_toml("[search]\nplugin = \"faiss\"\ntype = \"ivf_flat\"\nnlist = 100\n", run)->add(db.view()); },
      {"inline.toml:4", "[search].nlist", "= 100", "the database has 50 rows"});
  // Keys of another index type.
  expect_error_contains([&] { from_toml("[search]\nplugin = \"faiss\"\ntype = \"hnsw\"\nnprobe = 4\n", run); },
                        {"inline.toml:4", "[search].nprobe", "applies to type = \"ivf_flat\"", "type = \"hnsw\""});
  expect_error_contains([&] { from_toml("[search]\nplugin = \"faiss\"\nM = 16\n", run); },
                        {"[search].M", "applies to type = \"hnsw\"", "type = \"flat\""});
  expect_error_contains([&] { from_toml("[search]\nplugin = \"faiss\"\ntype = \"ivf\"\n", run); },
                        {"inline.toml:3", "'ivf'", "flat, ivf_flat, hnsw"});
  expect_error_contains(
      [&] { from_toml("[search]\nplugin = \"faiss\"\ntype = \"ivf_flat\"\nnlist = 4\nnprobe = 5\n", run); },
      {"[search].nprobe", "= 5", "must be <= nlist = 4"});
  expect_error_contains([&] { make(FaissIndexType::ivf_flat, [](auto& o) { o.train_rows = 60; }).add(db.view()); },
                        {"[search].train_rows", "= 60", "the database has 50 rows"});
  expect_error_contains(
      [&] {
        make(FaissIndexType::ivf_flat, [](auto& o) {
          o.nlist = 20;
          o.train_rows = 10;
        });
      },
      {"[search].train_rows", "must be >= nlist = 20"});
  EXPECT_THROW(make(FaissIndexType::hnsw, [](auto& o) { o.M = 1; }), ConfigError);

  auto flat = make(FaissIndexType::flat);
  expect_error_contains([&] { flat.search(db.view(), 3); }, {"before add()"});
  flat.add(db.view());
  expect_error_contains([&] { flat.search(gaussian_rows(2, 5, 1).view(), 3); }, {"dimension 8", "got 5"});
  EXPECT_THROW(flat.search(db.view(), 0), ConfigError);
  expect_error_contains([&] { flat.add(db.view()); }, {"already called with 50 rows"});
  RowMatrix nan_db = gaussian_rows(6, 4, 13);
  nan_db.values[5 * 4 + 1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(make(FaissIndexType::hnsw).add(nan_db.view()), DataError);
  expect_error_contains([&] { make(FaissIndexType::hnsw).add(nan_db.view()); }, {"database row 5", "column 1", "nan"});
}

}  // namespace
}  // namespace daug::plugins
