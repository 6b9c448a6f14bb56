// guidance_sigmoid: ∇ₓ log σ(logit_y) classifier guidance (DAug paper Fig. 2, "sigmoid").
#include "sigmoid_guidance.h"

#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

SigmoidGuidance::SigmoidGuidance(Options opts, std::shared_ptr<Classifier> classifier, const std::string& table)
    : ClassifierGuidance(std::move(opts), std::move(classifier), "sigmoid", table) {}

std::string SigmoidGuidance::describe() const {
  return fmt::format("sigmoid(scale={}, classifier={})", opts_.scale, opts_.classifier);
}

at::Tensor SigmoidGuidance::prepare_logits(at::Tensor logits) const {
  // float64 stays as it is; anything narrower is computed in float32.
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

at::Tensor SigmoidGuidance::log_prob(const at::Tensor& logits, const at::Tensor& y, int64_t) const {
  return at::log_sigmoid(logits.gather(1, y.view({-1, 1})).squeeze(1));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Guidance, "sigmoid", daug::plugins::SigmoidGuidance,
                     "scale * grad_x log sigmoid(f(x_t,t)[y]) (DAug paper Fig. 2 'sigmoid' guidance)")
