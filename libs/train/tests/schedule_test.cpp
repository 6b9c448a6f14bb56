// Each LR schedule against its formula; the two schedules the stages used before libs/train (copied verbatim
// below) are reproduced bit for bit.
#include <daug/train/schedule.h>

#include <daug/error.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace daug::train;

namespace {
// libs/stages annealed_lr before libs/train (train_classifier, train_diffusion with anneal_lr = true).
double old_annealed_lr(double base, int64_t step, int64_t total) {
  if (total <= 0) return base;
  double frac = static_cast<double>(step) / static_cast<double>(total);
  return base * std::max(0.0, 1.0 - frac);
}
// libs/clip cosine_warmup_factor before libs/train (train_clip, schedule = "cosine").
double old_cosine_warmup_factor(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * 0.5 * progress)));
}
// train_clip's "constant" schedule before libs/train.
double old_constant_factor(int64_t step, int64_t warmup) {
  return step < warmup ? static_cast<double>(step) / warmup : 1.0;
}
}  // namespace

TEST(Schedule, Constant) {
  for (int64_t s : {0, 5, 99}) EXPECT_EQ(lr_factor({Schedule::constant, 10}, s, 100, 7), 1.0);
}

TEST(Schedule, LinearPerStepIsGuidedDiffusionAnnealLr) {
  ScheduleOptions o{Schedule::linear_per_step, 0};
  EXPECT_DOUBLE_EQ(lr_factor(o, 0, 100, 1), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 50, 100, 1), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(o, 100, 100, 1), 0.0);
  for (int64_t total : {1, 7, 1000})
    for (int64_t s = 0; s < total; s += std::max<int64_t>(1, total / 13))
      for (double base : {1e-4, 3e-5, 0.05})
        EXPECT_EQ(base * lr_factor(o, s, total, 1), old_annealed_lr(base, s, total)) << s << "/" << total;
}

TEST(Schedule, LinearPerEpochIsFlatWithinAnEpoch) {
  ScheduleOptions o{Schedule::linear_per_epoch, 0};
  // 10 steps, 4 per epoch → E = 3 epochs: factors 1, 2/3, 1/3
  for (int64_t s = 0; s < 10; ++s) {
    const double e = static_cast<double>(s / 4);
    EXPECT_DOUBLE_EQ(lr_factor(o, s, 10, 4), 1.0 - e / 3.0) << s;
  }
  EXPECT_THROW(lr_factor(o, 0, 10, 0), daug::Error);
}

TEST(Schedule, CosineWithWarmupIsTransformers) {
  ScheduleOptions o{Schedule::cosine_warmup, 4};
  EXPECT_EQ(lr_factor(o, 0, 20, 5), 0.0);  // the first update has lr 0, as the released loop
  EXPECT_DOUBLE_EQ(lr_factor(o, 2, 20, 5), 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(o, 4, 20, 5), 1.0);
  EXPECT_NEAR(lr_factor(o, 12, 20, 5), 0.5, 1e-15);  // half-way through the decay: ½(1 + cos(π/2))
  EXPECT_NEAR(lr_factor(o, 20, 20, 5), 0.0, 1e-15);
  for (int64_t w : {0, 1, 10})
    for (int64_t total : {1, 10, 333})
      for (int64_t s = 0; s <= total; ++s)
        EXPECT_EQ(lr_factor({Schedule::cosine_warmup, w}, s, total, 3), old_cosine_warmup_factor(s, w, total));
}

TEST(Schedule, ConstantWithWarmup) {
  ScheduleOptions o{Schedule::constant_warmup, 4};
  EXPECT_EQ(lr_factor(o, 0, 20, 5), 0.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 3, 20, 5), 0.75);
  EXPECT_EQ(lr_factor(o, 4, 20, 5), 1.0);
  for (int64_t w : {0, 1, 10})
    for (int64_t s = 0; s < 30; ++s)
      EXPECT_EQ(lr_factor({Schedule::constant_warmup, w}, s, 30, 3), old_constant_factor(s, w));
}

TEST(Schedule, Names) {
  for (Schedule s : {Schedule::constant, Schedule::linear_per_step, Schedule::linear_per_epoch,
                     Schedule::cosine_warmup, Schedule::constant_warmup})
    EXPECT_EQ(schedule_from_name(schedule_name(s)), s);
  EXPECT_THROW(schedule_from_name("cosine"), daug::ConfigError);
}
