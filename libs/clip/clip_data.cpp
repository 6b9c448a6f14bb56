#include "clip_data.h"

#include <daug/checkpoint.h>
#include <daug/train/checkpoint.h>
#include <nlohmann/json.hpp>

#include "clip_common.h"

#include <daug/artifact.h>
#include <daug/data/csv.h>
#include <daug/data/dataset.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::clip {

void visit_heatmap_options(OptionVisitor& v, HeatmapOptions& o) {
  v("heatmaps_stage", o.heatmaps_stage, "heatmap stage table; its heatmaps.index artifact lists the files");
  v("heatmap_dir", o.heatmap_dir, "external heatmap directory of <id><suffix> files (e.g. the authors' _+nof.npy "
    "files); overrides heatmaps_stage when non-empty");
  v("heatmap_suffix", o.heatmap_suffix, "with heatmap_dir: file-name suffix of each composed heatmap, one per "
    "composer map (the authors' naming: _+nof.npy)");
  v("on_missing_heatmap", o.on_missing_heatmap, "images without heatmaps: \"error\" (default, lists them) or "
    "\"skip\" (dropped and counted; refused under --strict)", Check::choice({"error", "skip"}));
  v("heatmap_prep", o.heatmap_prep, "\"released\": min-max and uint8-truncate each heatmap at its native size, then "
    "resize (bicubic, antialiased, rounded to 8 bits) as the released loader; the composer then takes the maps as "
    "they are (channel: quantize = false). \"resize\": resize the raw float map only (the composer quantises)",
    Check::choice({"released", "resize"}));
}

bool uses_heatmap_stage(const HeatmapOptions& o, const HeatmapComposer* composer) {
  return composer && composer->num_maps() > 0 && o.heatmap_dir.empty();
}

std::filesystem::path HeatmapSpec::file(const std::string& id, size_t m) const {
  const auto& map = maps.at(m);
  auto it = map.find(id);
  return it == map.end() ? std::filesystem::path() : it->second;
}

std::map<std::string, std::filesystem::path> read_heatmap_index(const std::filesystem::path& index_csv) {
  DAUG_CHECK_AS(DataError, std::filesystem::exists(index_csv), "heatmap index ", index_csv.string(),
                " does not exist (did the heatmap stage finish?)");
  auto csv = data::CsvTable::read(index_csv);
  const size_t id = csv.column("id"), file = csv.column("file");
  std::map<std::string, std::filesystem::path> out;
  for (size_t r = 0; r < csv.rows(); ++r)
    out[csv.at(r, id)] = index_csv.parent_path() / csv.at(r, file);
  return out;
}

HeatmapSpec resolve_heatmaps(const HeatmapOptions& o, const HeatmapComposer* composer, StageContext& ctx,
                             const std::string& where) {
  HeatmapSpec spec;
  spec.quantize_first = o.heatmap_prep == "released";
  if (!composer || composer->num_maps() == 0) return spec;
  if (o.heatmap_dir.empty()) {
    DAUG_CHECK_AS(ConfigError, composer->num_maps() == 1, where, ": the composer (", composer->describe(),
                  ") takes ", composer->num_maps(), " heatmaps but heatmaps_stage gives one map; use heatmap_dir "
                  "with one heatmap_suffix per map");
    const auto index = ctx.artifact(o.heatmaps_stage, artifacts::kHeatmapsIndex);
    spec.origin = index.string();
    spec.maps.push_back(read_heatmap_index(index));
    return spec;
  }
  DAUG_CHECK_AS(ConfigError, static_cast<int>(o.heatmap_suffix.size()) == composer->num_maps(), where,
                ".heatmap_suffix has ", o.heatmap_suffix.size(), " entr", o.heatmap_suffix.size() == 1 ? "y" : "ies",
                " but the composer (", composer->describe(), ") takes ", composer->num_maps(),
                " heatmap(s): give one suffix per map");
  const std::filesystem::path dir(o.heatmap_dir);
  DAUG_CHECK_AS(DataError, std::filesystem::is_directory(dir), where, ": heatmap directory ", dir.string(),
                " does not exist");
  spec.origin = dir.string();
  for (const auto& suf : o.heatmap_suffix) {
    std::map<std::string, std::filesystem::path> m;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0)
        m[name.substr(0, name.size() - suf.size())] = e.path();
    }
    spec.maps.push_back(std::move(m));
  }
  return spec;
}

