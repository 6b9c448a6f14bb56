#pragma once
// guidance_sigmoid: g = direction · scale · ∇ₓ log σ(f_φ(x_t, t)[y]) — the per-class (BCE-style) guidance of the
// DAug paper's Fig. 2 ablation (REFERENCE.md §11.3). Declared in a header for tests.
#include <daug/build_context.h>
#include <daug/classifier.h>
#include <daug/guidance.h>
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

class SigmoidGuidance final : public daug::Guidance {
 public:
  using Options = SigmoidGuidanceOptions;
  SigmoidGuidance(Options opts, std::shared_ptr<daug::Classifier> classifier);
  static std::shared_ptr<daug::Guidance> create(Options opts, daug::BuildContext& ctx);
  at::Tensor gradient(const daug::GuidanceInput& in) override;
  std::string describe() const override;

 private:
  Options opts_;
  std::shared_ptr<daug::Classifier> classifier_;
};

}  // namespace daug::plugins
