#pragma once
/// `index` Stage: embeds every image of a Source (with its heatmap channel when the model was trained with one)
/// with a fine-tuned CLIP and writes a retrieval index (libs/retrieval, format daug.index/1). `daug index build`
/// runs it (with the stages it needs) and copies the index to --out; `daug query` searches it.
#include "clip_data.h"

#include <daug/backbone.h>
#include <daug/heatmap_composer.h>
#include <daug/source.h>
#include <daug/stage.h>

#include <memory>
#include <string>
#include <vector>

namespace daug::plugins {

struct IndexOptions {
  std::string data = "data";
  std::string split = "all";
  std::string backbone = "backbone";
  std::string composer = "clip_composer";
  clip::HeatmapOptions heatmaps;
  std::string train_stage = "train_clip";  ///< stage whose checkpoint.safetensors is loaded ("" = none)
  std::string checkpoint;                  ///< explicit checkpoint file (train_clip format); wins over train_stage
  std::string dtype = "float32";           ///< of embeddings.npy: "float32" | "float16"
  std::vector<std::string> prompts;        ///< [] = from the checkpoint's metadata, else the released prompts
  double class_logit_scale = 4.602;
  int64_t batch_size = 64;
  int64_t chunk_rows = 1024;  ///< rows per resumable chunk
  void visit(OptionVisitor& v);
};

class IndexStage final : public Stage {
 public:
  using Options = IndexOptions;
  IndexStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
             std::shared_ptr<HeatmapComposer> composer, std::string device, std::string table);
  static std::shared_ptr<Stage> create(Options opts, BuildContext& ctx);
  std::vector<Artifact> outputs() const override;
  /// The explicit `checkpoint` file, when set.
  std::string fingerprint() const override;
  void run(StageContext& ctx) override;
  std::string summary(const std::filesystem::path& output_dir) const override;
  std::string describe() const override;

 private:
  Options opts_;
  std::shared_ptr<Source> data_;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<HeatmapComposer> composer_;
  std::string device_;
  std::string table_;
};

}  // namespace daug::plugins
