// guidance_sigmoid: ∇ₓ log σ(logit_y) classifier guidance (DAug paper Fig. 2, "sigmoid").
#include "sigmoid_guidance.h"

#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

SigmoidGuidance::SigmoidGuidance(Options opts, std::shared_ptr<Classifier> classifier)
    : opts_(std::move(opts)), classifier_(std::move(classifier)) {
  check_options(opts_, "[guidance] (sigmoid)");
  DAUG_CHECK_AS(ConfigError, classifier_ != nullptr, "[guidance] (sigmoid): no classifier");
}

std::shared_ptr<Guidance> SigmoidGuidance::create(Options opts, BuildContext& ctx) {
  auto clf = ctx.component<Classifier>(opts.classifier);
  return std::make_shared<SigmoidGuidance>(std::move(opts), std::move(clf));
}

std::string SigmoidGuidance::describe() const {
  return fmt::format("sigmoid(scale={}, classifier={})", opts_.scale, opts_.classifier);
}

at::Tensor SigmoidGuidance::gradient(const GuidanceInput& in) {
  const int64_t n = in.x_t.size(0);
  DAUG_CHECK(in.target.defined() && in.target.dim() == 1 && in.target.size(0) == n,
             "sigmoid guidance: target must be [", n, "] class indices, but got ",
             in.target.defined() ? fmt::format("[{}]", fmt::join(in.target.sizes(), ", ")) : std::string("none"));
  DAUG_CHECK(in.direction == 1 || in.direction == -1, "sigmoid guidance: direction must be +1 or -1, but got ",
             in.direction);
  at::AutoGradMode grad_on(true);
  at::Tensor x = in.x_t.detach().requires_grad_(true);
  at::Tensor logits = classifier_->logits(x, in.t);
  DAUG_CHECK(logits.dim() == 2 && logits.size(0) == n, "sigmoid guidance: the classifier returned ",
             fmt::format("[{}]", fmt::join(logits.sizes(), ", ")), " logits for ", n, " images");
  const int64_t k = logits.size(1);
  at::Tensor y = in.target.to(logits.device(), at::kLong);
  const int64_t ymin = y.min().item<int64_t>(), ymax = y.max().item<int64_t>();
  if (ymin < 0 || ymax >= k) {
    const auto names = classifier_->class_names();
    throw Error(fmt::format("sigmoid guidance: targets must be in [0, {}] (classes: {}), but got values in [{}, {}]",
                            k - 1, fmt::join(names, ", "), ymin, ymax));
  }
  at::Tensor log_p = at::log_sigmoid(logits.gather(1, y.view({-1, 1})).squeeze(1));
  at::Tensor g = torch::autograd::grad({log_p.sum()}, {x})[0];
  return (g * (opts_.scale * in.direction)).to(in.x_t.scalar_type());
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Guidance, "sigmoid", daug::plugins::SigmoidGuidance,
                     "scale * grad_x log sigmoid(f(x_t,t)[y]) (DAug paper Fig. 2 'sigmoid' guidance)")
