// tempered_softmax: classifier guidance through a softmax with temperature τ,
//   g = direction · scale · ∇ₓ log softmax(f(x_t, t) / τ)[y].
// τ = 1 is DAug's "softmax for testing"; τ > 1 flattens the classifier's confidence (weaker, smoother guidance),
// τ < 1 sharpens it. A complete plugin in one file: Options with visit(), the class, create(), and the macro.
#include <daug/build_context.h>
#include <daug/classifier.h>
#include <daug/guidance.h>
#include <daug/options.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <fmt/format.h>

namespace example {

struct TemperedSoftmaxOptions {
  double scale = 100.0;
  double temperature = 2.0;
  std::string classifier = "classifier";
  void visit(daug::OptionVisitor& v) {
    v("scale", scale, "guidance scale s", daug::Check::at_least(0));
    v("temperature", temperature, "softmax temperature τ (1 = plain softmax)", daug::Check::greater_than(0));
    v("classifier", classifier, "config table of the noise-aware classifier");
  }
};

class TemperedSoftmaxGuidance final : public daug::Guidance {
 public:
  using Options = TemperedSoftmaxOptions;
  TemperedSoftmaxGuidance(Options o, std::shared_ptr<daug::Classifier> c) : opts_(std::move(o)), clf_(std::move(c)) {}

  static std::shared_ptr<daug::Guidance> create(Options o, daug::BuildContext& ctx) {
    auto clf = ctx.component<daug::Classifier>(o.classifier);
    return std::make_shared<TemperedSoftmaxGuidance>(std::move(o), std::move(clf));
  }

  at::Tensor gradient(const daug::GuidanceInput& in) override {
    if (opts_.scale == 0.0) return at::zeros_like(in.x_t);
    torch::autograd::AutoGradMode grad_on(true);  // samplers run under NoGradGuard
    auto x = in.x_t.detach().requires_grad_(true);
    auto logp = at::log_softmax(clf_->logits(x, in.t) / opts_.temperature, 1);
    auto selected = logp.gather(1, in.target.view({-1, 1})).sum();
    auto g = torch::autograd::grad({selected}, {x})[0];
    return g * (opts_.scale * in.direction);
  }

  std::string describe() const override {
    return fmt::format("tempered_softmax(scale={}, temperature={})", opts_.scale, opts_.temperature);
  }

 private:
  Options opts_;
  std::shared_ptr<daug::Classifier> clf_;
};

}  // namespace example

DAUG_REGISTER_PLUGIN(daug::Guidance, "tempered_softmax", example::TemperedSoftmaxGuidance,
                     "softmax guidance with a temperature (out-of-tree example)")
