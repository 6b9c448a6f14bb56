// Dynamic loss scaling (see daug/train/grad_scaler.h).
#include <daug/train/grad_scaler.h>

#include <daug/error.h>

#include <ATen/ATen.h>

#include <cmath>

namespace daug::train {

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.init_scale) {
  DAUG_CHECK(o_.init_scale > 0 && o_.growth_factor > 1 && o_.backoff_factor > 0 && o_.backoff_factor < 1 &&
                 o_.growth_interval >= 1,
             "GradScaler: needs init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1");
}

at::Tensor GradScaler::scale_loss(const at::Tensor& loss) const { return loss * scale_; }

bool GradScaler::unscale(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard g;
  const double inv = 1.0 / scale_;  // exact for power-of-two scales
  at::Tensor bad;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    at::Tensor grad = p.grad();
    grad.mul_(inv);
    at::Tensor b = grad.isfinite().logical_not().any();
    bad = bad.defined() ? bad.logical_or(b) : b;
  }
  return bad.defined() && bad.item<bool>();
}

void GradScaler::update(bool found_inf) {
  if (found_inf) {
    scale_ *= o_.backoff_factor;
    good_ = 0;
    ++skipped_;
    return;
  }
  if (++good_ >= o_.growth_interval) {
    scale_ *= o_.growth_factor;
    good_ = 0;
  }
}

NamedTensors GradScaler::state() const {
  return {{"scaler.scale", at::tensor({scale_}, at::kDouble)},
          {"scaler.good_steps", at::tensor({good_}, at::kLong)},
          {"scaler.skipped", at::tensor({skipped_}, at::kLong)}};
}

void GradScaler::load_state(const NamedTensors& state, const std::string& source) {
  auto find = [&](const char* key, at::ScalarType dtype) {
    for (const auto& [k, v] : state)
      if (k == key) {
        DAUG_CHECK_AS(DataError, v.numel() == 1 && v.scalar_type() == dtype, source, ": key '", key, "' must be one ",
                      c10::toString(dtype), " value, but has ", v.numel(), " of ", c10::toString(v.scalar_type()));
        return v;
      }
    throw DataError(source + ": missing key '" + key +
                    "' (a float16 run's loss scaler; was the checkpoint "
                    "written with another precision? delete it to start over)");
  };
  const double s = find("scaler.scale", at::kDouble).item<double>();
  const int64_t good = find("scaler.good_steps", at::kLong).item<int64_t>();
  const int64_t skipped = find("scaler.skipped", at::kLong).item<int64_t>();
  DAUG_CHECK_AS(DataError, std::isfinite(s) && s > 0 && good >= 0 && skipped >= 0, source,
                ": scaler state out of range (scale ", s, ", good_steps ", good, ", skipped ", skipped, ")");
  scale_ = s;
  good_ = good;
  skipped_ = skipped;
}

}  // namespace daug::train
