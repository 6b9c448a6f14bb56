// search_exact: exact inner-product top-K, blocked matrix multiply + a bounded heap per query.
#include "exact_search.h"

#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace daug::plugins {

void ExactSearchOptions::visit(OptionVisitor& v) {
  v("block_rows", block_rows,
    "database rows per matrix-multiply block (memory: query_rows x block_rows floats of scores at a time)",
    Check::at_least(1));
  v("query_rows", query_rows, "queries per matrix-multiply block", Check::at_least(1));
}

void check_finite_rows(const FloatRows& rows, const std::string& what, const std::string& where) {
  const int64_t n = rows.rows * rows.dim;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(rows.data[i]))
      throw DataError(fmt::format("{}: {} row {} has a non-finite value {} at column {} (rows must be finite)", where,
                                  what, i / rows.dim, rows.data[i], i % rows.dim));
}

namespace {

using Hit = std::pair<float, int64_t>;  // (score, row)

/// The result order of the contract: higher score first, then lower row.
inline bool better(const Hit& a, const Hit& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

/// Bounded heap of the k best hits seen so far; its top (front) is the worst of them.
struct TopK {
  std::vector<Hit> heap;
  void offer(const Hit& h, size_t k) {
    if (heap.size() < k) {
      heap.push_back(h);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(h, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = h;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
};

}  // namespace

ExactSearch::ExactSearch(Options opts, std::string table) : opts_(std::move(opts)), table_(std::move(table)) {
  check_options(opts_, "[" + table_ + "]");
}

std::shared_ptr<VectorSearch> ExactSearch::create(Options opts, BuildContext& ctx) {
  return std::make_shared<ExactSearch>(std::move(opts), ctx.table_or("search"));
}

void ExactSearch::add(const FloatRows& database) {
  const std::string where = "[" + table_ + "] exact search add()";
  DAUG_CHECK(rows_ == 0, where, ": add() takes every database row in one call, but it was already called with ", rows_,
             " rows");
  DAUG_CHECK_AS(DataError, database.rows >= 1 && database.dim >= 1, where,
                ": the database must have >= 1 row of dimension >= 1, but got ", database.rows, " x ", database.dim);
  DAUG_CHECK_AS(DataError, database.data != nullptr, where, ": database data is null for ", database.rows, " x ",
                database.dim, " floats");
  check_finite_rows(database, "database", where);
  db_ = at::empty({database.rows, database.dim}, at::kFloat);
  std::memcpy(db_.data_ptr<float>(), database.data, sizeof(float) * database.rows * database.dim);
  rows_ = database.rows;
  dim_ = database.dim;
}

std::vector<SearchHits> ExactSearch::search(const FloatRows& queries, int64_t k) const {
  const std::string where = "[" + table_ + "] exact search";
  DAUG_CHECK(rows_ > 0, where, ": search() before add(): the index holds no rows yet");
  DAUG_CHECK_AS(ConfigError, k >= 1, where, ": k must be >= 1, but got ", k);
  DAUG_CHECK_AS(DataError, queries.dim == dim_, where, ": queries must have dimension ", dim_,
                " (the database's), but got ", queries.dim);
  DAUG_CHECK_AS(DataError, queries.rows >= 0 && (queries.rows == 0 || queries.data != nullptr), where,
                ": queries must be >= 0 rows with data, but got ", queries.rows, " rows and ",
                queries.data ? "data" : "null data");
  check_finite_rows(queries, "query", where);
  const int64_t nq = queries.rows;
  const size_t kk = static_cast<size_t>(std::min(k, rows_));
  std::vector<TopK> top(static_cast<size_t>(nq));
  // from_blob does not copy: the caller's buffer outlives this call, and it is only read.
  const at::Tensor q = at::from_blob(const_cast<float*>(queries.data), {nq, dim_}, at::kFloat);
  // Database blocks outside, query blocks inside: each database block is read from memory once per search().
  for (int64_t r0 = 0; r0 < rows_; r0 += opts_.block_rows) {
    const int64_t nr = std::min(opts_.block_rows, rows_ - r0);
    const at::Tensor block_t = db_.narrow(0, r0, nr).t();
    for (int64_t q0 = 0; q0 < nq; q0 += opts_.query_rows) {
      const int64_t nb = std::min(opts_.query_rows, nq - q0);
      const at::Tensor scores = at::mm(q.narrow(0, q0, nb), block_t).contiguous();  // [nb, nr]
      const float* s = scores.data_ptr<float>();
      at::parallel_for(0, nb, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          TopK& t = top[static_cast<size_t>(q0 + i)];
          const float* row = s + i * nr;
          // Most scores lose to the current k-th: skip them before the heap (ties go to offer()).
          float kth = t.heap.size() == kk ? t.heap.front().first : -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < nr; ++j) {
            if (row[j] < kth) continue;
            t.offer({row[j], r0 + j}, kk);
            if (t.heap.size() == kk) kth = t.heap.front().first;
          }
        }
      });
    }
  }
  std::vector<SearchHits> out(static_cast<size_t>(nq));
  at::parallel_for(0, nq, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      auto& h = top[static_cast<size_t>(i)].heap;
      std::sort_heap(h.begin(), h.end(), better);  // best first
      auto& o = out[static_cast<size_t>(i)];
      o.rows.reserve(h.size());
      o.scores.reserve(h.size());
      for (const auto& [score, row] : h) {
        o.rows.push_back(row);
        o.scores.push_back(score);
      }
    }
  });
  return out;
}

std::string ExactSearch::describe() const {
  return fmt::format("exact(block_rows={}, query_rows={}, rows={}, dim={})", opts_.block_rows, opts_.query_rows, rows_,
                     dim_);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::VectorSearch, "exact", daug::plugins::ExactSearch,
                     "exact inner-product top-K: blocked matrix multiply + a bounded heap per query (default)")
