#pragma once
// guidance_softmax: g = direction · scale · ∇ₓ log softmax(f_φ(x_t, t))[y] (guided-diffusion cond_fn; DAug's
// "softmax for testing", REFERENCE.md §1.2, §11.3). Declared in a header for tests.
#include <daug/guidance/classifier_guidance.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug::plugins {

/// Which logits enter the softmax (TOML names "auto", "all", "disease_only").
enum class SoftmaxLogits { automatic, all, disease_only };
/// The TOML names of SoftmaxLogits.
extern const daug::Choices<SoftmaxLogits> kSoftmaxLogits;

/// Example TOML:
///   [guidance]
///   plugin = "softmax"
///   scale = 100.0
///   classifier = "classifier"
///   logits = "auto"
struct SoftmaxGuidanceOptions {
  double scale = 100.0;
  std::string classifier = "classifier";
  SoftmaxLogits logits = SoftmaxLogits::automatic;

  void visit(daug::OptionVisitor& v) {
    v("scale", scale, "guidance scale s (released DAug: 100)", daug::Check::at_least(0));
    v("classifier", classifier, "config table of the noise-aware classifier", daug::Check::required_non_empty());
    v("logits", logits,
      "which logits enter the softmax: all (K classes, target y), disease_only (drop logit 0 = No Finding, "
      "target y-1), auto (the released cond_fn: all when y = 0, else disease_only)",
      kSoftmaxLogits);
  }
};

class SoftmaxGuidance final : public guidance::ClassifierGuidance<SoftmaxGuidance, SoftmaxGuidanceOptions> {
 public:
  /// `table`: the config table this guidance is built from (error messages name it).
  SoftmaxGuidance(Options opts, std::shared_ptr<daug::Classifier> classifier, const std::string& table = "guidance");
  std::string describe() const override;

 private:
  at::Tensor prepare_logits(at::Tensor logits) const override;
  at::Tensor log_prob(const at::Tensor& logits, const at::Tensor& y, int64_t ymin) const override;
};

}  // namespace daug::plugins
