#pragma once
/// Stage `heatmaps`: DAug's abnormality heatmaps. Each image is taken to noise level L (DDIM inversion by
/// default), decoded with classifier guidance toward `target` (default "+No Finding", UNet label 1 = healthy),
/// and composed into a heatmap (|minmax(x) − minmax(x̂)|); written as `<id>_<sign><tag>.npy` (float32 H×W, the
/// authors' `_+nof.npy` naming) plus overlay PNGs. Batched, resumable, shardable (--shard k/N).
#include <daug/generator.h>
#include <daug/options.h>
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
  GeneratorWeights generator_weights = GeneratorWeights::ema;
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
  data::Filter resize_filter = data::Filter::area;
  stages::Normalize normalize = stages::Normalize::minmax;

  void visit(OptionVisitor& v);
};

class HeatmapsStage final : public Stage {
 public:
  using Options = HeatmapsOptions;
  explicit HeatmapsStage(Options opts);
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);

  std::string describe() const override;
  std::vector<std::string> depends_on() const override;
  void run(StageContext& ctx) override;
  std::string summary(const std::filesystem::path& output_dir) const override;

  /// Index of `target` among the classifier outputs `names`; ConfigError listing the valid names otherwise.
  static int64_t target_index(const std::vector<std::string>& names, const std::string& target);

 private:
  Options opts_;
};

}  // namespace daug::plugins
