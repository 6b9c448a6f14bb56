#pragma once
/// Data side of the CLIP stages (static library `daug_clip_data`, links daug_data): heatmap lookup with a clear
/// report of missing files, CLIP batches (image + composed heatmaps), checkpoint naming and the options the
/// train and evaluate stages share.
#include <daug/heatmap_composer.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/tensor.h>

#include <filesystem>
#include <string>
#include <vector>

namespace daug::clip {

/// Where heatmaps come from. Options shared by train_clip and evaluate (declare with visit_heatmap_options).
struct HeatmapOptions {
  std::string heatmaps_stage = "heatmaps";           ///< stage table whose output dir holds <id><suffix>
  std::string heatmap_dir;                           ///< explicit directory (e.g. the authors' own files); wins
  std::vector<std::string> heatmap_suffix = {"_+nof.npy"};  ///< one suffix per composed map, in map order
  std::string on_missing_heatmap = "error";          ///< "error" or "skip" (skip is refused with --strict)
};
void visit_heatmap_options(OptionVisitor& v, HeatmapOptions& o);

/// Resolved heatmap source: directory + suffixes; empty `suffixes` means no heatmaps are read.
struct HeatmapSpec {
  std::filesystem::path dir;
  std::vector<std::string> suffixes;
};

/// Builds the spec for a composer (nullptr or num_maps() == 0 → no heatmaps). The number of suffixes must equal
/// num_maps(). Uses heatmap_dir if set, else ctx.input_dir(heatmaps_stage).
HeatmapSpec resolve_heatmaps(const HeatmapOptions& o, const HeatmapComposer* composer, StageContext& ctx,
                             const std::string& where);
/// True if this configuration reads the heatmap stage's output (for depends_on()).
bool uses_heatmap_stage(const HeatmapOptions& o, const HeatmapComposer* composer);

/// Keeps the samples whose heatmaps all exist. Missing ones: with on_missing = "error" (or strict) a DataError
/// gives the count, the directory and the first paths; with "skip" they are dropped and the same is logged.
std::vector<const Sample*> require_heatmaps(const std::vector<const Sample*>& samples, const HeatmapSpec& spec,
                                            const std::string& on_missing, bool strict, const std::string& where);

/// CLIP input for a batch: images CLIP-preprocessed at `size` (preprocess_pixels), heatmaps loaded, resized to
/// `size` and composed (composer may be nullptr: plain image). Returns [N,3,size,size] on `device`.
at::Tensor clip_batch(const std::vector<const Sample*>& batch, int64_t size, HeatmapComposer* composer,
                      const HeatmapSpec& spec, const at::Device& device);

/// Refuses samples without report text (the CLIP loss and report→image retrieval need one): DataError with the
/// count and the first ids.
void require_reports(const std::vector<const Sample*>& samples, const std::string& where);

/// Names of the train_clip outputs.
inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";
inline constexpr const char* kModelPrefix = "model.";

}  // namespace daug::clip
