// EMA of parameters (guided-diffusion update_ema). See daug/train/ema.h.
#include <daug/train/ema.h>

#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>

namespace daug::train {

Ema::Ema(std::vector<at::Tensor> params, double rate) : params_(std::move(params)), rate_(rate) {
  DAUG_CHECK(rate >= 0.0 && rate < 1.0, "ema rate must be in [0, 1), but got ", rate);
  at::NoGradGuard g;
  for (const auto& p : params_) shadow_.push_back(p.detach().clone());
}

void Ema::update() {
  at::NoGradGuard g;
  for (size_t i = 0; i < params_.size(); ++i) shadow_[i].mul_(rate_).add_(params_[i].detach(), 1.0 - rate_);
}

NamedTensors Ema::substitute(const NamedTensors& model_state) const {
  NamedTensors out = model_state;
  for (auto& [k, v] : out) {
    for (size_t i = 0; i < params_.size(); ++i) {
      if (v.unsafeGetTensorImpl() == params_[i].unsafeGetTensorImpl()) {
        v = shadow_[i];
        break;
      }
    }
  }
  return out;
}

NamedTensors Ema::state() const {
  NamedTensors out;
  for (size_t i = 0; i < shadow_.size(); ++i) out.emplace_back(fmt::format("ema.{}", i), shadow_[i].detach().cpu());
  return out;
}

void Ema::load_state(const NamedTensors& state, const std::string& source) {
  std::map<std::string, at::Tensor> by_key(state.begin(), state.end());
  std::vector<at::Tensor> src;
  for (size_t i = 0; i < shadow_.size(); ++i) {
    const std::string key = fmt::format("ema.{}", i);
    auto it = by_key.find(key);
    DAUG_CHECK_AS(DataError, it != by_key.end(), source, ": missing key '", key, "'");
    DAUG_CHECK_AS(DataError, it->second.sizes() == shadow_[i].sizes(), source, ": key '", key, "' has shape [",
                  fmt::format("{}", fmt::join(it->second.sizes(), ",")), "], expected [",
                  fmt::format("{}", fmt::join(shadow_[i].sizes(), ",")), "]");
    src.push_back(it->second);
  }
  at::NoGradGuard g;
  for (size_t i = 0; i < shadow_.size(); ++i) shadow_[i].copy_(src[i]);
}

}  // namespace daug::train
