// guidance_softmax: ∇ₓ log softmax classifier guidance (guided-diffusion cond_fn, DAug generate.py cond_fn).
#include "softmax_guidance.h"

#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

SoftmaxGuidance::SoftmaxGuidance(Options opts, std::shared_ptr<Classifier> classifier)
    : opts_(std::move(opts)), classifier_(std::move(classifier)) {
  check_options(opts_, "[guidance] (softmax)");
  DAUG_CHECK_AS(ConfigError, classifier_ != nullptr, "[guidance] (softmax): no classifier");
}

std::shared_ptr<Guidance> SoftmaxGuidance::create(Options opts, BuildContext& ctx) {
  auto clf = ctx.component<Classifier>(opts.classifier);
  return std::make_shared<SoftmaxGuidance>(std::move(opts), std::move(clf));
}

std::string SoftmaxGuidance::describe() const {
  return fmt::format("softmax(scale={}, logits={}, classifier={})", opts_.scale, opts_.logits, opts_.classifier);
}

at::Tensor SoftmaxGuidance::gradient(const GuidanceInput& in) {
  const int64_t n = in.x_t.size(0);
  DAUG_CHECK(in.target.defined() && in.target.dim() == 1 && in.target.size(0) == n,
             "softmax guidance: target must be [", n, "] class indices, but got ",
             in.target.defined() ? fmt::format("[{}]", fmt::join(in.target.sizes(), ", ")) : std::string("none"));
  DAUG_CHECK(in.direction == 1 || in.direction == -1, "softmax guidance: direction must be +1 or -1, but got ",
             in.direction);
  at::AutoGradMode grad_on(true);
  at::Tensor x = in.x_t.detach().requires_grad_(true);
  at::Tensor logits = classifier_->logits(x, in.t).to(at::kFloat);
  const int64_t k = logits.size(1);
  DAUG_CHECK(logits.dim() == 2 && logits.size(0) == n, "softmax guidance: the classifier returned ",
             fmt::format("[{}]", fmt::join(logits.sizes(), ", ")), " logits for ", n, " images");
  at::Tensor y = in.target.to(logits.device(), at::kLong);
  const int64_t ymin = y.min().item<int64_t>(), ymax = y.max().item<int64_t>();
  if (ymin < 0 || ymax >= k) {
    const auto names = classifier_->class_names();
    throw Error(fmt::format("softmax guidance: targets must be in [0, {}] (classes: {}), but got values in [{}, {}]",
                            k - 1, fmt::join(names, ", "), ymin, ymax));
  }
  auto pick = [](const at::Tensor& lp, const at::Tensor& idx) { return lp.gather(1, idx.view({-1, 1})).squeeze(1); };
  at::Tensor log_p;
  if (opts_.logits == "all") {
    log_p = pick(at::log_softmax(logits, 1), y);
  } else {
    DAUG_CHECK(k >= 2, "softmax guidance: logits = \"", opts_.logits, "\" needs >= 2 classes, but got ", k);
    at::Tensor disease = pick(at::log_softmax(logits.narrow(1, 1, k - 1), 1), (y - 1).clamp_min(0));
    if (opts_.logits == "disease_only") {
      DAUG_CHECK(ymin >= 1, "softmax guidance: logits = \"disease_only\" drops class 0 (",
                 classifier_->class_names().at(0), "), so targets must be >= 1, but got ", ymin);
      log_p = disease;
    } else {  // auto: the released cond_fn
      log_p = at::where(y == 0, pick(at::log_softmax(logits, 1), y), disease);
    }
  }
  at::Tensor g = torch::autograd::grad({log_p.sum()}, {x})[0];
  return (g * (opts_.scale * in.direction)).to(in.x_t.scalar_type());
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Guidance, "softmax", daug::plugins::SoftmaxGuidance,
                     "scale * grad_x log softmax(f(x_t,t))[y] (DAug 'softmax for testing'; all|disease_only|auto)")
