// Stage `localize` (see localize_stage.h and README.md).
#include "localize_stage.h"

#include <daug/paired_items.h>
#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/data/image.h>
#include <daug/error.h>
#include <daug/localization/evaluation.h>
#include <daug/localization/load.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/stages/common.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <tuple>

namespace daug::plugins {

void LocalizeOptions::visit(OptionVisitor& v) {
  v("heatmaps_stage", heatmaps_stage, "heatmaps stage table whose heatmaps (its index.csv) are scored",
    Check::required_non_empty());
  v("data", data,
    "Source table with ground-truth boxes/masks (it must implement LocalizationTruth, e.g. nih with boxes.csv); "
    "the images the heatmaps stage processed",
    Check::required_non_empty());
  v("threshold", threshold, "threshold on the min-max heatmap for the IoBB detection", Check::range(0.0, 1.0));
  v("iobb", iobb, "IoBB hit = IoBB > this (ChestX-ray8: 0.1 ... 0.7)", Check::range(0.0, 0.999999));
  v("overlays", overlays,
    "overlay PNGs (heatmap on the image, boxes, mask contour, maximum) for the first N boxed "
    "(image, label) pairs by id",
    Check::at_least(0));
  v("overlay_size", overlay_size, "overlay side in pixels", Check::range(16, 2048));
  v("bootstrap_draws", bootstrap_draws, "bootstrap draws of the hit-rate 95% CIs", Check::at_least(1));
  v("bootstrap_seed", bootstrap_seed, "bootstrap seed (also seeds the uniform-noise reference maps)",
    Check::at_least(0));
}

LocalizeStage::LocalizeStage(Options opts, std::shared_ptr<Source> data)
    : opts_(std::move(opts)), data_(std::move(data)), truth_(data_ ? localization_truth(*data_) : nullptr) {
  check_options(opts_, "[localize]");
  DAUG_CHECK_AS(ConfigError, truth_ != nullptr && !truth_->truth_boxes().empty(),
                "[localize].data: the Source has no ground-truth boxes or masks");
}

std::shared_ptr<Stage> LocalizeStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  // A Source may implement LocalizationTruth and still have nothing for this data (nih without a boxes file).
  const LocalizationTruth* truth = localization_truth(*data);
  if (!truth || truth->truth_boxes().empty())
    throw ConfigError(fmt::format(
        "{}: table [{}] ({}) has no ground-truth boxes or masks; the localize stage needs a Source that implements "
        "daug::LocalizationTruth and has boxes (e.g. plugin \"nih\" with a boxes.csv, or \"synthetic_lesions\")",
        ctx.where("data"), opts.data, data->describe()));
  ctx.component<Stage>(opts.heatmaps_stage);  // its heatmaps.index is read in run()
  return std::make_shared<LocalizeStage>(std::move(opts), std::move(data));
}

std::string LocalizeStage::describe() const {
  return fmt::format("localize(heatmaps={}, data={})", opts_.heatmaps_stage, opts_.data);
}

std::vector<Artifact> LocalizeStage::outputs() const {
  return {{"localization", "localization.md", "localisation tables (Markdown) with the reference rows"},
          {"localization.csv", "localization.csv", "label,map,n,hit rates with 95% CIs,mean IoBB,chance"},
          {"localization.json", "localization.json", "the tables as JSON (per label, per map; pixel metrics)"},
          paired_items_artifact(),
          {artifacts::kOverlays, "overlays",
           "PNG: heatmap on the image, GT boxes (green), mask contour (cyan), maximum (blue cross); <id>_<label>_"
           "<hit|miss>.png"},
          metrics_artifact(),
          summary_artifact()};
}

