// Data-parallel training in the Trainer, with threads as ranks (daug::dt::run_thread_ranks; the multi-process
// runs over c10d are tests/ddp): N ranks with the global batch split between them train the model of one process
// with the whole batch, every rank ends with bitwise the same parameters, only rank 0 writes, a resumed N-rank run
// equals an uninterrupted one; the gradient buckets and the state broadcast; per-item random draws that do not
// depend on the micro-batch split.
#include <daug/train/data_parallel.h>
#include <daug/train/losses_csv.h>
#include <daug/train/trainer.h>

#include <daug/batch_part.h>
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/error.h>

#include "test_support.h"
#include "thread_ranks.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <mutex>

using namespace daug;
using namespace daug::train;
namespace dt = daug::testing;

namespace {

// y = x·W + b fitted to a fixed target (item i = row i): the batch loss is the mean of per-item losses.
class Regression : public Trainable {
 public:
  explicit Regression(int64_t n = 12) {
    at::manual_seed(7);
    w_ = at::randn({4, 2}).requires_grad_(true);
    b_ = at::zeros({2}).requires_grad_(true);
    unused_ = at::zeros({3}).requires_grad_(true);
    x_ = at::randn({n, 4});
    target_ = x_.matmul(at::arange(8, at::kFloat).view({4, 2}) / 8.0) + 0.3;
  }
  std::vector<at::Tensor> parameters() override { return {w_, b_, unused_}; }
  NamedTensors state() override { return {{"w", w_}, {"b", b_}, {"unused", unused_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "regression"); }
  void set_training(bool) override {}
  StepOutput loss(const std::vector<int64_t>& items) {
    const at::Tensor idx = at::tensor(items, at::kLong);
    at::Tensor l = (x_.index_select(0, idx).matmul(w_) + b_ - target_.index_select(0, idx)).pow(2).mean();
    return {l, {{"twice", 2.0 * l.detach()}}};
  }
  at::Tensor w_, b_, unused_, x_, target_;
};

TrainerOptions options(const std::filesystem::path& dir, int64_t n = 12, int64_t batch = 6) {
  TrainerOptions o;
  o.what = "ddp";
  o.dataset_size = n;
  o.batch_size = batch;
  o.steps = 6;
  o.lr = 0.05;
  o.seed = 3;
  o.log_every_s = 1e9;
  o.checkpoint_path = dir / "ck.safetensors";
  o.losses_path = dir / "losses.csv";
  return o;
}

double max_rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

// Trains one Regression per rank (built before the threads: its constructor draws) with options `o` whose files
// go to dirs[rank]; returns the models and results.
struct RankRuns {
  std::vector<std::unique_ptr<Regression>> models;
  std::vector<TrainResult> results;
  std::vector<std::vector<size_t>> sizes;  // items per step-function call, per rank
};
RankRuns train_ranks(int world, const std::vector<std::filesystem::path>& dirs,
                     const std::function<void(TrainerOptions&)>& edit = {}, int64_t n = 12, int64_t batch = 6) {
  RankRuns runs;
  for (int r = 0; r < world; ++r) runs.models.push_back(std::make_unique<Regression>(n));
  runs.results.resize(static_cast<size_t>(world));
  runs.sizes.resize(static_cast<size_t>(world));
  dt::run_thread_ranks(world, [&](int r) {
    auto o = options(dirs[static_cast<size_t>(r)], n, batch);
    if (edit) edit(o);
    Regression& m = *runs.models[static_cast<size_t>(r)];
    auto& sizes = runs.sizes[static_cast<size_t>(r)];
    runs.results[static_cast<size_t>(r)] = Trainer(m, o).run([&](const std::vector<int64_t>& i, int64_t) {
      sizes.push_back(i.size());
      return m.loss(i);
    });
  });
  return runs;
}

}  // namespace

// N ranks × batch/N = 1 rank × batch (batch_size is the global batch): weights within 1e-5 relative, bitwise equal
// on every rank, the logged loss the global one; only rank 0 writes. 6 items over 4 ranks are 2+2+1+1 (uneven
// slices weighted by their share), and with accumulate = 2 over 2 ranks each rank runs 2 micro-batches of 3/2.
TEST(DataParallel, RanksWithTheGlobalBatchTrainTheModelOfOneProcess) {
  dt::TempDir d1;
  Regression one;
  auto r1 = Trainer(one, options(d1.path())).run([&](const std::vector<int64_t>& i, int64_t) { return one.loss(i); });
  for (auto [world, k] : std::vector<std::pair<int, int64_t>>{{2, 1}, {3, 1}, {4, 1}, {2, 2}, {2, 3}}) {
    std::vector<dt::TempDir> tmp(static_cast<size_t>(world));
    std::vector<std::filesystem::path> dirs;
    for (auto& t : tmp) dirs.push_back(t.path());
    auto runs = train_ranks(world, dirs, [k = k](TrainerOptions& o) { o.accumulate = k; });
    const std::string what = "world " + std::to_string(world) + " accumulate " + std::to_string(k);
    for (int r = 0; r < world; ++r) {
      const Regression& m = *runs.models[static_cast<size_t>(r)];
      EXPECT_LT(max_rel_diff(m.w_, one.w_), 1e-5) << what << " rank " << r;
      EXPECT_LT(max_rel_diff(m.b_, one.b_), 1e-5) << what << " rank " << r;
      EXPECT_TRUE(m.w_.equal(runs.models[0]->w_)) << what << " rank " << r << " differs from rank 0";
      EXPECT_TRUE(m.b_.equal(runs.models[0]->b_)) << what << " rank " << r << " differs from rank 0";
      EXPECT_FALSE(m.unused_.grad().defined()) << what;  // unused everywhere: no gradient, no update
      EXPECT_EQ(runs.sizes[static_cast<size_t>(r)].size(), static_cast<size_t>(6 * std::min<int64_t>(k, 6 / world)))
          << what;
      EXPECT_EQ(std::filesystem::exists(dirs[static_cast<size_t>(r)] / "losses.csv"), r == 0) << what << " rank " << r;
      EXPECT_EQ(std::filesystem::exists(dirs[static_cast<size_t>(r)] / "ck.safetensors"), r == 0) << what;
      EXPECT_EQ(runs.results[static_cast<size_t>(r)].steps_run, 6);
    }
    if (world == 4) EXPECT_EQ(runs.sizes[3].front(), 1u);  // 2+2+1+1
    auto loss = read_losses(dirs[0] / "losses.csv");
    auto loss1 = read_losses(d1.path() / "losses.csv");
    ASSERT_EQ(loss.size(), loss1.size());
    for (size_t s = 0; s < loss.size(); ++s) EXPECT_NEAR(loss[s], loss1[s], 1e-5 * loss1[s]) << what << " step " << s;
    auto parts = read_column(dirs[0] / "losses.csv", "twice");
    for (size_t s = 0; s < parts.size(); ++s) EXPECT_NEAR(parts[s], 2 * loss[s], 1e-4 * loss[s]) << what;
    EXPECT_NEAR(runs.results[0].first_loss, r1.first_loss, 1e-5 * r1.first_loss) << what;
  }
}

// drop_last = false with 7 items in batches of 3: the last batch of each epoch has 1 item, so rank 1 of 2 has an
// empty slice; it runs a padding micro-batch with weight 0 and the result is still the single process's.
TEST(DataParallel, AShortLastBatchPadsTheEmptyRankWithWeightZero) {
  auto drop = [](TrainerOptions& o) {
    o.drop_last = false;
    o.steps = 0;
    o.epochs = 2;
  };
  dt::TempDir d1;
  Regression one(7);
  auto o = options(d1.path(), 7, 3);
  drop(o);
  Trainer(one, o).run([&](const std::vector<int64_t>& i, int64_t) { return one.loss(i); });
  dt::TempDir a, b;
  auto runs = train_ranks(2, {a.path(), b.path()}, drop, 7, 3);
  EXPECT_EQ(runs.results[0].total_steps, 6);
  EXPECT_EQ(runs.sizes[1], (std::vector<size_t>{1, 1, 1, 1, 1, 1}));  // steps 2 and 5: the padding item
  for (int r = 0; r < 2; ++r) {
    EXPECT_LT(max_rel_diff(runs.models[static_cast<size_t>(r)]->w_, one.w_), 1e-5) << r;
    EXPECT_LT(max_rel_diff(runs.models[static_cast<size_t>(r)]->b_, one.b_), 1e-5) << r;
  }
  EXPECT_TRUE(runs.models[1]->w_.equal(runs.models[0]->w_));
}

// A 2-rank run killed after 3 steps and resumed: rank 0 reads its checkpoint, rank 1 (which starts from a model
// that is not rank 0's and reads nothing) takes rank 0's state; the weights equal the uninterrupted 2-rank run's
// bit for bit.
TEST(DataParallel, AResumedRunRestoresEveryRankFromRankZero) {
  dt::TempDir u0, u1, s0, s1;
  auto full = train_ranks(2, {u0.path(), u1.path()});
  train_ranks(2, {s0.path(), s1.path()}, [](TrainerOptions& o) { o.stop_after = 3; });
  ASSERT_TRUE(std::filesystem::exists(s0.path() / "ck.safetensors"));
  ASSERT_FALSE(std::filesystem::exists(s1.path() / "ck.safetensors"));
  Regression fresh0, fresh1;
  {
    at::NoGradGuard g;
    fresh1.w_.add_(1.0);  // rank 1's own (wrong) starting point: overwritten by rank 0's state
  }
  std::vector<TrainResult> res(2);
  std::vector<Regression*> models{&fresh0, &fresh1};
  dt::run_thread_ranks(2, [&](int r) {
    Regression& m = *models[static_cast<size_t>(r)];
    res[static_cast<size_t>(r)] =
        Trainer(m, options(r == 0 ? s0.path() : s1.path())).run([&](const std::vector<int64_t>& i, int64_t) {
          return m.loss(i);
        });
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(res[static_cast<size_t>(r)].resumed_from, 3) << r;
    EXPECT_EQ(res[static_cast<size_t>(r)].steps_run, 3) << r;
    EXPECT_TRUE(models[static_cast<size_t>(r)]->w_.equal(full.models[0]->w_)) << r;
    EXPECT_TRUE(models[static_cast<size_t>(r)]->b_.equal(full.models[0]->b_)) << r;
  }
  EXPECT_EQ(read_losses(s0.path() / "losses.csv"), read_losses(u0.path() / "losses.csv"));
}

TEST(DataParallel, BatchSmallerThanTheRanksAndTooManyMicroBatchesAreConfigErrors) {
  dt::TempDir a, b;
  Regression m0, m1;
  std::vector<Regression*> m{&m0, &m1};
  auto expect = [&](const std::function<void(TrainerOptions&)>& edit, std::initializer_list<std::string> needles) {
    dt::expect_error_contains(
        [&] {
          dt::run_thread_ranks(2, [&](int r) {
            auto o = options(r == 0 ? a.path() : b.path());
            edit(o);
            Trainer t(*m[static_cast<size_t>(r)], o);
          });
        },
        needles);
  };
  expect([](TrainerOptions& o) { o.batch_size = 1; }, {"batch_size = 1 must be at least the number of ranks (2)"});
  expect([](TrainerOptions& o) { o.accumulate = 4; }, {"accumulate = 4", "batch_size = 6 over 2 ranks gives 3"});
  EXPECT_THROW(dt::run_thread_ranks(2,
                                    [&](int r) {
                                      auto o = options(r == 0 ? a.path() : b.path());
                                      o.batch_size = 1;
                                      Trainer t(*m[static_cast<size_t>(r)], o);
                                    }),
               ConfigError);
}

// A parameter used by some ranks' forward only would get different updates: an error naming the step.
TEST(DataParallel, GradientsDefinedOnSomeRanksOnlyAreAnError) {
  dt::TempDir a, b;
  Regression m0, m1;
  std::vector<Regression*> m{&m0, &m1};
  dt::expect_error_contains(
      [&] {
        dt::run_thread_ranks(2, [&](int r) {
          Regression& model = *m[static_cast<size_t>(r)];
          Trainer(model, options(r == 0 ? a.path() : b.path())).run([&](const std::vector<int64_t>& i, int64_t) {
            StepOutput out = model.loss(i);
            if (r == 1) out.loss = out.loss + model.unused_.sum();
            return out;
          });
        });
      },
      {"at step 0", "1 parameter tensor(s) were defined on some ranks but not on others"});
}

TEST(DataParallel, WholeBatchLossCannotBeSplitIntoMicroBatches) {
  dt::TempDir d;
  Regression m;
  auto o = options(d.path());
  o.accumulate = 2;
  dt::expect_error_contains(
      [&] {
        Trainer(m, o).run([&](const std::vector<int64_t>& i, int64_t) {
          StepOutput out = m.loss(i);
          out.whole_batch = true;
          return out;
        });
      },
      {"whole batch's loss", "accumulate = 2"});
}

// Buckets: float32 and float64 gradients, buckets of 64 bytes (several per dtype), an undefined gradient that stays
// undefined; the sums are those of the ranks' gradients; the values ride along.
TEST(DataParallel, GradientBucketsSumEveryGradientAndTheValues) {
  const int world = 3;
  std::vector<std::vector<at::Tensor>> params(world);
  for (int r = 0; r < world; ++r) {
    at::manual_seed(100 + r);
    for (auto dtype : {at::kFloat, at::kDouble, at::kFloat, at::kFloat}) {
      at::Tensor p = at::zeros({5, 3}, dtype).requires_grad_(true);
      p.mutable_grad() = at::randn({5, 3}, dtype);
      params[static_cast<size_t>(r)].push_back(p);
    }
    params[static_cast<size_t>(r)].push_back(at::zeros({2}).requires_grad_(true));  // no gradient
  }
  std::vector<at::Tensor> expect;
  for (size_t i = 0; i < 4; ++i) {
    at::Tensor s = params[0][i].grad().clone();
    for (int r = 1; r < world; ++r) s += params[static_cast<size_t>(r)][i].grad();
    expect.push_back(s);
  }
  std::vector<at::Tensor> values(world), disagree(world);
  dt::run_thread_ranks(world, [&](int r) {
    values[static_cast<size_t>(r)] = at::tensor(std::vector<double>{1.0 * r, 2.0});
    disagree[static_cast<size_t>(r)] = all_reduce_gradients(params[static_cast<size_t>(r)],
                                                            values[static_cast<size_t>(r)], communicator(), "test", 64);
  });
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < 4; ++i)
      EXPECT_TRUE(params[static_cast<size_t>(r)][i].grad().allclose(expect[i], 1e-6, 1e-6)) << r << " " << i;
    EXPECT_FALSE(params[static_cast<size_t>(r)][4].grad().defined());
    EXPECT_EQ(values[static_cast<size_t>(r)][0].item<double>(), 3.0);
    EXPECT_EQ(values[static_cast<size_t>(r)][1].item<double>(), 6.0);
    EXPECT_EQ(disagree[static_cast<size_t>(r)].item<double>(), 0.0);
  }
}

