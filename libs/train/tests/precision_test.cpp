// Mixed precision and gradient accumulation in the Trainer: the GradScaler's closed-form behaviour, fp16 overflow
// skips and exact resume, bf16 training with float32 masters, and k micro-batches = one batch.
#include <daug/train/grad_scaler.h>
#include <daug/train/losses_csv.h>
#include <daug/train/trainer.h>

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/precision.h>

#include "test_support.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

using namespace daug;
using namespace daug::train;

namespace {

// y = x·W + b fitted to a fixed target; item i of the data set is row i of a fixed matrix, so the loss of a batch
// is the mean of per-item losses that do not depend on which other items share the batch or the micro-batch.
class PerItemRegression : public Trainable {
 public:
  PerItemRegression() {
    at::manual_seed(7);
    w_ = at::randn({4, 2}).requires_grad_(true);
    b_ = at::zeros({2}).requires_grad_(true);
    x_ = at::randn({12, 4});
    target_ = x_.matmul(at::arange(8, at::kFloat).view({4, 2}) / 8.0) + 0.3;
  }
  std::vector<at::Tensor> parameters() override { return {w_, b_}; }
  NamedTensors state() override { return {{"w", w_}, {"b", b_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "per_item"); }
  void set_training(bool) override {}
  /// Mean squared error over the items; `blow_up` multiplies the loss (a float16 overflow stand-in).
  StepOutput loss(const std::vector<int64_t>& items, double blow_up = 1.0) {
    const at::Tensor idx = at::tensor(items, at::kLong);
    at::Tensor l = (x_.index_select(0, idx).matmul(w_) + b_ - target_.index_select(0, idx)).pow(2).mean() * blow_up;
    return {l, {{"twice", 2.0 * l.detach()}}};
  }
  at::Tensor w_, b_, x_, target_;
};

TrainerOptions options(const std::filesystem::path& dir) {
  TrainerOptions o;
  o.what = "precision";
  o.dataset_size = 12;
  o.batch_size = 6;
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

}  // namespace

TEST(GradScaler, ClosedFormBackoffGrowthAndUnscale) {
  GradScaler s;  // torch defaults
  EXPECT_EQ(s.scale(), 65536.0);
  for (int i = 0; i < 1999; ++i) s.update(false);
  EXPECT_EQ(s.scale(), 65536.0);
  s.update(false);  // the 2000th good step doubles
  EXPECT_EQ(s.scale(), 131072.0);
  EXPECT_EQ(s.good_steps(), 0);
  s.update(false);
  s.update(true);  // overflow: halve, reset the count, count the skip
  EXPECT_EQ(s.scale(), 65536.0);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_EQ(s.skipped(), 1);

  at::Tensor p = at::zeros({3}).requires_grad_(true), q = at::zeros({2}).requires_grad_(true);
  p.mutable_grad() = at::tensor({65536.0f, -131072.0f, 32768.0f});
  q.mutable_grad() = at::tensor({1.0f, 2.0f});
  EXPECT_FALSE(s.unscale({p, q}));
  EXPECT_TRUE(p.grad().equal(at::tensor({1.0f, -2.0f, 0.5f})));
  EXPECT_TRUE(q.grad().equal(at::tensor({1.0f / 65536, 2.0f / 65536})));
  q.mutable_grad() = at::tensor({std::numeric_limits<float>::infinity(), 0.0f});
  EXPECT_TRUE(s.unscale({p, q}));
  q.mutable_grad() = at::tensor({std::nanf(""), 0.0f});
  EXPECT_TRUE(s.unscale({p, q}));

  GradScaler r;
  r.load_state(s.state(), "test");
  EXPECT_EQ(r.scale(), s.scale());
  EXPECT_EQ(r.skipped(), 1);
  daug::testing::expect_error_contains([&] { r.load_state({}, "ck.safetensors"); }, {"ck.safetensors", "scaler.scale"});
}

// fp16's loss scaling in the Trainer. The scaler logic is device-independent, so this CPU test names a CUDA
// device for the autocast guard (which then leaves these CPU tensors in float32): the gradients are exactly the
// float32 ones times the scale, and the overflow is provoked by a loss scaled past float32's range at step 2.
TEST(TrainerPrecision, Float16OverflowSkipsTheStepHalvesTheScaleAndResumesExactly) {
  daug::testing::TempDir d1, d2;
  auto opts = [](const std::filesystem::path& dir) {
    auto o = options(dir);
    o.precision = Precision::fp16;
    o.device = "cuda";
    o.scaler.growth_interval = 2;
    o.checkpoint_every = 1;
    o.ema_rate = 0.5;
    return o;
  };
  auto fn = [](PerItemRegression& m) {
    return [&m](const std::vector<int64_t>& b, int64_t step) { return m.loss(b, step == 2 ? 1e35 : 1.0); };
  };
  PerItemRegression full;
  Trainer t(full, opts(d1.path()));
  auto r = t.run(fn(full));
  EXPECT_EQ(r.steps_run, 6);
  ASSERT_NE(t.scaler(), nullptr);
  EXPECT_EQ(t.scaler()->skipped(), 1);
  EXPECT_EQ(t.optimizer().steps(), 5);
  // Steps 0,1 good → ×2 at step 1; step 2 overflows → ÷2; steps 3,4 good → ×2; step 5 good (count 1).
  EXPECT_EQ(t.scaler()->scale(), 65536.0 * 2);
  EXPECT_EQ(t.scaler()->good_steps(), 1);
  auto norms = read_column(d1.path() / "losses.csv", "grad_norm");
  ASSERT_EQ(norms.size(), 6u);
  EXPECT_FALSE(std::isfinite(norms[2]));
  for (const auto& p : full.parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);

  // The same run interrupted after 3 steps (1 skipped) and resumed: identical weights and scaler.
  PerItemRegression part;
  {
    auto o = opts(d2.path());
    o.stop_after = 3;
    Trainer(part, o).run(fn(part));
  }
  PerItemRegression resumed;
  Trainer t2(resumed, opts(d2.path()));
  auto r2 = t2.run(fn(resumed));
  EXPECT_EQ(r2.resumed_from, 3);
  EXPECT_TRUE(resumed.w_.equal(full.w_));
  EXPECT_TRUE(resumed.b_.equal(full.b_));
  EXPECT_EQ(t2.scaler()->scale(), t.scaler()->scale());
  EXPECT_EQ(t2.scaler()->skipped(), 1);
  EXPECT_EQ(t2.optimizer().steps(), 5);

  // Without the skip, the run would have moved the weights at step 2: the skipped run differs from a run whose
  // step 2 is finite (so the test sees the skip).
  daug::testing::TempDir d3;
  PerItemRegression finite;
  Trainer(finite, opts(d3.path())).run([&](const std::vector<int64_t>& b, int64_t) { return finite.loss(b); });
  EXPECT_FALSE(finite.w_.equal(full.w_));
}

// fp16 without overflow equals fp32 up to the scaling (powers of two: exact) when autocast leaves the ops alone.
TEST(TrainerPrecision, Float16ScalingIsExactWithoutOverflow) {
  daug::testing::TempDir d1, d2;
  PerItemRegression a, b;
  Trainer(a, options(d1.path())).run([&](const std::vector<int64_t>& i, int64_t) { return a.loss(i); });
  auto o = options(d2.path());
  o.precision = Precision::fp16;
  o.device = "cuda";  // autocast for CUDA tensors only: these CPU ops stay float32 (see above)
  Trainer(b, o).run([&](const std::vector<int64_t>& i, int64_t) { return b.loss(i); });
  EXPECT_TRUE(a.w_.equal(b.w_));
  EXPECT_TRUE(a.b_.equal(b.b_));
}

// bf16 autocast on the CPU (emulated on CPUs without bf16 instructions: correct, slow). The matmul runs in bf16
// (8-bit mantissa: relative rounding 2^-9 per input), the loss is reduced in float32; the masters, their gradients
// and the Adam state stay float32. Tolerance: Adam's step is lr·m/√v, about lr in size and insensitive to
// the gradient's scale, so a 0.4% gradient error moves each weight by far less than lr = 0.05 per step; after
// 6 steps the weights agree with fp32 to within 2·lr = 0.1 and the loss still falls.
TEST(TrainerPrecision, Bf16TrainingReducesTheLossMatchesFloat32AndKeepsFloat32Masters) {
  daug::testing::TempDir d1, d2;
  PerItemRegression a, b;
  auto ra = Trainer(a, options(d1.path())).run([&](const std::vector<int64_t>& i, int64_t) { return a.loss(i); });
  auto o = options(d2.path());
  o.precision = Precision::bf16;
  at::ScalarType seen = at::kFloat;
  auto rb = Trainer(b, o).run([&](const std::vector<int64_t>& i, int64_t) {
    const at::Tensor idx = at::tensor(i, at::kLong);
    seen = b.x_.index_select(0, idx).matmul(b.w_).scalar_type();  // what autocast made of the matmul
    return b.loss(i);
  });
  EXPECT_EQ(seen, at::kBFloat16);
  EXPECT_LT(rb.last_step_loss, rb.first_loss);
  EXPECT_FALSE(a.w_.equal(b.w_)) << "bf16 made no difference: autocast was not active";
  EXPECT_LT((a.w_ - b.w_).abs().max().item<double>(), 0.1);
  EXPECT_NEAR(rb.last_step_loss, ra.last_step_loss, 0.05 * ra.first_loss);
  for (const auto& p : b.parameters()) {
    EXPECT_EQ(p.scalar_type(), at::kFloat);
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), at::kFloat);
  }
  // Outside the trainer's step, autocast is off again.
  EXPECT_EQ(b.x_.matmul(b.w_).scalar_type(), at::kFloat);
}