std::vector<const Sample*> require_heatmaps(const std::vector<const Sample*>& samples, const HeatmapSpec& spec,
                                            const std::string& on_missing, bool strict, const std::string& where) {
  if (spec.maps.empty()) return samples;
  std::vector<const Sample*> kept;
  std::vector<std::string> missing;
  size_t n_missing = 0;
  for (const auto* s : samples) {
    bool ok = true;
    for (size_t m = 0; m < spec.maps.size(); ++m) {
      auto p = spec.file(s->id, m);
      if (p.empty() || !std::filesystem::exists(p)) {
        ok = false;
        if (missing.size() < 5) missing.push_back(p.empty() ? s->id + " (not in the index)" : p.string());
      }
    }
    if (ok) kept.push_back(s);
    else ++n_missing;
  }
  if (n_missing == 0) return kept;
  const std::string msg = fmt::format(
      "{}: {} of {} images have no heatmap in {}; first missing: {}", where, n_missing, samples.size(), spec.origin,
      fmt::join(missing, ", "));
  if (on_missing == "error" || strict)
    throw DataError(msg + (strict ? " (--strict)" : "") +
                    ". Run the heatmap stage on these images, or set on_missing_heatmap = \"skip\"");
  DAUG_CHECK_AS(DataError, !kept.empty(), msg, "; nothing is left to use");
  log::warn("{}; skipping them (on_missing_heatmap = \"skip\")", msg);
  return kept;
}

std::vector<at::Tensor> clip_item(const Sample& sample, int64_t size, bool with_maps, const HeatmapSpec& spec) {
  std::vector<at::Tensor> parts;
  parts.push_back(preprocess_pixels(data::load_sample_image(sample, size, size, data::Filter::bicubic, true), size));
  if (!with_maps) return parts;
  for (size_t m = 0; m < spec.maps.size(); ++m) {
    auto p = spec.file(sample.id, m);
    auto h = data::load_npy(p);
    DAUG_CHECK_AS(DataError, h.dim() >= 2 && h.dim() <= 3, p.string(),
                  ": a heatmap must be [H,W] or [C,H,W], but the file holds shape ", h.sizes());
    parts.push_back(spec.quantize_first ? quantize_resize_heatmap(h, size) : resize_heatmap(h, size));
  }
  return parts;
}

at::Tensor clip_compose(const std::vector<at::Tensor>& parts, HeatmapComposer* composer) {
  if (!composer) return parts.at(0);
  return composer->compose(parts.at(0), std::vector<at::Tensor>(parts.begin() + 1, parts.end()));
}

at::Tensor clip_batch(const std::vector<const Sample*>& batch, int64_t size, HeatmapComposer* composer,
                      const HeatmapSpec& spec, const at::Device& device) {
  std::vector<std::vector<at::Tensor>> items;
  items.reserve(batch.size());
  for (const auto* s : batch) items.push_back(clip_item(*s, size, composer != nullptr, spec));
  std::vector<at::Tensor> parts;
  for (size_t p = 0; p < items.front().size(); ++p) {
    std::vector<at::Tensor> xs;
    for (const auto& it : items) xs.push_back(it[p]);
    parts.push_back(at::stack(xs).to(device));
  }
  return clip_compose(parts, composer);
}

ClipCheckpoint load_clip_checkpoint(Backbone& backbone, const std::filesystem::path& file, const std::string& where) {
  DAUG_CHECK_AS(DataError, std::filesystem::exists(file), where, ": checkpoint ", file.string(),
                " does not exist (run the training stage first, or set checkpoint)");
  auto f = load_safetensors(file);
  NamedTensors model = train::model_state(f.tensors);
  DAUG_CHECK_AS(DataError, !model.empty(), file.string(), ": no '", train::kModelPrefix,
                "*' tensors; this is not a train_clip checkpoint");
  backbone.load_state(model);
  ClipCheckpoint out;
  if (auto it = f.metadata.find("prompts"); it != f.metadata.end())
    out.prompts = nlohmann::json::parse(it->second).get<std::vector<std::string>>();
  if (auto it = f.metadata.find("step"); it != f.metadata.end()) out.step = it->second;
  return out;
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
