#pragma once
/// ClassifierGuidance: the base of the classifier-guidance plugins (guidance_softmax, guidance_sigmoid),
/// g = direction · scale · ∇ₓ Σ_b log p(y_b | x_t, t) with p from a noise-aware Classifier. The base holds the
/// options and the classifier, provides create(), checks targets, direction and the classifier's logits, and takes
/// the gradient on x.detach().requires_grad_(true) under AutoGradMode(true) with torch::autograd::grad (no .grad
/// accumulation on the classifier's parameters; works inside the sampler's NoGradGuard). A plugin supplies log p.
#include <daug/build_context.h>
#include <daug/classifier.h>
#include <daug/error.h>
#include <daug/guidance.h>
#include <daug/int_range.h>
#include <daug/options.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace daug::guidance {

/// `Opts` has `double scale`, `std::string classifier` (the classifier's config table) and visit().
/// Errors name the table and plugin: "[<table>] (<name>)" for options, "<name> guidance: ..." for inputs.
template <class Derived, class Opts>
class ClassifierGuidance : public Guidance {
 public:
  using Options = Opts;
  static std::shared_ptr<Guidance> create(Options opts, BuildContext& ctx) {
    auto clf = ctx.component<Classifier>(opts.classifier);
    return std::make_shared<Derived>(std::move(opts), std::move(clf), ctx.table_or("guidance"));
  }

  at::Tensor gradient(const GuidanceInput& in) override {
    const int64_t n = in.x_t.size(0);
    DAUG_CHECK(in.target.defined() && in.target.dim() == 1 && in.target.size(0) == n, name_,
               " guidance: target must be [", n, "] class indices, but got ",
               in.target.defined() ? fmt::format("[{}]", fmt::join(in.target.sizes(), ", ")) : std::string("none"));
    DAUG_CHECK(in.direction == 1 || in.direction == -1, name_, " guidance: direction must be +1 or -1, but got ",
               in.direction);
    at::AutoGradMode grad_on(true);
    at::Tensor x = in.x_t.detach().requires_grad_(true);
    at::Tensor logits = prepare_logits(classifier_->logits(x, in.t));
    DAUG_CHECK(logits.dim() == 2 && logits.size(0) == n, name_, " guidance: the classifier returned ",
               fmt::format("[{}]", fmt::join(logits.sizes(), ", ")), " logits for ", n, " images");
    const int64_t k = logits.size(1);
    const int64_t ymin = checked_target_min(in.target, k);
    at::Tensor y = in.target.to(logits.device(), at::kLong, /*non_blocking=*/true);
    at::Tensor g = torch::autograd::grad({log_prob(logits, y, ymin).sum()}, {x})[0];
    return (g * (opts_.scale * in.direction)).to(in.x_t.scalar_type());
  }

 protected:
  /// Checks the options and that there is a classifier (ConfigError naming "[<table>] (<name>)").
  ClassifierGuidance(Options opts, std::shared_ptr<Classifier> classifier, std::string name, const std::string& table)
      : opts_(std::move(opts)), classifier_(std::move(classifier)), name_(std::move(name)) {
    check_options(opts_, "[" + table + "] (" + name_ + ")");
    DAUG_CHECK_AS(ConfigError, classifier_ != nullptr, "[", table, "] (", name_, "): no classifier");
  }
  /// The classifier's logits as the plugin uses them (e.g. cast to float); default: unchanged.
  virtual at::Tensor prepare_logits(at::Tensor logits) const { return logits; }
  /// log p(y_b | x_t, t) per image ([N]) from logits [N, K] and targets y [N] in [0, K); `ymin` = min(y).
  virtual at::Tensor log_prob(const at::Tensor& logits, const at::Tensor& y, int64_t ymin) const = 0;

  Options opts_;
  std::shared_ptr<Classifier> classifier_;
  std::string name_;

 private:
  /// min(target) after checking 0 <= target < k. The sampler passes the same target tensor at every step, so a
  /// target is checked once and remembered (same tensor, same version): a target on a device is read back once
  /// per translate call, not once per step; a host target costs nothing.
  int64_t checked_target_min(const at::Tensor& target, int64_t k) {
    std::lock_guard<std::mutex> lock(checked_mu_);
    if (checked_.defined() && checked_.is_same(target) && checked_version_ == target._version() && checked_k_ == k)
      return checked_min_;
    const IntRange r = int_range(target);
    if (!r.within(0, k - 1)) {
      const auto names = classifier_->class_names();
      throw Error(fmt::format("{} guidance: targets must be in [0, {}] (classes: {}), but got values in [{}, {}]",
                              name_, k - 1, fmt::join(names, ", "), r.min, r.max));
    }
    checked_ = target;
    checked_version_ = target._version();
    checked_k_ = k;
    checked_min_ = r.min;
    return r.min;
  }
  std::mutex checked_mu_;  // gradient() may be called from several threads
  at::Tensor checked_;
  int64_t checked_version_ = -1;
  int64_t checked_k_ = -1, checked_min_ = 0;
};

}  // namespace daug::guidance
