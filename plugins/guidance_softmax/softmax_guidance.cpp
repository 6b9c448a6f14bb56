// guidance_softmax: ∇ₓ log softmax classifier guidance (guided-diffusion cond_fn, DAug generate.py cond_fn).
#include "softmax_guidance.h"

#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

const Choices<SoftmaxLogits> kSoftmaxLogits = choices<SoftmaxLogits>(
    {{"auto", SoftmaxLogits::automatic}, {"all", SoftmaxLogits::all}, {"disease_only", SoftmaxLogits::disease_only}});

SoftmaxGuidance::SoftmaxGuidance(Options opts, std::shared_ptr<Classifier> classifier, const std::string& table)
    : ClassifierGuidance(std::move(opts), std::move(classifier), "softmax", table) {}

std::string SoftmaxGuidance::describe() const {
  return fmt::format("softmax(scale={}, logits={}, classifier={})", opts_.scale, kSoftmaxLogits.name(opts_.logits),
                     opts_.classifier);
}

at::Tensor SoftmaxGuidance::prepare_logits(at::Tensor logits) const { return logits.to(at::kFloat); }

at::Tensor SoftmaxGuidance::log_prob(const at::Tensor& logits, const at::Tensor& y, int64_t ymin) const {
  const int64_t k = logits.size(1);
  auto pick = [](const at::Tensor& lp, const at::Tensor& idx) { return lp.gather(1, idx.view({-1, 1})).squeeze(1); };
  at::Tensor log_p;
  if (opts_.logits == SoftmaxLogits::all) {
    log_p = pick(at::log_softmax(logits, 1), y);
  } else {
    DAUG_CHECK(k >= 2, "softmax guidance: logits = \"", kSoftmaxLogits.name(opts_.logits), "\" needs >= 2 classes, but got ",
               k);
    at::Tensor disease = pick(at::log_softmax(logits.narrow(1, 1, k - 1), 1), (y - 1).clamp_min(0));
    if (opts_.logits == SoftmaxLogits::disease_only) {
      DAUG_CHECK(ymin >= 1, "softmax guidance: logits = \"disease_only\" drops class 0 (",
                 classifier_->class_names().at(0), "), so targets must be >= 1, but got ", ymin);
      log_p = disease;
    } else {  // auto: the released cond_fn
      log_p = at::where(y == 0, pick(at::log_softmax(logits, 1), y), disease);
    }
  }
  return log_p;
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Guidance, "softmax", daug::plugins::SoftmaxGuidance,
                     "scale * grad_x log softmax(f(x_t,t))[y] (DAug 'softmax for testing'; all|disease_only|auto)")
