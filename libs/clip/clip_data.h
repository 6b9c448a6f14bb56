#pragma once
/// Data side of the CLIP stages (static library `daug_clip_data`, links daug_data): heatmap lookup with a clear
/// report of missing files, CLIP batches (image + composed heatmaps), checkpoint naming and the options the
/// train and evaluate stages share.
#include <daug/backbone.h>
#include <daug/heatmap_composer.h>
#include <daug/options.h>
#include <daug/source.h>
#include <daug/stage.h>
#include <daug/tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace daug::clip {

/// Where heatmaps come from. Options shared by train_clip and evaluate (declare with visit_heatmap_options).
struct HeatmapOptions {
  std::string heatmaps_stage = "heatmaps";  ///< heatmap stage table, read through its `heatmaps.index` artifact
  std::string heatmap_dir;                  ///< external directory of <id><suffix> files (the authors' own); wins
  std::vector<std::string> heatmap_suffix = {"_+nof.npy"};  ///< with heatmap_dir: one suffix per composed map
  std::string on_missing_heatmap = "error";  ///< "error" or "skip" (skip is refused with --strict)
  std::string heatmap_prep = "released";     ///< "released" (min-max + uint8 at native size, then resize) or "resize"
};
void visit_heatmap_options(OptionVisitor& v, HeatmapOptions& o);

/// Resolved heatmap source: per composed map, the file of each image id. Empty `maps` = no heatmaps are read.
struct HeatmapSpec {
  std::string origin;  ///< for messages: the index file or directory the files come from
  std::vector<std::map<std::string, std::filesystem::path>> maps;
  bool quantize_first = true;  ///< heatmap_prep = "released" (quantize_resize_heatmap), else resize_heatmap
  /// File of image `id` for map `m`, or an empty path if the source has none.
  std::filesystem::path file(const std::string& id, size_t m) const;
};

/// True if this configuration reads a heatmap stage's output. Call it in create() and request that stage
/// (ctx.component<Stage>(o.heatmaps_stage)) so it is a declared dependency.
bool uses_heatmap_stage(const HeatmapOptions& o, const HeatmapComposer* composer);
/// Builds the spec for a composer (nullptr or num_maps() == 0 → no heatmaps). From heatmap_dir: the files
/// <dir>/<id><suffix>, one suffix per map. Otherwise: the `heatmaps.index` artifact of heatmaps_stage (one map).
HeatmapSpec resolve_heatmaps(const HeatmapOptions& o, const HeatmapComposer* composer, StageContext& ctx,
                             const std::string& where);
/// Reads a heatmap index (id,split,file[,target,direction]; `file` relative to the index's directory).
std::map<std::string, std::filesystem::path> read_heatmap_index(const std::filesystem::path& index_csv);

/// Keeps the samples whose heatmaps all exist. Missing ones: with on_missing = "error" (or strict) a DataError
/// gives the count, the directory and the first paths; with "skip" they are dropped and the same is logged.
std::vector<const Sample*> require_heatmaps(const std::vector<const Sample*>& samples, const HeatmapSpec& spec,
                                            const std::string& on_missing, bool strict, const std::string& where);

/// CLIP input for a batch: images CLIP-preprocessed at `size` (preprocess_pixels), heatmaps loaded, brought to
/// `size` (spec.quantize_first: quantize_resize_heatmap, the released order; else resize_heatmap) and composed
/// (composer may be nullptr: plain image). Returns [N,3,size,size] on `device`.
at::Tensor clip_batch(const std::vector<const Sample*>& batch, int64_t size, HeatmapComposer* composer,
                      const HeatmapSpec& spec, const at::Device& device);
/// clip_batch in two halves, for a loader (train::Prefetcher) that loads items on worker threads: clip_item is one
/// sample's CPU tensors {pixels [3,size,size], then with a composer one [1,size,size] map per spec map} (thread-safe);
/// clip_compose takes those parts stacked and moved to the device and composes them. Together they give exactly
/// clip_batch's result.
std::vector<at::Tensor> clip_item(const Sample& sample, int64_t size, bool with_maps, const HeatmapSpec& spec);
at::Tensor clip_compose(const std::vector<at::Tensor>& parts, HeatmapComposer* composer);

/// What a train_clip checkpoint carried besides the weights.
struct ClipCheckpoint {
  std::vector<std::string> prompts;  ///< the class prompts of its metadata; empty when it stores none
  std::string step;                  ///< its training step; empty when it stores none
};
/// Loads a train_clip checkpoint (checkpoint.safetensors: its `model.*` tensors) into `backbone`. DataError naming
/// the file when it does not exist (`where` says which stage needs it) or holds no `model.*` tensors.
ClipCheckpoint load_clip_checkpoint(Backbone& backbone, const std::filesystem::path& file, const std::string& where);

/// Refuses samples without report text (the CLIP loss and report→image retrieval need one): DataError with the
/// count and the first ids.
void require_reports(const std::vector<const Sample*>& samples, const std::string& where);


}  // namespace daug::clip
