// LR schedules. See daug/train/schedule.h.
#include <daug/train/schedule.h>

#include <daug/error.h>

#include <algorithm>
#include <cmath>

namespace daug::train {

namespace {
double warmup_ramp(int64_t step, int64_t warmup) {
  return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
}
}  // namespace

double lr_factor(const ScheduleOptions& s, int64_t step, int64_t total, int64_t steps_per_epoch) {
  switch (s.kind) {
    case Schedule::constant:
      return 1.0;
    case Schedule::linear_per_step: {
      if (total <= 0) return 1.0;
      const double frac = static_cast<double>(step) / static_cast<double>(total);
      return std::max(0.0, 1.0 - frac);
    }
    case Schedule::linear_per_epoch: {
      DAUG_CHECK(steps_per_epoch > 0, "linear_per_epoch needs steps_per_epoch > 0, but got ", steps_per_epoch);
      if (total <= 0) return 1.0;
      const int64_t epochs = (total + steps_per_epoch - 1) / steps_per_epoch;
      const double frac = static_cast<double>(step / steps_per_epoch) / static_cast<double>(epochs);
      return std::max(0.0, 1.0 - frac);
    }
    case Schedule::cosine_warmup: {
      if (step < s.warmup_steps) return warmup_ramp(step, s.warmup_steps);
      const double progress = static_cast<double>(step - s.warmup_steps) /
                              static_cast<double>(std::max<int64_t>(1, total - s.warmup_steps));
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 2.0 * 0.5 * progress)));
    }
    case Schedule::constant_warmup:
      return step < s.warmup_steps ? warmup_ramp(step, s.warmup_steps) : 1.0;
  }
  return 1.0;
}

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::constant: return "constant";
    case Schedule::linear_per_step: return "linear_per_step";
    case Schedule::linear_per_epoch: return "linear_per_epoch";
    case Schedule::cosine_warmup: return "cosine_warmup";
    case Schedule::constant_warmup: return "constant_warmup";
  }
  return "?";
}

Schedule schedule_from_name(const std::string& name) {
  for (Schedule s : {Schedule::constant, Schedule::linear_per_step, Schedule::linear_per_epoch,
                     Schedule::cosine_warmup, Schedule::constant_warmup})
    if (name == schedule_name(s)) return s;
  throw ConfigError("schedule must be one of: constant, linear_per_step, linear_per_epoch, cosine_warmup, "
                    "constant_warmup, but got '" + name + "'");
}

}  // namespace daug::train
