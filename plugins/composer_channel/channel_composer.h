#pragma once
/// `channel` HeatmapComposer: writes heatmaps into channels of the 3-channel CLIP input (DAug's channel
/// augmentation; drjinying/DAug daug/model.py:110-111 and daug/mimic.py heatmap loading).
#include <daug/heatmap_composer.h>
#include <daug/options.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct ChannelComposerOptions {
  /// Channel replaced by each heatmap, in map order. [0] = released code; [2] = the paper's
  /// [image, image, heatmap]; [] = the plain image (baseline, no heatmap).
  std::vector<int64_t> channels = {0};
  /// Per-map min-max, then uint8 truncation (np.uint8(x*255)) here, on the already resized maps. Off by default:
  /// train_clip/evaluate already quantise at the native size before resizing (heatmap_prep = "released").
  bool quantize = false;
  void visit(OptionVisitor& v);
};

class ChannelComposer final : public HeatmapComposer {
 public:
  using Options = ChannelComposerOptions;
  /// `table`: the config table this composer is built from (error messages name it, e.g. [clip_composer]).
  explicit ChannelComposer(Options opts, const std::string& table = "composer");
  static std::shared_ptr<HeatmapComposer> create(Options opts, BuildContext& ctx);

  /// `image`: [N,3,H,W] CLIP-normalised pixels. `maps`: num_maps() tensors [N,c,H,W] (raw heatmaps resized to
  /// H×W; channel 0 is used). Map j → min-max → uint8 → (m − mean[c]) / std[c] into channel c = channels[j].
  at::Tensor compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) override;
  /// Number of heatmaps expected (0 with channels = []: the baseline, which takes no maps).
  int num_maps() const override { return static_cast<int>(opts_.channels.size()); }
  std::string describe() const override;
  const Options& options() const { return opts_; }

 private:
  Options opts_;
};

}  // namespace daug::plugins
