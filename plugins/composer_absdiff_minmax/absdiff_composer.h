#pragma once
// composer_absdiff_minmax: the abnormality heatmap |minmax(x) − minmax(x̂)| (DAug generate.py:220-225, Wolleb
// classifier_sample_known.py:166-170), or Σ_c |x_c − x̂_c| (Wolleb BraTS). Declared in a header for tests.
#include <daug/build_context.h>
#include <daug/heatmap_composer.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug::plugins {

/// Example TOML:
///   [composer]
///   plugin = "absdiff_minmax"
///   channels = "first"
struct AbsdiffComposerOptions {
  std::string channels = "first";

  void visit(daug::OptionVisitor& v) {
    v("channels", channels,
      "first: |minmax(x[:,0]) − minmax(x̂[:,0])| per image (DAug/CheXpert); sum: Σ_c |x_c − x̂_c| without "
      "min-max (Wolleb BraTS)",
      daug::Check::choice({"first", "sum"}));
  }
};

class AbsdiffComposer final : public daug::HeatmapComposer {
 public:
  using Options = AbsdiffComposerOptions;
  explicit AbsdiffComposer(Options opts);
  static std::shared_ptr<daug::HeatmapComposer> create(Options opts, daug::BuildContext& ctx);
  /// image = x [N,C,H,W], maps = {x̂ [N,c,H,W]} (c = C for "sum") → [N,1,H,W] float32 on x's device. A constant image has
  /// min-max 0 everywhere (guided-diffusion's visualize would divide by zero).
  at::Tensor compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) override;
  std::string describe() const override;

 private:
  Options opts_;
};

}  // namespace daug::plugins
