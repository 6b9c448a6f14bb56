// The exact search against an independent brute force (tests/support/search_reference.h: every row scored in
// double, fully sorted): the same rows in the same order and the same scores, across block sizes, ties, k > n,
// threads, and its errors.
#include "exact_search.h"

#include <daug/error.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "search_reference.h"
#include "test_support.h"

namespace daug::plugins {
namespace {

using daug::testing::brute_force_search;
using daug::testing::expect_error_contains;
using daug::testing::gaussian_rows;
using daug::testing::RowMatrix;

ExactSearch make(int64_t block_rows = 65536, int64_t query_rows = 256) {
  ExactSearchOptions o;
  o.block_rows = block_rows;
  o.query_rows = query_rows;
  return ExactSearch(o, "search");
}

/// Rows with small integer entries: every inner product is an integer, exact in float32, so scores tie often and
/// BLAS rounding cannot reorder anything.
RowMatrix integer_rows(int64_t rows, int64_t dim, int lo, int hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> u(lo, hi);
  RowMatrix m{std::vector<float>(static_cast<size_t>(rows * dim)), rows, dim};
  for (auto& v : m.values) v = static_cast<float>(u(rng));
  return m;
}

void expect_same_hits(const std::vector<SearchHits>& got, const std::vector<SearchHits>& want, float score_tol,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].rows, want[i].rows) << what << ": query " << i;
    ASSERT_EQ(got[i].scores.size(), want[i].scores.size()) << what << ": query " << i;
    for (size_t j = 0; j < want[i].scores.size(); ++j)
      EXPECT_NEAR(got[i].scores[j], want[i].scores[j], score_tol) << what << ": query " << i << " hit " << j;
  }
}

TEST(ExactSearch, MatchesBruteForceOnGaussianRowsWithBlocksSmallerThanTheDatabase) {
  const RowMatrix db = gaussian_rows(1000, 24, 1), q = gaussian_rows(37, 24, 2);
  const int64_t k = 10;
  const auto want = brute_force_search(db, q, k + 1);
  // The fixture has no near-ties in any top-(k+1), so float32 rounding cannot reorder or swap rows.
  for (const auto& h : want)
    for (size_t j = 0; j + 1 < h.scores.size(); ++j) ASSERT_GT(h.scores[j] - h.scores[j + 1], 1e-4);
  auto truth = want;
  for (auto& h : truth) {
    h.rows.pop_back();
    h.scores.pop_back();
  }
  for (auto [block, qrows] : std::vector<std::pair<int64_t, int64_t>>{{97, 5}, {1000, 256}, {1, 1}, {65536, 3}}) {
    auto s = make(block, qrows);
    s.add(db.view());
    EXPECT_EQ(s.size(), 1000);
    EXPECT_EQ(s.dim(), 24);
    expect_same_hits(s.search(q.view(), k), truth, 1e-4f,
                     "block_rows=" + std::to_string(block) + " query_rows=" + std::to_string(qrows));
  }
}

TEST(ExactSearch, TiesAreOrderedByRowAscendingExactlyAsTheBruteForce) {
  // 400 rows of 3 entries in {-1, 0, 1}: at most 27 distinct vectors, so nearly every score ties.
  const RowMatrix db = integer_rows(400, 3, -1, 1, 3), q = integer_rows(20, 3, -2, 2, 4);
  for (int64_t k : {1, 5, 30, 399}) {
    for (int64_t block : {7, 400}) {
      auto s = make(block, 3);
      s.add(db.view());
      expect_same_hits(s.search(q.view(), k), brute_force_search(db, q, k), 0.f,
                       "k=" + std::to_string(k) + " block_rows=" + std::to_string(block));
    }
  }
  // The plain case: identical rows tie, lower row first.
  RowMatrix dup{{1, 0, 0, 1, 1, 0, 0, 1}, 4, 2};  // rows 0 and 2 are (1, 0); rows 1 and 3 are (0, 1)
  auto s = make(1);
  s.add(dup.view());
  RowMatrix one{{1, 0}, 1, 2};
  auto hits = s.search(one.view(), 4);
  EXPECT_EQ(hits[0].rows, (std::vector<int64_t>{0, 2, 1, 3}));
  EXPECT_EQ(hits[0].scores, (std::vector<float>{1, 1, 0, 0}));
}