namespace {

struct Key {
  std::string id, label;
  bool operator<(const Key& o) const { return std::tie(id, label) < std::tie(o.id, o.label); }
};

std::string file_safe(const std::string& s) {
  std::string o;
  for (char c : s) o += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
  return o;
}

/// Heatmap (min-max, 'hot') blended half and half on the gray image, S×S; GT boxes, the mask contour and the
/// heatmap's maximum drawn on top.
at::Tensor overlay(const Sample& s, const loc::Map& heat, const std::vector<const TruthBox*>& boxes,
                   const std::filesystem::path& mask, int64_t S) {
  at::Tensor img = data::resize(data::load_gray(s.image), S, S, data::Filter::bilinear).clamp(0, 1);
  at::Tensor h = at::from_blob(const_cast<float*>(heat.v.data()), {1, heat.h, heat.w}, at::kFloat).clone();
  h = data::resize(data::minmax(h), S, S, data::Filter::bilinear).clamp(0, 1);
  at::Tensor out = (0.5 * img.expand({3, S, S}) + 0.5 * stages::hot_colormap(h[0])).contiguous();
  auto a = out.accessor<float, 3>();
  auto put = [&](int64_t y, int64_t x, float r, float g, float b) {
    if (y < 0 || x < 0 || y >= S || x >= S) return;
    a[0][y][x] = r;
    a[1][y][x] = g;
    a[2][y][x] = b;
  };
  if (!mask.empty()) {  // contour: mask pixels with a 4-neighbour outside the mask
    const loc::Mask m = loc::load_mask(mask);
    at::Tensor mt = at::from_blob(const_cast<uint8_t*>(m.v.data()), {1, m.h, m.w}, at::kByte).to(at::kFloat);
    mt = data::resize(mt, S, S, data::Filter::nearest).contiguous();
    auto ma = mt.accessor<float, 3>();
    auto in = [&](int64_t y, int64_t x) { return y >= 0 && x >= 0 && y < S && x < S && ma[0][y][x] > 0.5f; };
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x)
        if (in(y, x) && (!in(y - 1, x) || !in(y + 1, x) || !in(y, x - 1) || !in(y, x + 1))) put(y, x, 0, 1, 1);
  }
  for (const TruthBox* b : boxes) {
    const double fx = static_cast<double>(S) / b->image_w, fy = static_cast<double>(S) / b->image_h;
    const auto x0 = static_cast<int64_t>(std::lround(b->x * fx)),
               x1 = static_cast<int64_t>(std::lround((b->x + b->w) * fx)) - 1;
    const auto y0 = static_cast<int64_t>(std::lround(b->y * fy)),
               y1 = static_cast<int64_t>(std::lround((b->y + b->h) * fy)) - 1;
    for (int64_t t = 0; t < 2; ++t) {
      for (int64_t x = x0; x <= x1; ++x) {
        put(y0 + t, x, 0.1f, 1, 0.1f);
        put(y1 - t, x, 0.1f, 1, 0.1f);
      }
      for (int64_t y = y0; y <= y1; ++y) {
        put(y, x0 + t, 0.1f, 1, 0.1f);
        put(y, x1 - t, 0.1f, 1, 0.1f);
      }
    }
  }
  // The maximum as the pointing game takes it (first in row-major order), at its cell centre.
  const size_t best = static_cast<size_t>(std::max_element(heat.v.begin(), heat.v.end()) - heat.v.begin());
  const auto cy = static_cast<int64_t>((static_cast<double>(best / static_cast<size_t>(heat.w)) + 0.5) * S / heat.h);
  const auto cx = static_cast<int64_t>((static_cast<double>(best % static_cast<size_t>(heat.w)) + 0.5) * S / heat.w);
  const int64_t arm = std::max<int64_t>(4, S / 32);
  for (int64_t d = -arm; d <= arm; ++d)
    for (int64_t t = 0; t < 2; ++t) {
      put(cy + t, cx + d, 0.15f, 0.45f, 1);
      put(cy + d, cx + t, 0.15f, 0.45f, 1);
    }
  return out;
}

}  // namespace

