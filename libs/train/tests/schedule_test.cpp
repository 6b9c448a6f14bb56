// Each LR schedule against its formula; the two schedules the stages used before libs/train (copied verbatim
// below) are reproduced bit for bit.
#include <daug/train/schedule.h>

#include <daug/error.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

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

namespace {
// (warm-up, step, total steps, steps per epoch) → the expected factor, and why.
struct Point {
  int64_t warmup, step, total, per_epoch;
  double expect;
  const char* why;
};
void expect_points(Schedule kind, std::initializer_list<Point> points) {
  for (const auto& c : points)
    EXPECT_NEAR(lr_factor({kind, c.warmup}, c.step, c.total, c.per_epoch), c.expect, 1e-15)
        << schedule_name(kind) << " step " << c.step << ": " << c.why;
}
}  // namespace

// Each schedule at hand-picked points of its formula.
TEST(Schedule, HandComputedPoints) {
  expect_points(Schedule::constant, {{10, 0, 100, 7, 1.0, "constant"}, {10, 99, 100, 7, 1.0, "constant"}});
  expect_points(Schedule::linear_per_step, {{0, 0, 100, 1, 1.0, "anneal_lr: 1 − 0/100"},
                                            {0, 50, 100, 1, 0.5, "anneal_lr: 1 − 50/100"},
                                            {0, 100, 100, 1, 0.0, "anneal_lr: 0 after the last step"}});
  expect_points(Schedule::linear_per_epoch, {{0, 3, 10, 4, 1.0, "epoch 0 of 3"},
                                             {0, 4, 10, 4, 2.0 / 3.0, "epoch 1 of 3: flat within the epoch"},
                                             {0, 7, 10, 4, 2.0 / 3.0, "epoch 1 of 3: flat within the epoch"},
                                             {0, 9, 10, 4, 1.0 / 3.0, "epoch 2 of 3 (a partial epoch counts)"}});
  expect_points(Schedule::cosine_warmup, {{4, 0, 20, 5, 0.0, "HF: the first update has lr 0"},
                                          {4, 2, 20, 5, 0.5, "warm-up 2/4"},
                                          {4, 4, 20, 5, 1.0, "peak"},
                                          {4, 12, 20, 5, 0.5, "half-way through the decay: ½(1 + cos(π/2))"},
                                          {4, 20, 20, 5, 0.0, "end: ½(1 + cos π)"},
                                          {0, 0, 4, 5, 1.0, "no warm-up: starts at the peak"}});
  expect_points(Schedule::constant_warmup, {{4, 0, 20, 5, 0.0, "warm-up 0/4"},
                                            {4, 3, 20, 5, 0.75, "warm-up 3/4"},
                                            {4, 4, 20, 5, 1.0, "after the warm-up"}});
  EXPECT_THROW(lr_factor({Schedule::linear_per_epoch, 0}, 0, 10, 0), daug::Error);
}

// lr = base · factor must equal, to the bit, what the stages computed before libs/train.
TEST(Schedule, ReproducesTheOldStageSchedulesBitForBit) {
  for (int64_t total : {1, 7, 10, 333, 1000})
    for (int64_t s = 0; s <= total; ++s) {
      for (double base : {1e-4, 3e-5, 0.05})
        ASSERT_EQ(base * lr_factor({Schedule::linear_per_step, 0}, s, total, 1), old_annealed_lr(base, s, total));
      for (int64_t w : {0, 1, 10}) {
        ASSERT_EQ(lr_factor({Schedule::cosine_warmup, w}, s, total, 3), old_cosine_warmup_factor(s, w, total));
        ASSERT_EQ(lr_factor({Schedule::constant_warmup, w}, s, total, 3), old_constant_factor(s, w));
      }
    }
}

TEST(Schedule, Names) {
  for (Schedule s : {Schedule::constant, Schedule::linear_per_step, Schedule::linear_per_epoch,
                     Schedule::cosine_warmup, Schedule::constant_warmup})
    EXPECT_EQ(schedule_from_name(schedule_name(s)), s);
  EXPECT_THROW(schedule_from_name("cosine"), daug::ConfigError);
}
