#pragma once
/// HeatmapComposer: combines an image with maps derived from it into one tensor.
/// Two roles ship: `absdiff_minmax` (image = x, maps = {x̂} → |minmax(x) − minmax(x̂)|, the abnormality heatmap)
/// and `channel` (image = preprocessed 3-channel CLIP input, maps = heatmaps → channel-augmented input).
#include <daug/component.h>
#include <daug/tensor.h>

#include <vector>

namespace daug {

/// Contract: `image` is [N,C,H,W]; every map is [N,c,H,W] with the same N, H, W (a mismatch throws
/// daug::Error naming both shapes); inputs are not modified; the result is on the image's device.
class DAUG_SDK_API HeatmapComposer : public Component {
 public:
  static constexpr const char* kInterface = "HeatmapComposer";
  ~HeatmapComposer() override;
  virtual at::Tensor compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) = 0;
  /// How many maps compose() expects; 0 = none (compose() ignores maps: the no-heatmap baseline).
  virtual int num_maps() const { return 1; }
};

}  // namespace daug