// k micro-batches of b/k give the weights of one batch of b (per-item losses, mean-reduced), within 1e-5 relative;
// the logged loss is the batch mean. Uneven micro-batches (6 = 3+3 for k=2, 2+2+1+1 for k=4) are weighted by size.
TEST(TrainerAccumulate, MicroBatchesEqualTheFullBatch) {
  daug::testing::TempDir d1;
  PerItemRegression full;
  auto r1 = Trainer(full, options(d1.path())).run([&](const std::vector<int64_t>& i, int64_t) { return full.loss(i); });
  for (int64_t k : {2, 3, 4, 6}) {
    daug::testing::TempDir d;
    PerItemRegression m;
    auto o = options(d.path());
    o.accumulate = k;
    std::vector<size_t> sizes;
    auto r = Trainer(m, o).run([&](const std::vector<int64_t>& i, int64_t) {
      sizes.push_back(i.size());
      return m.loss(i);
    });
    EXPECT_EQ(sizes.size(), static_cast<size_t>(6 * k)) << k;
    EXPECT_LT(max_rel_diff(m.w_, full.w_), 1e-5) << k;
    EXPECT_LT(max_rel_diff(m.b_, full.b_), 1e-5) << k;
    EXPECT_NEAR(r.first_loss, r1.first_loss, 1e-5 * r1.first_loss) << k;
    auto parts = read_column(d.path() / "losses.csv", "twice");
    auto loss = read_column(d.path() / "losses.csv", "loss");
    ASSERT_EQ(parts.size(), loss.size());
    for (size_t s = 0; s < parts.size(); ++s) EXPECT_NEAR(parts[s], 2 * loss[s], 1e-4 * loss[s]) << k;
  }
  // k = 4 splits 6 items into 2+2+1+1: an unweighted mean of the micro-batch means would not match the batch.
  auto o = options(d1.path());
  o.accumulate = 7;
  PerItemRegression m;
  daug::testing::expect_error_contains([&] { Trainer(m, o); }, {"accumulate = 7", "batch has 6"});
  o.accumulate = 0;
  EXPECT_THROW(Trainer(m, o), daug::ConfigError);
}
