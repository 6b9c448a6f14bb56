#pragma once
// guidance_sigmoid: g = direction · scale · ∇ₓ log σ(f_φ(x_t, t)[y]) — the per-class (BCE-style) guidance of the
// DAug paper's Fig. 2 ablation (REFERENCE.md §11.3). Declared in a header for tests.
#include <daug/guidance/classifier_guidance.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug::plugins {

/// Example TOML:
///   [guidance]
///   plugin = "sigmoid"
///   scale = 100.0
struct SigmoidGuidanceOptions {
  double scale = 100.0;
  std::string classifier = "classifier";

  void visit(daug::OptionVisitor& v) {
    v("scale", scale, "guidance scale s (released DAug softmax guidance used 100)", daug::Check::at_least(0));
    v("classifier", classifier, "config table of the noise-aware classifier", daug::Check::required_non_empty());
  }
};

class SigmoidGuidance final : public guidance::ClassifierGuidance<SigmoidGuidance, SigmoidGuidanceOptions> {
 public:
  /// `table`: the config table this guidance is built from (error messages name it).
  SigmoidGuidance(Options opts, std::shared_ptr<daug::Classifier> classifier, const std::string& table = "guidance");
  std::string describe() const override;

 private:
  /// Reduced-precision logits (half, bfloat16) are promoted to float32 before log σ, as the softmax guidance does.
  at::Tensor prepare_logits(at::Tensor logits) const override;
  at::Tensor log_prob(const at::Tensor& logits, const at::Tensor& y, int64_t ymin) const override;
};

}  // namespace daug::plugins
