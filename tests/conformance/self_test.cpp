// The contract checks can fail: each is run on a correct fake (no failure) and on a deliberately broken fixture
// (the check must report the breach). Covers Trainable (non-atomic load_state, aliasing), Source (duplicate ids,
// bad labels, missing image), Generator (guidance path that is not the reconstruction at scale 0) and Stage
// (a second run that rewrites a cache file or runs a stage again) and VectorSearch (unordered ties, an aliased
// database, a missing dimension check).
#include "conformance.h"

#include "search_reference.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/labels.h>

#include <ATen/ATen.h>
#include <gtest/gtest-spi.h>

#include <chrono>
#include <functional>

namespace daug::conformance {
namespace {

/// Failure messages `f` reports (intercepted, so they do not fail this test).
std::vector<std::string> failures_of(const std::function<void()>& f) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    f();
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i)
    if (results.GetTestPartResult(i).failed()) out.emplace_back(results.GetTestPartResult(i).message());
  return out;
}

::testing::AssertionResult reports(const std::vector<std::string>& failures, const std::string& needle) {
  for (const auto& f : failures)
    if (f.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure() << "no failure mentions '" << needle << "'; failures:";
  for (const auto& f : failures) r << "\n  " << f;
  return r;
}

// ---- Trainable ----------------------------------------------------------------------------------------------

enum class LoadBug { none, copies_before_checking, aliases, wrong_error_type };

class FakeTrainable final : public Trainable {
 public:
  explicit FakeTrainable(LoadBug bug) : bug_(bug) {
    at::manual_seed(0);
    state_ = {{"a.weight", at::randn({3, 2})}, {"a.bias", at::randn({3})}, {"b.weight", at::randn({2, 3})}};
  }
  std::vector<at::Tensor> parameters() override { return {}; }
  NamedTensors state() override { return state_; }
  void load_state(const NamedTensors& src) override {
    switch (bug_) {
      case LoadBug::none:
        copy_state_checked(state_, src, "fake");
        return;
      case LoadBug::copies_before_checking:  // validates key by key while copying: earlier keys already changed
        for (auto& [k, t] : state_) {
          const at::Tensor* s = nullptr;
          for (const auto& [sk, st] : src)
            if (sk == k) s = &st;
          if (!s || s->sizes() != t.sizes()) throw DataError("fake: bad tensor '" + k + "'");
          t.copy_(*s);
        }
        return;
      case LoadBug::aliases:  // keeps the caller's tensors instead of copying them
        copy_state_checked(state_, src, "fake");
        state_ = src;
        return;
      case LoadBug::wrong_error_type:
        if (src.size() != state_.size()) throw std::runtime_error("fake: wrong number of tensors");
        copy_state_checked(state_, src, "fake");
        return;
    }
  }
  void set_training(bool) override {}

 private:
  LoadBug bug_;
  NamedTensors state_;
};

NamedTensors misshaped_last(Trainable& t) {
  auto donor = perturbed_state(t.state(), 1);
  donor.back().second = at::zeros({7});
  return donor;
}

TEST(ContractSelfTest, TrainableChecks) {
  // A correct Trainable passes.
  FakeTrainable ok(LoadBug::none);
  EXPECT_TRUE(failures_of([&] { check_state_round_trip(ok); }).empty());
  EXPECT_TRUE(failures_of([&] { check_load_state_rejects(ok, misshaped_last(ok), "b.weight", "misshaped"); }).empty());
  auto donor = perturbed_state(ok.state(), 2);
  donor.pop_back();
  EXPECT_TRUE(failures_of([&] { check_load_state_rejects(ok, donor, "b.weight", "missing"); }).empty());

  // A load_state that validates while copying leaves the component half-loaded.
  FakeTrainable broken(LoadBug::copies_before_checking);
  EXPECT_TRUE(reports(failures_of([&] { check_load_state_rejects(broken, misshaped_last(broken), "b.weight", "x"); }),
                      "the component changed although load_state failed"));

  // A load_state that keeps the caller's tensors instead of copying them.
  FakeTrainable aliasing(LoadBug::aliases);
  EXPECT_TRUE(reports(failures_of([&] { check_state_round_trip(aliasing); }), "aliasing"));

  // A load_state that throws something other than daug::DataError.
  FakeTrainable wrong_type(LoadBug::wrong_error_type);
  auto extra = perturbed_state(wrong_type.state(), 3);
  extra.emplace_back("extra", at::zeros({1}));
  EXPECT_TRUE(reports(failures_of([&] { check_load_state_rejects(wrong_type, extra, "extra", "x"); }),
                      "other than daug::DataError"));
}

// ---- VectorSearch ---------------------------------------------------------------------------------------------

enum class SearchBug { none, ties_by_row_descending, keeps_callers_buffer, no_dim_check, approximate_misses };

/// A brute-force search (tests/support/search_reference.h) with one deliberate bug.
class FakeSearch final : public VectorSearch {
 public:
  explicit FakeSearch(SearchBug bug) : bug_(bug) {}
  void add(const FloatRows& db) override {
    if (bug_ == SearchBug::keeps_callers_buffer) {
      alias_ = db;
    } else {
      db_ = {std::vector<float>(db.data, db.data + db.rows * db.dim), db.rows, db.dim};
    }
    rows_ = db.rows;
    dim_ = db.dim;
  }
  std::vector<SearchHits> search(const FloatRows& q, int64_t k) const override {
    if (rows_ == 0) throw Error("fake: search before add");
    if (k < 1) throw Error("fake: k < 1");
    if (bug_ != SearchBug::no_dim_check && q.dim != dim_)
      throw DataError("fake: dimension " + std::to_string(dim_) + " expected, got " + std::to_string(q.dim));
    daug::testing::RowMatrix db = db_;
    if (bug_ == SearchBug::keeps_callers_buffer)
      db = {std::vector<float>(alias_.data, alias_.data + rows_ * dim_), rows_, dim_};
    daug::testing::RowMatrix qm{std::vector<float>(q.data, q.data + q.rows * std::min(q.dim, dim_)), q.rows,
                                std::min(q.dim, dim_)};
    if (q.dim != dim_) return std::vector<SearchHits>(static_cast<size_t>(q.rows));
    auto out = daug::testing::brute_force_search(db, qm, k);
    for (auto& h : out) {
      if (bug_ == SearchBug::ties_by_row_descending)
        for (size_t j = 0; j + 1 < h.rows.size(); ++j)
          if (h.scores[j] == h.scores[j + 1] && h.rows[j] < h.rows[j + 1]) std::swap(h.rows[j], h.rows[j + 1]);
      if (bug_ == SearchBug::approximate_misses && h.rows.size() > 1) {  // the second-best row is missed
        h.rows.erase(h.rows.begin() + 1);
        h.scores.erase(h.scores.begin() + 1);
      }
    }
    return out;
  }
  int64_t size() const override { return rows_; }
  int64_t dim() const override { return dim_; }
  std::string describe() const override { return "fake_search"; }

 private:
  SearchBug bug_;
  daug::testing::RowMatrix db_;
  FloatRows alias_;
  int64_t rows_ = 0, dim_ = 0;
};

TEST(ContractSelfTest, VectorSearchChecks) {
  FakeSearch ok(SearchBug::none);
  EXPECT_TRUE(failures_of([&] { check_vector_search(ok, true); }).empty());
  FakeSearch misses(SearchBug::approximate_misses);  // fine for an approximate search, not for an exact one
  EXPECT_TRUE(failures_of([&] { check_vector_search(misses, false); }).empty());
  FakeSearch misses_exact(SearchBug::approximate_misses);
  EXPECT_TRUE(reports(failures_of([&] { check_vector_search(misses_exact, true); }), "not the exact top-k"));
  FakeSearch ties(SearchBug::ties_by_row_descending);
  EXPECT_TRUE(reports(failures_of([&] { check_vector_search(ties, false); }), "equal scores not ordered by row"));
  FakeSearch alias(SearchBug::keeps_callers_buffer);
  EXPECT_TRUE(reports(failures_of([&] { check_vector_search(alias, false); }), "was the database copied?"));
  FakeSearch no_dim(SearchBug::no_dim_check);
  EXPECT_TRUE(reports(failures_of([&] { check_vector_search(no_dim, false); }), "must throw"));
}

// ---- Source -------------------------------------------------------------------------------------------------

class FakeSource final : public Source {
 public:
  explicit FakeSource(std::vector<Sample> s) : samples_(std::move(s)), grouping_(SuperClassGrouping::released()) {}
  const std::vector<Sample>& samples() const override { return samples_; }
  const SuperClassGrouping& superclasses() const override { return grouping_; }
  std::string describe() const override { return "fake_source"; }

 private:
  std::vector<Sample> samples_;
  SuperClassGrouping grouping_;
};

std::vector<Sample> good_samples(const std::filesystem::path& image) {
  std::vector<Sample> out;
  int i = 0;
  for (const char* sp : {"train", "train", "val", "test"}) {
    Sample s;
    s.id = "img" + std::to_string(i++);
    s.image = image;
    s.labels.assign(14, 0.f);
    s.split = sp;
    out.push_back(s);
  }
  return out;
}

TEST(ContractSelfTest, SourceChecks) {
  daug::testing::TempDir d;
  daug::testing::write_text(d / "x.png", "not decoded by the contract");
  FakeSource ok(good_samples(d / "x.png"));
  auto passes = failures_of([&] { check_source(ok); });
  EXPECT_TRUE(passes.empty()) << (passes.empty() ? std::string() : passes.front());
  auto dup = good_samples(d / "x.png");
  dup[3].id = dup[0].id;
  EXPECT_TRUE(reports(failures_of([&] { check_source(FakeSource(dup)); }), "duplicate id 'img0'"));
  auto labels = good_samples(d / "x.png");
  labels[1].labels.pop_back();
  labels[2].labels[0] = 0.5f;
  auto f = failures_of([&] { check_source(FakeSource(labels)); });
  EXPECT_TRUE(reports(f, "labels must have 14 values"));
  EXPECT_TRUE(reports(f, "label value 0.5"));
  auto missing = good_samples(d / "x.png");
  missing[2].image = d / "gone.png";
  EXPECT_TRUE(reports(failures_of([&] { check_source(FakeSource(missing)); }), "image does not exist"));
  auto no_val = good_samples(d / "x.png");
  no_val[2].split = "validation";
  EXPECT_TRUE(reports(failures_of([&] { check_source(FakeSource(no_val)); }), "split 'validation'"));
}

// ---- Generator ----------------------------------------------------------------------------------------------

class ScaleGuidance final : public Guidance {
 public:
  explicit ScaleGuidance(double s) : s_(s) {}
  at::Tensor gradient(const GuidanceInput& in) override { return at::ones_like(in.x_t) * s_ * in.direction; }
  std::string describe() const override { return "scale"; }

 private:
  double s_;
};

/// translate = x0 + noise, plus the guidance gradient; `extra_draw` models a guided path that differs from the
/// plain one even at scale 0 (it draws more random numbers).
class FakeGenerator final : public Generator {
 public:
  explicit FakeGenerator(bool extra_draw) : extra_draw_(extra_draw) {}
  int64_t num_timesteps() const override { return 10; }
  std::vector<int64_t> image_shape() const override { return {1, 4, 4}; }
  at::Tensor q_sample(const at::Tensor& x0, const at::Tensor&, const at::Tensor& noise) override { return x0 + noise; }
  at::Tensor training_loss(const at::Tensor& x0, const at::Tensor&) override { return x0.sum() * 0; }
  at::Tensor translate(const TranslateRequest& r) override {
    at::Tensor x = r.x0 + 0.1 * at::randn_like(r.x0);
    if (r.guidance) {
      if (extra_draw_) x = x + 0.01 * at::randn_like(x);
      x = x + r.guidance->gradient({x, at::zeros({x.size(0)}, at::kLong), r.target, r.direction});
    }
    return x;
  }
  std::vector<at::Tensor> parameters() override { return {}; }
  NamedTensors state() override { return {}; }
  void load_state(const NamedTensors&) override {}
  void set_training(bool) override {}
  std::string describe() const override { return "fake_generator"; }

 private:
  bool extra_draw_;
};

TEST(ContractSelfTest, GeneratorZeroGuidanceChecks) {
  ScaleGuidance zero(0.0);
  TranslateRequest r;
  r.x0 = at::rand({2, 1, 4, 4});
  r.target = at::zeros({2}, at::kLong);
  FakeGenerator ok(false);
  EXPECT_TRUE(failures_of([&] { check_zero_guidance_is_reconstruction(ok, zero, r); }).empty());
  FakeGenerator broken(true);
  EXPECT_TRUE(reports(failures_of([&] { check_zero_guidance_is_reconstruction(broken, zero, r); }),
                      "must equal the plain reconstruction"));
}

// ---- Stage --------------------------------------------------------------------------------------------------

TEST(ContractSelfTest, StageSecondRunChecks) {
  daug::testing::TempDir d;
  daug::testing::write_text(d / "train-abc/weights.safetensors", "w");
  daug::testing::write_text(d / "train-abc/.complete", "1 s\n");
  const Snapshot before = snapshot(d.path());
  const std::string cached_log = "stage [train] train(...): cached at /x/train-abc\n";
  EXPECT_TRUE(failures_of([&] { check_second_run_noop(before, snapshot(d.path()), cached_log, {"train"}); }).empty());
  // A stage that re-ran and rewrote its weights on the second run (same size, new mtime).
  std::filesystem::last_write_time(d / "train-abc/weights.safetensors",
                                   std::filesystem::last_write_time(d / "train-abc/weights.safetensors") +
                                       std::chrono::seconds(1));
  const std::string ran_log = "stage [train] train(...) -> /x/train-abc\nstage [train] finished in 0.1 s\n";
  auto f = failures_of([&] { check_second_run_noop(before, snapshot(d.path()), ran_log, {"train"}); });
  EXPECT_TRUE(reports(f, "modified train-abc/weights.safetensors"));
  EXPECT_TRUE(reports(f, "did not report stage [train] as cached"));
  EXPECT_TRUE(reports(f, "ran stage [train] again"));
  daug::testing::write_text(d / "train-abc/summary.txt", "written on a cache hit");
  EXPECT_TRUE(reports(failures_of([&] { check_second_run_noop(before, snapshot(d.path()), cached_log, {"train"}); }),
                      "added train-abc/summary.txt"));
}

}  // namespace
}  // namespace daug::conformance