void LocalizeStage::run(StageContext& ctx) {
  // Heatmap files, by id, from the heatmaps stage's index.
  const auto index = ctx.artifact(opts_.heatmaps_stage, artifacts::kHeatmapsIndex);
  const auto table = data::CsvTable::read(index);
  const size_t ci = table.column("id"), cf = table.column("file");
  std::map<std::string, std::filesystem::path> files;
  for (size_t r = 0; r < table.rows(); ++r) {
    const std::filesystem::path f = table.at(r, cf);
    auto [it, fresh] = files.emplace(table.at(r, ci), f.is_absolute() ? f : index.parent_path() / f);
    DAUG_CHECK_AS(DataError, fresh, index.string(), ":", table.line_of(r), ": id '", table.at(r, ci),
                  "' has a second heatmap");
  }
  std::map<std::string, const Sample*> samples;
  for (const auto& s : data_->samples()) samples[s.id] = &s;

  // Boxes by (image, label), labels in the order the dataset lists them.
  std::map<Key, std::vector<const TruthBox*>> boxes;
  std::vector<std::string> label_order;
  for (const auto& b : truth_->truth_boxes()) {
    DAUG_CHECK_AS(DataError, b.image_w > 0 && b.image_w == b.image_h, "localize: [", opts_.data, "] box of image '",
                  b.id, "' (", b.label, ") is in a ", b.image_w, "x", b.image_h,
                  " image; the metrics need square images (the heatmap covers the whole image)");
    boxes[{b.id, b.label}].push_back(&b);
    if (std::find(label_order.begin(), label_order.end(), b.label) == label_order.end()) label_order.push_back(b.label);
  }
  DAUG_CHECK_AS(DataError, !boxes.empty(), "localize: [", opts_.data, "] has no ground-truth boxes");

  loc::EvaluationOptions eo;
  eo.threshold = opts_.threshold;
  eo.iobb = opts_.iobb;
  eo.draws = opts_.bootstrap_draws;
  eo.seed = static_cast<uint64_t>(opts_.bootstrap_seed);
  loc::Evaluation ev(eo);
  int64_t missing = 0, invalid = 0, masked = 0;
  std::vector<std::string> first_missing, first_invalid;
  std::map<std::string, loc::Map> heat_of;
  struct OverlayJob {
    const Sample* sample;
    const loc::Map* heat;
    const std::vector<const TruthBox*>* boxes;
    std::string file;
  };
  std::vector<OverlayJob> jobs;  // drawn by the main rank with the other writes
  for (const auto& [key, bx] : boxes) {
    auto f = files.find(key.id);
    if (f == files.end() || !std::filesystem::exists(f->second)) {
      ++missing;
      if (first_missing.size() < 5)
        first_missing.push_back(f == files.end() ? key.id + " (not in the index)" : f->second.string());
      continue;
    }
    auto h = heat_of.find(key.id);
    if (h == heat_of.end()) {
      loc::LoadedHeatmap lh = loc::load_heatmap(f->second);
      if (lh.nonfinite > 0) {
        ++invalid;
        if (first_invalid.size() < 5) first_invalid.push_back(f->second.string());
        continue;
      }
      h = heat_of.emplace(key.id, std::move(lh.map)).first;
      const auto mask = truth_->truth_mask(key.id);
      if (!mask.empty()) {
        const loc::Mask m = loc::load_mask(mask);
        ev.add_mask(key.id, h->second, loc::mask_to_grid(m.v, m.h, m.w, h->second.h, h->second.w));
        ++masked;
      }
    }
    std::vector<loc::Box> lb;
    for (const TruthBox* b : bx) lb.push_back({b->x, b->y, b->w, b->h});
    const loc::Result r = ev.add_boxes(key.id, key.label, lb, bx.front()->image_w, h->second);
    auto s = samples.find(key.id);
    if (static_cast<int64_t>(jobs.size()) < opts_.overlays && s != samples.end())
      jobs.push_back({s->second, &h->second, &bx,
                      fmt::format("{}_{}_{}.png", key.id, file_safe(key.label), r.pointing ? "hit" : "miss")});
  }
  const int64_t total = static_cast<int64_t>(boxes.size());
  if (missing > 0 && (ctx.strict || ev.pairs() == 0))
    throw DataError(
        fmt::format("localize: {} of {} boxed image/label pairs of [{}] have no heatmap in [{}] ({}); "
                    "first: {}{}",
                    missing, total, opts_.data, opts_.heatmaps_stage, index.string(), fmt::join(first_missing, ", "),
                    ctx.strict ? " (--strict)" : ""));
  if (invalid > 0 && (ctx.strict || ev.pairs() == 0))
    throw DataError(
        fmt::format("localize: {} heatmaps hold NaN/Inf values; first: {}", invalid, fmt::join(first_invalid, ", ")));
  if (missing > 0)
    log::warn("localize: {} of {} boxed pairs have no heatmap (first: {})", missing, total,
              fmt::join(first_missing, ", "));

  loc::EvaluationText text;
  text.title = fmt::format("### Localisation [{}] vs [{}]", opts_.heatmaps_stage, opts_.data);
  text.source = fmt::format(
      "Heatmaps of [{}] vs the ground truth of [{}] ({} boxed image/label pairs, {} images with "
      "a mask)",
      opts_.heatmaps_stage, data_->describe(), total, masked);
  if (missing > 0)
    text.notes.push_back(fmt::format("{} of {} boxed image/label pairs were skipped: no heatmap (first: {}).", missing,
                                     total, fmt::join(first_missing, ", ")));
  if (invalid > 0)
    text.notes.push_back(fmt::format("{} images were left out: their heatmap holds NaN/Inf values (first: {}).",
                                     invalid, fmt::join(first_invalid, ", ")));
  const loc::EvaluationFiles out = ev.render(label_order, text,
                                             {{"threshold", opts_.threshold},
                                              {"iobb", opts_.iobb},
                                              {"missing", static_cast<double>(missing)},
                                              {"invalid", static_cast<double>(invalid)},
                                              {"pairs", static_cast<double>(total)}});
  stages::write_on_main_rank("localize", [&] {
    write_file_atomic(ctx.output("localization"), out.md);
    write_file_atomic(ctx.output("localization.csv"), out.csv);
    write_file_atomic(ctx.output("localization.json"), out.json);
    write_file_atomic(ctx.output(artifacts::kPairedItems), out.paired_items);
    write_file_atomic(ctx.output(artifacts::kMetrics), out.metrics);
    write_file_atomic(ctx.output(artifacts::kSummary), out.md);
    const auto overlay_dir = ctx.output(artifacts::kOverlays);
    std::filesystem::remove_all(overlay_dir);  // a re-run writes them afresh (hit/miss is in the name)
    std::filesystem::create_directories(overlay_dir);
    for (const auto& j : jobs)
      data::save_png(overlay_dir / j.file,
                     overlay(*j.sample, *j.heat, *j.boxes, truth_->truth_mask(j.sample->id), opts_.overlay_size));
  });
  log::info("{}", out.md);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "localize", daug::plugins::LocalizeStage,
                     "heatmap localisation against a Source's ground-truth boxes/masks, beside reference maps")
