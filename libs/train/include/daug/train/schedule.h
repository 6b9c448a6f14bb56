#pragma once
/// Learning-rate schedules as a multiplier of the base lr: lr(step) = base · lr_factor(...). `step` is the 0-based
/// optimizer step about to be taken, `total` the run's number of optimizer steps.
#include <cstdint>
#include <string>
#include <vector>

namespace daug::train {

enum class Schedule {
  constant,          ///< 1
  linear_per_step,   ///< guided-diffusion anneal_lr: max(0, 1 − step/total) (reaches 0 after the last step)
  linear_per_epoch,  ///< max(0, 1 − e/E), e = step / steps_per_epoch, E = ⌈total / steps_per_epoch⌉ (flat per epoch)
  cosine_warmup,     ///< transformers get_cosine_schedule_with_warmup (num_cycles 0.5): step/W for step < W, then
                     ///< max(0, ½(1 + cos(π·2·0.5·(step−W)/max(1, total−W)))); the first update has lr 0 if W > 0
  constant_warmup,   ///< transformers get_constant_schedule_with_warmup: step/W for step < W, then 1
};

struct ScheduleOptions {
  Schedule kind = Schedule::constant;
  int64_t warmup_steps = 0;  ///< W (used by the *_warmup kinds)
};

/// The multiplier for optimizer step `step` of `total` (steps_per_epoch > 0 for linear_per_epoch).
double lr_factor(const ScheduleOptions& s, int64_t step, int64_t total, int64_t steps_per_epoch);

/// "constant", "linear_per_step", "linear_per_epoch", "cosine_warmup", "constant_warmup".
const char* schedule_name(Schedule s);
/// The inverse of schedule_name; throws ConfigError listing the choices.
Schedule schedule_from_name(const std::string& name);

}  // namespace daug::train
