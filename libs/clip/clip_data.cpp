#include "clip_data.h"

#include "clip_common.h"

#include <daug/data/dataset.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

namespace daug::clip {

void visit_heatmap_options(OptionVisitor& v, HeatmapOptions& o) {
  v("heatmaps_stage", o.heatmaps_stage, "stage table whose output directory holds the heatmaps <id><suffix>");
  v("heatmap_dir", o.heatmap_dir, "explicit heatmap directory (e.g. the authors' _+nof.npy files); overrides "
    "heatmaps_stage when non-empty");
  v("heatmap_suffix", o.heatmap_suffix, "file-name suffix of each composed heatmap, one per composer map "
    "(released: _+nof.npy)");
  v("on_missing_heatmap", o.on_missing_heatmap, "images without heatmaps: \"error\" (default, lists them) or "
    "\"skip\" (dropped and counted; refused under --strict)", Check::choice({"error", "skip"}));
}

bool uses_heatmap_stage(const HeatmapOptions& o, const HeatmapComposer* composer) {
  return composer && composer->num_maps() > 0 && o.heatmap_dir.empty();
}

HeatmapSpec resolve_heatmaps(const HeatmapOptions& o, const HeatmapComposer* composer, StageContext& ctx,
                             const std::string& where) {
  HeatmapSpec spec;
  if (!composer || composer->num_maps() == 0) return spec;
  DAUG_CHECK_AS(ConfigError, static_cast<int>(o.heatmap_suffix.size()) == composer->num_maps(), where,
                ".heatmap_suffix has ", o.heatmap_suffix.size(), " entr", o.heatmap_suffix.size() == 1 ? "y" : "ies",
                " but the composer (", composer->describe(), ") takes ", composer->num_maps(),
                " heatmap(s): give one suffix per map");
  spec.suffixes = o.heatmap_suffix;
  spec.dir = o.heatmap_dir.empty() ? ctx.input_dir(o.heatmaps_stage) : std::filesystem::path(o.heatmap_dir);
  DAUG_CHECK_AS(DataError, std::filesystem::is_directory(spec.dir), where, ": heatmap directory ", spec.dir.string(),
                " does not exist");
  return spec;
}

std::vector<const Sample*> require_heatmaps(const std::vector<const Sample*>& samples, const HeatmapSpec& spec,
                                            const std::string& on_missing, bool strict, const std::string& where) {
  if (spec.suffixes.empty()) return samples;
  std::vector<const Sample*> kept;
  std::vector<std::string> missing;
  size_t n_missing = 0;
  for (const auto* s : samples) {
    bool ok = true;
    for (const auto& suf : spec.suffixes) {
      auto p = heatmap_path(spec.dir, s->id, suf);
      if (!std::filesystem::exists(p)) {
        ok = false;
        if (missing.size() < 5) missing.push_back(p.string());
      }
    }
    if (ok) kept.push_back(s);
    else ++n_missing;
  }
  if (n_missing == 0) return kept;
  const std::string msg = fmt::format(
      "{}: {} of {} images have no heatmap in {} (suffixes {}); first missing: {}", where, n_missing,
      samples.size(), spec.dir.string(), fmt::join(spec.suffixes, ", "), fmt::join(missing, ", "));
  if (on_missing == "error" || strict)
    throw DataError(msg + (strict ? " (--strict)" : "") +
                    ". Run the heatmap stage on these images, or set on_missing_heatmap = \"skip\"");
  DAUG_CHECK_AS(DataError, !kept.empty(), msg, "; nothing is left to use");
  log::warn("{}; skipping them (on_missing_heatmap = \"skip\")", msg);
  return kept;
}

at::Tensor clip_batch(const std::vector<const Sample*>& batch, int64_t size, HeatmapComposer* composer,
                      const HeatmapSpec& spec, const at::Device& device) {
  std::vector<at::Tensor> imgs;
  imgs.reserve(batch.size());
  for (const auto* s : batch)
    imgs.push_back(preprocess_pixels(data::load_sample_image(*s, size, size, data::Filter::bicubic, true), size));
  auto pixels = at::stack(imgs).to(device);
  if (!composer) return pixels;
  std::vector<at::Tensor> maps;
  for (const auto& suf : spec.suffixes) {
    std::vector<at::Tensor> hs;
    for (const auto* s : batch) {
      auto p = heatmap_path(spec.dir, s->id, suf);
      auto h = data::load_npy(p);
      DAUG_CHECK_AS(DataError, h.dim() >= 2 && h.dim() <= 3, p.string(), ": a heatmap must be [H,W] or [C,H,W], "
                    "but the file holds shape ", h.sizes());
      hs.push_back(resize_heatmap(h, size));
    }
    maps.push_back(at::stack(hs).to(device));
  }
  return composer->compose(pixels, maps);
}

void require_reports(const std::vector<const Sample*>& samples, const std::string& where) {
  size_t empty = 0;
  std::vector<std::string> first;
  for (const auto* s : samples)
    if (s->report.empty()) {
      ++empty;
      if (first.size() < 5) first.push_back(s->id);
    }
  DAUG_CHECK_AS(DataError, empty == 0, where, ": ", empty, " of ", samples.size(),
                " images have no report text (needed for the contrastive loss and report retrieval); first: ",
                fmt::format("{}", fmt::join(first, ", ")));
}

}  // namespace daug::clip
