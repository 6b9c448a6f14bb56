// Tests of the shared stage code against independent facts: PyTorch's own AdamW, hand-computed AP and
// pos_weight, matplotlib's 'hot' end points, and bit-identical resume of the training loop.
#include <daug/stages/common.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <fstream>
#include <set>

using namespace daug;
using namespace daug::stages;

namespace {

struct ThreadsOne : ::testing::Environment {
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new ThreadsOne);

// y = x·W + b fitted to a fixed target map, data drawn from the global RNG (so resume must reseed it).
class TinyRegression : public Trainable {
 public:
  TinyRegression() {
    at::manual_seed(7);
    w_ = at::randn({4, 2}).requires_grad_(true);
    b_ = at::zeros({2}).requires_grad_(true);
    buf_ = at::ones({3});
  }
  std::vector<at::Tensor> parameters() override { return {w_, b_}; }
  NamedTensors state() override { return {{"w", w_}, {"b", b_}, {"buf", buf_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "tiny"); }
  void set_training(bool) override {}
  at::Tensor loss(int64_t n) {
    at::Tensor x = at::randn({n, 4});
    at::Tensor target = x.matmul(at::arange(8, at::kFloat).view({4, 2}) / 8.0);
    return (x.matmul(w_) + b_ - target).pow(2).mean();
  }
  at::Tensor w_, b_, buf_;
};

TrainLoopOptions loop_options() {
  TrainLoopOptions o;
  o.what = "tiny";
  o.dataset_size = 10;
  o.batch_size = 3;
  o.steps = 8;
  o.lr = 0.05;
  o.weight_decay = 0.01;
  o.anneal_lr = true;
  o.ema_rate = 0.9;
  o.checkpoint_every = 3;
  o.seed = 11;
  o.log_every_s = 1e9;
  return o;
}

}  // namespace

TEST(AdamW, MatchesTorchOptimAdamW) {
  at::manual_seed(0);
  at::Tensor a = at::randn({3, 5}).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  AdamW mine({a}, AdamWOptions{0.01, 0.9, 0.999, 1e-8, 0.05});
  torch::optim::AdamW ref(std::vector<at::Tensor>{b}, torch::optim::AdamWOptions(0.01).weight_decay(0.05));
  for (int s = 0; s < 5; ++s) {
    at::Tensor target = at::randn({3, 5});
    mine.zero_grad();
    (a - target).pow(3).sum().backward();
    mine.step(0.01);
    ref.zero_grad();
    (b - target).pow(3).sum().backward();
    ref.step();
  }
  EXPECT_LT(daug::testing::max_abs_diff(a.detach(), b.detach()), 1e-6);
  EXPECT_EQ(mine.steps(), 5);
}

TEST(AdamW, StateRoundTripAndShapeErrors) {
  at::Tensor p = at::ones({2, 2}).requires_grad_(true);
  AdamW opt({p}, {});
  p.sum().backward();
  opt.step(0.1);
  AdamW other({at::zeros({2, 2}).requires_grad_(true)}, {});
  other.load_state(opt.state(), "mem");
  EXPECT_EQ(other.steps(), 1);
  AdamW wrong({at::zeros({3}).requires_grad_(true)}, {});
  daug::testing::expect_error_contains([&] { wrong.load_state(opt.state(), "ckpt.safetensors"); },
                                 {"ckpt.safetensors", "adamw.exp_avg.0", "[2,2]", "[3]"});
}

TEST(Lr, AnnealsLinearlyToZero) {
  EXPECT_DOUBLE_EQ(annealed_lr(1e-4, 0, 100), 1e-4);
  EXPECT_DOUBLE_EQ(annealed_lr(1e-4, 50, 100), 5e-5);
  EXPECT_DOUBLE_EQ(annealed_lr(1e-4, 100, 100), 0.0);
}

TEST(Ema, UpdateAndSubstitute) {
  at::Tensor p = at::zeros({2}).requires_grad_(true);
  Ema ema({p}, 0.9);
  {
    at::NoGradGuard g;
    p.fill_(1.0);
  }
  ema.update();  // 0.9·0 + 0.1·1
  ema.update();  // 0.9·0.1 + 0.1·1 = 0.19
  EXPECT_NEAR(ema.shadow()[0][0].item<double>(), 0.19, 1e-7);
  at::Tensor buf = at::full({1}, 5.0);
  NamedTensors sub = ema.substitute({{"p", p}, {"buf", buf}});
  EXPECT_NEAR(sub[0].second[1].item<double>(), 0.19, 1e-7);
  EXPECT_EQ(sub[1].second.item<double>(), 5.0);
}

TEST(Metrics, PosWeightOnHandMadeLabels) {
  // 5 items, 3 super-classes: column 0 has 2 positives (3/2), column 1 has 1 (4/1), column 2 none (neutral 1).
  std::vector<std::vector<float>> y = {{1, 0, 0}, {1, 1, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  std::vector<int64_t> pos;
  auto w = pos_weights(y, &pos);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0], 1.5);
  EXPECT_DOUBLE_EQ(w[1], 4.0);
  EXPECT_DOUBLE_EQ(w[2], 1.0);
  EXPECT_EQ(pos, (std::vector<int64_t>{2, 1, 0}));
}

TEST(Metrics, AveragePrecisionMatchesSklearn) {
  // sklearn.metrics.average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333333333333333
  EXPECT_NEAR(average_precision({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.8333333333333333, 1e-12);
  // perfect ranking → 1; ties form one threshold: ([1,0],[0.5,0.5]) → precision 0.5 at recall 1 → 0.5
  EXPECT_DOUBLE_EQ(average_precision({0.9, 0.2, 0.8}, {1, 0, 1}), 1.0);
  EXPECT_DOUBLE_EQ(average_precision({0.5, 0.5}, {1, 0}), 0.5);
  EXPECT_TRUE(std::isnan(average_precision({0.5, 0.2}, {0, 0})));
}

TEST(Heatmaps, ShardsPartitionTheItems) {
  std::set<int64_t> all;
  for (int k = 0; k < 3; ++k)
    for (int64_t i : shard_indices(10, k, 3)) {
      EXPECT_EQ(i % 3, k);
      EXPECT_TRUE(all.insert(i).second);
    }
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(shard_indices(10, 1, 4), (std::vector<int64_t>{1, 5, 9}));
  daug::testing::expect_error_contains([] { shard_indices(10, 3, 3); }, {"--shard", "3/3"});
}

TEST(Heatmaps, HotColormapEndPoints) {
  at::Tensor x = at::tensor({0.0f, 0.365079f, 0.746032f, 1.0f}).view({1, 4});
  at::Tensor c = hot_colormap(x);  // [3,1,4]
  ASSERT_EQ(c.sizes(), (at::IntArrayRef{3, 1, 4}));
  EXPECT_NEAR(c[0][0][0].item<double>(), 0.0416, 1e-6);  // matplotlib hot(0) = (0.0416, 0, 0)
  EXPECT_NEAR(c[1][0][0].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(c[0][0][1].item<double>(), 1.0, 1e-5);      // red saturates at 0.365
  EXPECT_NEAR(c[1][0][1].item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(c[1][0][2].item<double>(), 1.0, 1e-5);      // green saturates at 0.746
  EXPECT_NEAR(c[2][0][2].item<double>(), 0.0, 1e-5);
  for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(c[ch][0][3].item<double>(), 1.0, 1e-6);  // hot(1) = white
}

TEST(Heatmaps, FileNamesFollowTheAuthors) {
  EXPECT_EQ(heatmap_file_name("00000001_000", +1, "nof"), "00000001_000_+nof.npy");
  EXPECT_EQ(heatmap_file_name("a", -1, "car"), "a_-car.npy");
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(245), "4m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
}

TEST(TrainLoop, BatchesArePermutationsPerEpoch) {
  TrainLoopOptions o = loop_options();
  EXPECT_EQ(total_steps(o), 8);
  o.steps = 0;
  o.epochs = 2;
  EXPECT_EQ(total_steps(o), 6);  // 2 epochs × floor(10/3)
  std::set<int64_t> seen;
  for (int s = 0; s < 3; ++s)
    for (int64_t i : batch_indices(o, s)) EXPECT_TRUE(seen.insert(i).second);
  EXPECT_EQ(seen.size(), 9u);  // drop_last: 9 of 10 items in epoch 0
  EXPECT_NE(batch_indices(o, 0), batch_indices(o, 3));  // epoch 1 reshuffles
}

TEST(TrainLoop, LearnsAndResumesBitIdentically) {
  daug::testing::TempDir d1, d2;
  TinyRegression full;
  auto o = loop_options();
  auto r1 = train_loop(full, o, d1.path(), [&](const std::vector<int64_t>& b, int64_t) {
    return full.loss(static_cast<int64_t>(b.size()));
  });
  EXPECT_EQ(r1.steps_run, 8);
  EXPECT_LT(r1.last_loss, r1.first_loss);

  // Interrupted after 5 steps (checkpoint written at the stop), then resumed in a fresh model object.
  {
    TinyRegression part;
    auto o2 = o;
    o2.stop_after = 5;
    auto r = train_loop(part, o2, d2.path(), [&](const std::vector<int64_t>& b, int64_t) {
      return part.loss(static_cast<int64_t>(b.size()));
    });
    EXPECT_EQ(r.steps_run, 5);
  }
  TinyRegression resumed;
  auto r2 = train_loop(resumed, o, d2.path(), [&](const std::vector<int64_t>& b, int64_t) {
    return resumed.loss(static_cast<int64_t>(b.size()));
  });
  EXPECT_EQ(r2.resumed_from, 5);
  EXPECT_EQ(r2.steps_run, 3);
  EXPECT_EQ(daug::testing::max_abs_diff(full.w_.detach(), resumed.w_.detach()), 0.0);
  EXPECT_EQ(daug::testing::max_abs_diff(r1.final_ema[0].second, r2.final_ema[0].second), 0.0);
  EXPECT_EQ(read_losses(d1 / "losses.csv"), read_losses(d2 / "losses.csv"));
  EXPECT_EQ(read_losses(d2 / "losses.csv").size(), 8u);

  // A checkpoint for another schedule is refused with a clear message.
  auto o3 = o;
  o3.steps = 20;
  TinyRegression other;
  daug::testing::expect_error_contains(
      [&] {
        train_loop(other, o3, d2.path(), [&](const std::vector<int64_t>& b, int64_t) {
          return other.loss(static_cast<int64_t>(b.size()));
        });
      },
      {"checkpoint.safetensors", "total_steps=8", "20"});
}

TEST(TrainLoop, NanLossIsAnError) {
  daug::testing::TempDir d;
  TinyRegression m;
  auto o = loop_options();
  daug::testing::expect_error_contains(
      [&] {
        train_loop(m, o, d.path(), [&](const std::vector<int64_t>&, int64_t) { return m.loss(2) * NAN; });
      },
      {"loss became nan", "step 0"});
}

TEST(Images, PrepareResizesNormalisesAndReplicates) {
  // 4×4 gray image; area filter to 2×2 = means of the 2×2 blocks: [[2.5, 4.5], [10.5, 12.5]] (values 0..15 / 15).
  at::Tensor gray = at::arange(16, at::kFloat).view({1, 4, 4}) / 15.0;
  ImagePrep prep{{3, 2, 2}, daug::data::Filter::area, Normalize::minmax};
  at::Tensor x = prepare_image(gray, prep);
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{3, 2, 2}));
  // min-max of [2.5, 4.5, 10.5, 12.5] → [0, 0.2, 0.8, 1]
  at::Tensor expect = at::tensor({0.0f, 0.2f, 0.8f, 1.0f}).view({1, 2, 2}).expand({3, 2, 2});
  EXPECT_LT(daug::testing::max_abs_diff(x, expect), 1e-6);
  prep.normalize = Normalize::minmax_pm1;
  EXPECT_LT(daug::testing::max_abs_diff(prepare_image(gray, prep), expect * 2 - 1), 1e-6);
  prep.normalize = Normalize::none;
  prep.shape = {1, 2, 2};
  EXPECT_NEAR(prepare_image(gray, prep)[0][0][1].item<double>(), 4.5 / 15.0, 1e-6);
}

TEST(Images, OptionNamesKeepTheirTomlSpelling) {
  EXPECT_EQ(kResizeFilters.names(), (std::vector<std::string>{"bilinear", "bicubic", "area", "nearest"}));
  EXPECT_EQ(kResizeFilters.value("area"), daug::data::Filter::area);
  EXPECT_EQ(kResizeFilters.name(daug::data::Filter::bicubic), "bicubic");
  EXPECT_EQ(kNormalizations.names(), (std::vector<std::string>{"minmax", "minmax_pm1", "none"}));
  EXPECT_EQ(kNormalizations.value("minmax_pm1"), Normalize::minmax_pm1);
}
