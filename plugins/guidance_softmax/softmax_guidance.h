#pragma once
// guidance_softmax: g = direction · scale · ∇ₓ log softmax(f_φ(x_t, t))[y] (guided-diffusion cond_fn; DAug's
// "softmax for testing", REFERENCE.md §1.2, §11.3). Declared in a header for tests.
#include <daug/build_context.h>
#include <daug/classifier.h>
#include <daug/guidance.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug::plugins {

/// Example TOML:
///   [guidance]
///   plugin = "softmax"
///   scale = 100.0
///   classifier = "classifier"
///   logits = "auto"
struct SoftmaxGuidanceOptions {
  double scale = 100.0;
  std::string classifier = "classifier";
  std::string logits = "auto";

  void visit(daug::OptionVisitor& v) {
    v("scale", scale, "guidance scale s (released DAug: 100)", daug::Check::at_least(0));
    v("classifier", classifier, "config table of the noise-aware classifier", daug::Check::required_non_empty());
    v("logits", logits,
      "which logits enter the softmax: all (K classes, target y), disease_only (drop logit 0 = No Finding, "
      "target y-1), auto (the released cond_fn: all when y = 0, else disease_only)",
      daug::Check::choice({"auto", "all", "disease_only"}));
  }
};

class SoftmaxGuidance final : public daug::Guidance {
 public:
  using Options = SoftmaxGuidanceOptions;
  SoftmaxGuidance(Options opts, std::shared_ptr<daug::Classifier> classifier);
  static std::shared_ptr<daug::Guidance> create(Options opts, daug::BuildContext& ctx);
  at::Tensor gradient(const daug::GuidanceInput& in) override;
  std::string describe() const override;

 private:
  Options opts_;
  std::shared_ptr<daug::Classifier> classifier_;
};

}  // namespace daug::plugins
