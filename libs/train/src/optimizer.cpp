// AdamW with per-parameter decay flags. See daug/train/optimizer.h.
#include <daug/train/optimizer.h>

#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <map>

namespace daug::train {

AdamW::AdamW(std::vector<at::Tensor> params, AdamWOptions options, std::vector<bool> decay)
    : params_(std::move(params)), decay_(std::move(decay)), opts_(options) {
  DAUG_CHECK(!params_.empty(), "AdamW: the model has no trainable parameters");
  if (decay_.empty()) decay_.assign(params_.size(), true);
  DAUG_CHECK(decay_.size() == params_.size(), "AdamW: ", params_.size(), " parameters but ", decay_.size(),
             " decay flags");
  for (const auto& p : params_) {
    exp_avg_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(opts_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(opts_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (decay_[i] && opts_.weight_decay != 0.0) p.mul_(1.0 - lr * opts_.weight_decay);
    exp_avg_[i].mul_(opts_.beta1).add_(g, 1.0 - opts_.beta1);
    exp_avg_sq_[i].mul_(opts_.beta2).addcmul_(g, g, 1.0 - opts_.beta2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(opts_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bc1);
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  out.emplace_back("optim.step", at::scalar_tensor(step_, at::kLong));
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(fmt::format("optim.exp_avg.{}", i), exp_avg_[i].detach().cpu());
    out.emplace_back(fmt::format("optim.exp_avg_sq.{}", i), exp_avg_sq_[i].detach().cpu());
  }
  return out;
}

void AdamW::load_state(const NamedTensors& state, const std::string& source) {
  std::map<std::string, at::Tensor> by_key(state.begin(), state.end());
  auto get = [&](const std::string& key, const at::Tensor& like) -> const at::Tensor& {
    auto it = by_key.find(key);
    DAUG_CHECK_AS(DataError, it != by_key.end(), source, ": missing key '", key,
                  "' (the checkpoint was written for another model or optimizer)");
    if (like.defined())
      DAUG_CHECK_AS(DataError, it->second.sizes() == like.sizes(), source, ": key '", key, "' has shape [",
                    fmt::format("{}", fmt::join(it->second.sizes(), ",")), "], expected [",
                    fmt::format("{}", fmt::join(like.sizes(), ",")), "]");
    return it->second;
  };
  // Validate everything first so that a bad file modifies nothing.
  const at::Tensor& s = get("optim.step", at::Tensor());
  DAUG_CHECK_AS(DataError, s.numel() == 1, source, ": key 'optim.step' must be a scalar, but has shape ", s.sizes());
  std::vector<at::Tensor> m, v;
  for (size_t i = 0; i < params_.size(); ++i) {
    m.push_back(get(fmt::format("optim.exp_avg.{}", i), params_[i]));
    v.push_back(get(fmt::format("optim.exp_avg_sq.{}", i), params_[i]));
  }
  DAUG_CHECK_AS(DataError, !by_key.count(fmt::format("optim.exp_avg.{}", params_.size())), source,
                ": has more optimizer slots than the model has parameters (", params_.size(), ")");
  at::NoGradGuard no_grad;
  step_ = s.item<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    exp_avg_[i].copy_(m[i]);
    exp_avg_sq_[i].copy_(v[i]);
  }
}

std::vector<bool> decay_flags(const std::vector<at::Tensor>& params, const NamedTensors& state,
                              const std::vector<std::string>& no_decay) {
  std::map<const void*, std::string> names;
  for (const auto& [name, t] : state) names[t.unsafeGetTensorImpl()] = name;
  std::vector<bool> out;
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = names.find(params[i].unsafeGetTensorImpl());
    DAUG_CHECK(it != names.end(), "parameter ", i, " (shape ", params[i].sizes(),
               ") is not among the model's state() tensors, so its weight-decay group cannot be decided");
    bool decay = true;
    for (const auto& s : no_decay)
      if (it->second.find(s) != std::string::npos) decay = false;
    out.push_back(decay);
  }
  return out;
}

}  // namespace daug::train