TEST(DataParallel, BroadcastNamedGivesEveryRankRootsTensors) {
  NamedTensors root{{"model.w", at::arange(6, at::kFloat).view({2, 3})},
                    {"optim.step", at::scalar_tensor(5, at::kLong)},
                    {"a name with spaces", at::tensor(std::vector<double>{0.25, 0.5})},
                    {"rng.cpu", at::arange(10, at::kByte)},
                    {"empty", at::zeros({0, 4})}};
  std::vector<NamedTensors> got(3);
  dt::run_thread_ranks(3, [&](int r) {
    NamedTensors mine = r == 1 ? root : NamedTensors{{"ignored", at::ones({1})}};
    got[static_cast<size_t>(r)] = broadcast_named(mine, 1, communicator(), "test", c10::Device("cpu"));
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(got[static_cast<size_t>(r)].size(), root.size()) << r;
    for (size_t i = 0; i < root.size(); ++i) {
      EXPECT_EQ(got[static_cast<size_t>(r)][i].first, root[i].first);
      EXPECT_EQ(got[static_cast<size_t>(r)][i].second.scalar_type(), root[i].second.scalar_type());
      EXPECT_TRUE(got[static_cast<size_t>(r)][i].second.equal(root[i].second)) << r << " " << root[i].first;
    }
  }
}

// ------------------------------------------------------------------------------------------------ random draws

namespace {
// A regression whose loss draws per-item noise and a per-item weight through the BatchPart functions, so its
// batch gradient depends on which numbers each item gets.
class NoisyRegression : public Regression {
 public:
  StepOutput loss(const std::vector<int64_t>& items) {
    const at::Tensor idx = at::tensor(items, at::kLong);
    const at::Tensor x = x_.index_select(0, idx);
    const at::Tensor t = randint_part(1, 5, x.size(0), at::TensorOptions().dtype(at::kLong));
    const at::Tensor noise = randn_like_part(x);
    const at::Tensor err = (x + 0.3 * noise).matmul(w_) + b_ - target_.index_select(0, idx);
    return {(err.pow(2).sum(1) * t.to(at::kFloat)).mean(), {}};
  }
};
}  // namespace

// accumulate = k equals the unsplit step (within 1e-5) when the per-item draws go through randn_like_part /
// randint_part: every micro-batch starts from the step's generator state, reseeded (train_classifier,
// train_diffusion) or restored (train_clip). Before, each micro-batch continued the generator and drew other
// numbers.
TEST(DataParallel, MicroBatchesDrawTheUnsplitBatchsNumbers) {
  for (bool reseed : {true, false}) {
    dt::TempDir d1;
    NoisyRegression one;
    auto o = options(d1.path());
    o.reseed_each_step = reseed;
    at::manual_seed(11);
    Trainer(one, o).run([&](const std::vector<int64_t>& i, int64_t) { return one.loss(i); });
    const at::Tensor after_one = at::randn({3});
    for (int64_t k : {2, 4}) {
      dt::TempDir d;
      NoisyRegression m;
      auto ok = options(d.path());
      ok.reseed_each_step = reseed;
      ok.accumulate = k;
      at::manual_seed(11);
      Trainer(m, ok).run([&](const std::vector<int64_t>& i, int64_t) { return m.loss(i); });
      EXPECT_LT(max_rel_diff(m.w_, one.w_), 1e-5) << "reseed " << reseed << " k " << k;
      EXPECT_LT(max_rel_diff(m.b_, one.b_), 1e-5) << "reseed " << reseed << " k " << k;
      // The generator ends where the unsplit run left it (the next stage draws the same numbers).
      EXPECT_TRUE(at::randn({3}).equal(after_one)) << "reseed " << reseed << " k " << k;
    }
  }
}

// A rank whose parameters drift from rank 0's (here: rank 1 nudges its weights after every backward) is caught by
// the comparison at the end of the run, naming the rank.
TEST(DataParallel, RanksThatDivergeAreAnErrorAtTheEnd) {
  dt::TempDir a, b;
  Regression m0, m1;
  std::vector<Regression*> m{&m0, &m1};
  dt::expect_error_contains(
      [&] {
        dt::run_thread_ranks(2, [&](int r) {
          Regression& model = *m[static_cast<size_t>(r)];
          Trainer t(model, options(r == 0 ? a.path() : b.path()));
          if (r == 1)
            t.after_backward.push_back([&](Trainer&) {
              at::NoGradGuard g;
              model.b_.add_(1e-3);
            });
          t.run([&](const std::vector<int64_t>& i, int64_t) { return model.loss(i); });
        });
      },
      {"rank 1's model/optimizer/EMA state differs from rank 0's", "the ranks diverged"});
}