TEST(ExactSearch, KLargerThanTheDatabaseReturnsEveryRowSorted) {
  const RowMatrix db = integer_rows(7, 4, -3, 3, 5), q = integer_rows(3, 4, -3, 3, 6);
  auto s = make(2);
  s.add(db.view());
  const auto got = s.search(q.view(), 20);
  for (const auto& h : got) EXPECT_EQ(h.rows.size(), 7u) << "min(k, size()) hits";
  expect_same_hits(got, brute_force_search(db, q, 20), 0.f, "k=20 > 7 rows");
  EXPECT_TRUE(s.search(RowMatrix{{}, 0, 4}.view(), 3).empty()) << "no queries, no results";
}

TEST(ExactSearch, ThreadsDoNotChangeTheResults) {
  const RowMatrix db = integer_rows(3000, 16, -4, 4, 7), q = integer_rows(50, 16, -4, 4, 8);
  const auto want = brute_force_search(db, q, 25);
  const int before = at::get_num_threads();
  for (int t : {1, 2, 3}) {
    at::set_num_threads(t);
    auto s = make(512, 16);
    s.add(db.view());
    expect_same_hits(s.search(q.view(), 25), want, 0.f, "threads=" + std::to_string(t));
  }
  at::set_num_threads(before);
}

TEST(ExactSearch, CopiesTheDatabase) {
  RowMatrix db = integer_rows(50, 5, -3, 3, 9);
  const RowMatrix keep = db, q = integer_rows(4, 5, -3, 3, 10);
  auto s = make();
  s.add(db.view());
  std::fill(db.values.begin(), db.values.end(), 100.f);  // the caller reuses its buffer
  expect_same_hits(s.search(q.view(), 6), brute_force_search(keep, q, 6), 0.f, "after the caller's buffer changed");
}

TEST(ExactSearch, ErrorsSayWhatWasExpectedAndFound) {
  const RowMatrix db = gaussian_rows(10, 8, 11);
  auto s = make();
  expect_error_contains([&] { s.search(gaussian_rows(1, 8, 12).view(), 3); }, {"[search]", "before add()"});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.size(), 0);
  s.add(db.view());
  EXPECT_THROW(s.search(gaussian_rows(2, 5, 12).view(), 3), DataError);
  expect_error_contains([&] { s.search(gaussian_rows(2, 5, 12).view(), 3); }, {"dimension 8", "got 5"});
  EXPECT_THROW(s.search(gaussian_rows(1, 8, 12).view(), 0), ConfigError);
  expect_error_contains([&] { s.search(gaussian_rows(1, 8, 12).view(), -2); }, {"k must be >= 1", "got -2"});
  expect_error_contains([&] { s.add(db.view()); }, {"already called with 10 rows"});

  RowMatrix nan_db = gaussian_rows(6, 4, 13);
  nan_db.values[3 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  auto t = make();
  EXPECT_THROW(t.add(nan_db.view()), DataError);
  expect_error_contains([&] { make().add(nan_db.view()); }, {"database row 3", "column 2", "nan"});
  RowMatrix inf_q = gaussian_rows(3, 8, 14);
  inf_q.values[2 * 8 + 7] = -std::numeric_limits<float>::infinity();
  expect_error_contains([&] { s.search(inf_q.view(), 2); }, {"query row 2", "column 7", "-inf"});
  expect_error_contains([&] { make().add(RowMatrix{{}, 0, 4}.view()); }, {">= 1 row", "0 x 4"});

  ExactSearchOptions bad;
  bad.block_rows = 0;
  EXPECT_THROW(ExactSearch(bad, "search"), ConfigError);
}

TEST(ExactSearch, CreateNamesItsTable) {
  daug::testing::TestContext ctx;
  ctx.set_table("my_search");
  auto s = ExactSearch::create(ExactSearchOptions{}, ctx);
  expect_error_contains([&] { s->search(gaussian_rows(1, 8, 12).view(), 3); }, {"[my_search]"});
}

}  // namespace
}  // namespace daug::plugins
