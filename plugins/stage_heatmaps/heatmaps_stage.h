#pragma once
/// Stage `heatmaps`: DAug's abnormality heatmaps. Each image is taken to noise level L (DDIM inversion by
/// default), decoded with classifier guidance toward `target` (default "+No Finding", UNet label 1 = healthy),
/// and composed into a heatmap (|minmax(x) − minmax(x̂)|); written as `<id>_<sign><tag>.npy` (float32 H×W, the
/// authors' `_+nof.npy` naming) plus overlay PNGs, and published through the `heatmaps.index` artifact
/// (index.csv: id,split,file,target,direction), which consumers read instead of rebuilding file names.
/// Batched, resumable, shardable (--shard k/N).
#include <daug/classifier.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/stages/common.h>

#include <cstdint>
#include <string>

namespace daug::plugins {

/// Which trained generator weights the stage loads: `<name>.safetensors` of the diffusion stage.
enum class GeneratorWeights { ema, model };
/// Guidance direction: toward (+1, TOML "+") or away from (-1, "-") the target; the value is the sign.
enum class Direction { toward = +1, away = -1 };

struct HeatmapsOptions {
  std::string generator = "generator";
  std::string classifier = "classifier";
  std::string guidance = "guidance";
  std::string composer = "composer";
  std::string data = "data";
  std::string diffusion_stage = "train_diffusion";
  std::string classifier_stage = "train_classifier";
  GeneratorWeights generator_weights = GeneratorWeights::model;  ///< released sampler: raw weights (mimic2update*.pt)
  std::string split = "all";
  EncodeMode encode = EncodeMode::ddim_inversion;
  int64_t noise_level = 500;
  std::string target = "No Finding";
  Direction direction = Direction::toward;
  int64_t label = 1;
  std::string tag = "nof";
  int64_t batch_size = 8;
  int64_t overlays = 8;
  int64_t overlay_size = 256;
  int64_t limit = 0;
  int64_t seed = -1;
  double log_every_s = 10.0;
  data::Filter resize_filter = data::Filter::bilinear;
  stages::Normalize normalize = stages::Normalize::minmax;
  train::LoaderOptions loader;  ///< loader_workers, prefetch
  std::string precision;  ///< "" = [run].precision; create() stores the resolved name

  void visit(OptionVisitor& v);
};

class HeatmapsStage final : public Stage {
 public:
  using Options = HeatmapsOptions;
  /// The components it uses; `classifier` and `guidance` are null for an unguided reconstruction.
  struct Parts {
    std::shared_ptr<Source> data;
    std::shared_ptr<Generator> generator;
    std::shared_ptr<HeatmapComposer> composer;
    std::shared_ptr<Classifier> classifier;
    std::shared_ptr<Guidance> guidance;
  };
  HeatmapsStage(Options opts, Parts parts);
  /// Requests the components and the upstream training stages it loads weights from.
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);

  std::string describe() const override;
  std::vector<Artifact> outputs() const override;
  void run(StageContext& ctx) override;
  std::string summary(const std::filesystem::path& output_dir) const override;

  /// Index of `target` among the classifier outputs `names`; ConfigError listing the valid names otherwise.
  static int64_t target_index(const std::vector<std::string>& names, const std::string& target);
  /// Resume checks of one image's finished outputs: "" when usable, otherwise why not. A heatmap must have a
  /// valid header, exactly the payload it declares, float32 and spatial size `hw` = {H, W}; an overlay must be a
  /// complete PNG (signature and final IEND chunk).
  static std::string check_finished_heatmap(const std::filesystem::path& npy, const std::vector<int64_t>& hw);
  static std::string check_finished_overlay(const std::filesystem::path& png);

 private:
  Options opts_;
  Parts parts_;
  int64_t target_ = 0;  ///< index of opts_.target among the classifier's outputs
};

}  // namespace daug::plugins
