// `daug evaluate-heatmaps`: how well heatmaps localise ground-truth boxes (pointing game, IoBB hit rate, chance).
//
//   daug evaluate-heatmaps --heatmaps DIR --boxes boxes.csv [--target NAME] [--direction +|-] [--suffix S]
//                          [--box-image-size 1024] [--threshold 0.5] [--iobb 0.1] [--out DIR] [--strict]
//                          [--masks DIR] [--bootstrap-draws 1000] [--bootstrap-seed 0]
//
// boxes.csv: columns image,label,x,y,w,h (pixels of a --box-image-size square image; `image` is a file name or id,
// its extension is dropped), or NIH's BBox_List_2017.csv (Image Index, Finding Label, Bbox [x, y, w, h]).
// Heatmaps (.npy, [H,W] or [C,H,W], any resolution) are found through DIR/index.csv, the index the heatmaps stage
// publishes (its `file` column), or as DIR/<id><suffix> with --suffix. Definitions: libs/localization.
#include "evaluate_heatmaps_command.h"

#include <daug/artifact.h>
#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/localization/evaluation.h>
#include <daug/localization/load.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace po = boost::program_options;

namespace daug::plugins {
namespace {

constexpr const char* kUsage =
    "usage: daug evaluate-heatmaps --heatmaps DIR --boxes boxes.csv [--target NAME] [--direction +|-] [--suffix S]\n"
    "                              [--box-image-size 1024] [--threshold 0.5] [--iobb 0.1] [--out DIR] [--strict]\n"
    "                              [--masks DIR] [--bootstrap-draws 1000] [--bootstrap-seed 0]\n"
    "Boxes must be finite and inside the image (0.5 px slack). Heatmaps with NaN/Inf values are left out and counted\n"
    "(--strict: an error, as a missing heatmap is).\n"
    "boxes.csv: image,label,x,y,w,h in pixels of the --box-image-size square image (NIH BBox_List_2017.csv works as "
    "is).\n"
    "Heatmaps are found through DIR/index.csv (written by the heatmaps stage; --target/--direction pick rows when an\n"
    "id has several), or as DIR/<id><suffix> with --suffix (a directory without an index).\n"
    "Reports per label and overall: pointing-game hit rate, IoBB > --iobb hit rate after thresholding the min-max\n"
    "heatmap at --threshold (IoBB = |detected box ∩ GT box| / |detected box|, ChestX-ray8), and the chance rate,\n"
    "each beside the same metrics of uniform noise and a centred Gaussian (sigma = side/4) on the same boxes, with\n"
    "percentile bootstrap 95% CIs of the hit rates. --masks DIR adds pixel AUROC and best Dice against DIR/<id>.npy\n"
    "masks (H x W, nonzero = finding; brought to the heatmap grid by area fraction >= 0.5).\n"
    "Writes localization.md/.csv/.json and paired_items.json into --out (default: the heatmap directory).\n";

constexpr double kBoxSlack = 0.5;  // pixels a box may extend past the image edge

struct Args {
  std::string heatmaps, boxes, suffix, target, direction, out, masks;
  double box_size = 1024, threshold = 0.5, iobb = 0.1;
  int64_t draws = 1000, seed = 0;
  bool strict = false, help = false;
};

Args parse(const std::vector<std::string>& args) {
  Args a;
  po::options_description desc("daug evaluate-heatmaps options");
  desc.add_options()("help,h", "show help")("heatmaps", po::value(&a.heatmaps), "heatmap directory")(
      "boxes", po::value(&a.boxes), "boxes CSV")("target", po::value(&a.target), "index.csv target to evaluate")(
      "direction", po::value(&a.direction), "index.csv direction to evaluate (+ or -)")(
      "suffix", po::value(&a.suffix), "read DIR/<id><suffix> instead of DIR/index.csv")(
      "box-image-size", po::value(&a.box_size), "box image size in pixels")("threshold", po::value(&a.threshold),
                                                                            "threshold on the min-max heatmap")(
      "iobb", po::value(&a.iobb), "IoBB hit threshold")("masks", po::value(&a.masks),
                                                        "directory of <id>.npy masks (pixel AUROC, best Dice)")(
      "bootstrap-draws", po::value(&a.draws), "bootstrap draws of the hit-rate CIs")(
      "bootstrap-seed", po::value(&a.seed), "bootstrap seed (also of the noise reference map)")(
      "out", po::value(&a.out), "output directory")(
      "strict", po::bool_switch(&a.strict), "fail when a boxed image has no heatmap or one with NaN/Inf values");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
    a.help = vm.count("help") > 0;
  } catch (const po::invalid_option_value& e) {
    throw ConfigError(fmt::format("daug evaluate-heatmaps: {} (a number is needed)\n{}", e.what(), kUsage));
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("daug evaluate-heatmaps: {}\n{}", e.what(), kUsage));
  }
  if (a.help) return a;
  DAUG_CHECK_AS(ConfigError, !a.heatmaps.empty() && !a.boxes.empty(),
                "daug evaluate-heatmaps: --heatmaps and --boxes are required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, a.box_size > 0, "--box-image-size must be > 0, but got ", a.box_size);
  DAUG_CHECK_AS(ConfigError, a.threshold >= 0 && a.threshold <= 1, "--threshold must be in [0, 1], but got ",
                a.threshold);
  DAUG_CHECK_AS(ConfigError, a.iobb >= 0 && a.iobb < 1, "--iobb must be in [0, 1), but got ", a.iobb);
  DAUG_CHECK_AS(ConfigError, a.draws >= 1, "--bootstrap-draws must be >= 1, but got ", a.draws);
  DAUG_CHECK_AS(ConfigError, a.seed >= 0, "--bootstrap-seed must be >= 0, but got ", a.seed);
  DAUG_CHECK_AS(DataError, a.masks.empty() || std::filesystem::is_directory(a.masks),
                "daug evaluate-heatmaps: --masks ", a.masks, " is not a directory");
  DAUG_CHECK_AS(ConfigError, a.direction.empty() || a.direction == "+" || a.direction == "-",
                "--direction must be + or -, but got '", a.direction, "'");
  DAUG_CHECK_AS(ConfigError, a.suffix.empty() || (a.target.empty() && a.direction.empty()),
                "daug evaluate-heatmaps: --target and --direction select rows of index.csv; they cannot be combined "
                "with --suffix");
  DAUG_CHECK_AS(DataError, std::filesystem::is_directory(a.heatmaps), "daug evaluate-heatmaps: --heatmaps ",
                a.heatmaps, " is not a directory");
  if (a.out.empty()) a.out = a.heatmaps;
  return a;
}

struct Key {
  std::string id, label;
  bool operator<(const Key& o) const { return std::tie(id, label) < std::tie(o.id, o.label); }
};

}  // namespace

int EvaluateHeatmapsCommand::run(const std::vector<std::string>& argv, CommandContext&) {
  const Args a = parse(argv);
  if (a.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const HeatmapFiles files = a.suffix.empty() ? HeatmapFiles::from_index(a.heatmaps, a.target, a.direction)
                                              : HeatmapFiles::from_suffix(a.heatmaps, a.suffix);
  const auto table = data::CsvTable::read(a.boxes);
  size_t ci, cl, cx, cy, cw, ch;
  if (table.has_column("image")) {
    ci = table.column("image");
    cl = table.column("label");
    cx = table.column("x");
    cy = table.column("y");
    cw = table.column("w");
    ch = table.column("h");
  } else {
    DAUG_CHECK_AS(DataError, table.header().size() >= 6 && table.header()[0] == "Image Index", a.boxes,
                  ": expected columns image,label,x,y,w,h (or NIH's 'Image Index','Finding Label','Bbox [x',y,w,h]), "
                  "but the header is: ", fmt::format("{}", fmt::join(table.header(), ",")));
    ci = 0, cl = 1, cx = 2, cy = 3, cw = 4, ch = 5;
  }
  std::map<Key, std::vector<loc::Box>> boxes;
  std::vector<std::string> label_order;
  for (size_t r = 0; r < table.rows(); ++r) {
    auto num = [&](size_t c) {
      const double d = table.number(r, c);  // "<file>:<line>: column 'x' must be a number, but got '...'"
      DAUG_CHECK_AS(DataError, std::isfinite(d), a.boxes, ":", table.line_of(r), ": column '", table.header()[c],
                    "' must be a finite number, but got '", table.at(r, c), "'");
      return d;
    };
    std::string id = std::filesystem::path(table.at(r, ci)).stem().string();
    const std::string label = table.at(r, cl);
    loc::Box b{num(cx), num(cy), num(cw), num(ch)};
    DAUG_CHECK_AS(DataError, b.w > 0 && b.h > 0, a.boxes, ":", table.line_of(r), ": box width and height must be > 0, "
                  "but got w=", b.w, " h=", b.h);
    // Half a pixel of slack for boxes rescaled and rounded by whoever drew them.
    const double lo = -kBoxSlack, hi = a.box_size + kBoxSlack;
    if (b.x < lo || b.y < lo || b.x + b.w > hi || b.y + b.h > hi)
      throw DataError(fmt::format(
          "{}:{}: box x={} y={} w={} h={} (right {}, bottom {}) is not inside the {}x{} image "
          "(--box-image-size {}); check the coordinates or --box-image-size",
          a.boxes, table.line_of(r), b.x, b.y, b.w, b.h, b.x + b.w, b.y + b.h, a.box_size, a.box_size, a.box_size));
    boxes[{id, label}].push_back(b);
    if (std::find(label_order.begin(), label_order.end(), label) == label_order.end()) label_order.push_back(label);
  }
  DAUG_CHECK_AS(DataError, !boxes.empty(), a.boxes, ": no boxes");

  loc::EvaluationOptions eo;
  eo.threshold = a.threshold;
  eo.iobb = a.iobb;
  eo.draws = a.draws;
  eo.seed = a.seed;
  loc::Evaluation ev(eo);
  int64_t missing = 0, invalid = 0, scored = 0;
  std::vector<std::string> first_missing, first_invalid;
  std::map<std::string, loc::Map> heat_of;  // valid heatmaps by id, for the masks
  for (const auto& [key, bx] : boxes) {
    const auto path = files.find(key.id);
    if (path.empty() || !std::filesystem::exists(path)) {
      ++missing;
      if (first_missing.size() < 5) first_missing.push_back(path.empty() ? key.id + " (not in the index)" : path.string());
      continue;
    }
    loc::LoadedHeatmap h = loc::load_heatmap(path);
    // A NaN/Inf map has no meaningful maximum (NaN compares false, so the argmax stays at pixel 0 and a box there
    // scores a hit): counted as invalid and left out of every rate.
    if (h.nonfinite > 0) {
      ++invalid;
      if (first_invalid.size() < 5)
        first_invalid.push_back(
            fmt::format("{} ({} of {} values NaN/Inf)", path.string(), h.nonfinite, h.map.v.size()));
      continue;
    }
    ev.add_boxes(key.id, key.label, bx, a.box_size, h.map);
    ++scored;
    heat_of.emplace(key.id, std::move(h.map));
  }
  const int64_t total = static_cast<int64_t>(boxes.size());
  if (missing > 0 && (a.strict || scored == 0))
    throw DataError(fmt::format("daug evaluate-heatmaps: {} of {} boxed image/label pairs have no heatmap ({}); "
                                "first missing: {}{}", missing, total, files.describe(),
                                fmt::join(first_missing, ", "), a.strict ? " (--strict)" : ""));
  if (invalid > 0 && (a.strict || scored == 0))
    throw DataError(
        fmt::format("daug evaluate-heatmaps: {} of {} boxed image/label pairs have a heatmap with NaN/Inf "
                    "values ({}); first: {}{}",
                    invalid, total, files.describe(), fmt::join(first_invalid, ", "), a.strict ? " (--strict)" : ""));
  if (invalid > 0)
    fmt::print(stderr,
               "daug evaluate-heatmaps: warning: {} of {} heatmaps hold NaN/Inf values and are left out; "
               "first: {}\n",
               invalid, total, fmt::join(first_invalid, ", "));

  // Masks: <masks>/<id>.npy for every boxed image with a valid heatmap.
  int64_t no_mask = 0;
  std::vector<std::string> first_no_mask;
  if (!a.masks.empty()) {
    for (const auto& [id, heat] : heat_of) {
      const auto mp = std::filesystem::path(a.masks) / (id + ".npy");
      if (!std::filesystem::exists(mp)) {
        ++no_mask;
        if (first_no_mask.size() < 5) first_no_mask.push_back(mp.string());
        continue;
      }
      const loc::Mask m = loc::load_mask(mp);
      ev.add_mask(id, heat, loc::mask_to_grid(m.v, m.h, m.w, heat.h, heat.w));
    }
    if (no_mask > 0 && (a.strict || ev.masked_images() == 0))
      throw DataError(fmt::format("daug evaluate-heatmaps: {} of {} images have no mask in --masks {}; first: {}{}",
                                  no_mask, heat_of.size(), a.masks, fmt::join(first_no_mask, ", "),
                                  a.strict ? " (--strict)" : ""));
  }

  loc::EvaluationText text;
  text.source = fmt::format("Heatmaps {} vs boxes `{}` ({}×{} px box images){}", files.describe(), a.boxes, a.box_size,
                            a.box_size, a.masks.empty() ? "" : fmt::format(" and masks `{}`", a.masks));
  if (missing > 0)
    text.notes.push_back(fmt::format("{} of {} boxed image/label pairs were skipped: no heatmap (first: {}).", missing,
                                     total, fmt::join(first_missing, ", ")));
  if (invalid > 0)
    text.notes.push_back(
        fmt::format("{} of {} boxed image/label pairs were left out: their heatmap holds NaN/Inf values (first: {}).",
                    invalid, total, fmt::join(first_invalid, ", ")));
  if (no_mask > 0)
    text.notes.push_back(fmt::format("{} of {} images have no mask and are left out of the pixel table (first: {}).",
                                     no_mask, heat_of.size(), fmt::join(first_no_mask, ", ")));
  const std::map<std::string, double> info = {{"threshold", a.threshold},
                                              {"iobb", a.iobb},
                                              {"box_image_size", a.box_size},
                                              {"missing", static_cast<double>(missing)},
                                              {"invalid", static_cast<double>(invalid)},
                                              {"pairs", static_cast<double>(total)},
                                              {"no_mask", static_cast<double>(no_mask)},
                                              {"bootstrap_draws", static_cast<double>(a.draws)},
                                              {"bootstrap_seed", static_cast<double>(a.seed)}};
  const loc::EvaluationFiles out = ev.render(label_order, text, info);
  const std::string& md = out.md;
  std::filesystem::create_directories(a.out);
  write_file_atomic(std::filesystem::path(a.out) / "localization.md", md);
  write_file_atomic(std::filesystem::path(a.out) / "localization.csv", out.csv);
  write_file_atomic(std::filesystem::path(a.out) / "localization.json", out.json);
  write_file_atomic(std::filesystem::path(a.out) / "paired_items.json", out.paired_items);
  fmt::print("{}", md);
  return 0;
}

HeatmapFiles HeatmapFiles::from_suffix(const std::filesystem::path& dir, const std::string& suffix) {
  HeatmapFiles f;
  f.dir_ = dir;
  f.suffix_ = suffix;
  f.describe_ = fmt::format("`{}/<id>{}`", dir.string(), suffix);
  return f;
}

HeatmapFiles HeatmapFiles::from_index(const std::filesystem::path& dir, const std::string& target,
                                      const std::string& direction) {
  const auto path = dir / kHeatmapsIndexFile;
  DAUG_CHECK_AS(DataError, std::filesystem::exists(path), "daug evaluate-heatmaps: ", path.string(),
                " does not exist; --heatmaps must be a heatmaps stage output directory (it publishes index.csv), "
                "or give --suffix to read <id><suffix> files from a directory without an index");
  const auto table = data::CsvTable::read(path);
  const size_t ci = table.column("id"), cf = table.column("file");
  auto filter_column = [&](const std::string& name, const std::string& want) -> std::optional<size_t> {
    if (want.empty()) return std::nullopt;
    DAUG_CHECK_AS(ConfigError, table.has_column(name), "daug evaluate-heatmaps: --", name, " selects rows by the '",
                  name, "' column, but ", path.string(), " has only the columns ",
                  fmt::format("{}", fmt::join(table.header(), ",")), " (an index from before targets were recorded)");
    return table.column(name);
  };
  const auto ct = filter_column("target", target), cd = filter_column("direction", direction);
  HeatmapFiles f;
  f.dir_ = dir;
  f.indexed_ = true;
  std::map<std::string, std::pair<std::string, int>> rows;  // id -> (file, line)
  for (size_t r = 0; r < table.rows(); ++r) {
    if (ct && table.at(r, *ct) != target) continue;
    if (cd && table.at(r, *cd) != direction) continue;
    const std::string& id = table.at(r, ci);
    auto [it, fresh] = rows.emplace(id, std::make_pair(table.at(r, cf), table.line_of(r)));
    DAUG_CHECK_AS(DataError, fresh, path.string(), ":", table.line_of(r), ": id '", id, "' has a second heatmap (",
                  table.at(r, cf), "; the first, line ", it->second.second, ": ", it->second.first,
                  "); pick one with --target and --direction");
  }
  for (auto& [id, file_line] : rows) {
    std::filesystem::path file = file_line.first;
    f.index_.emplace_back(id, (file.is_absolute() ? file : dir / file).string());
  }
  std::vector<std::string> filters;
  if (!target.empty()) filters.push_back("target " + target);
  if (!direction.empty()) filters.push_back("direction " + direction);
  f.describe_ = fmt::format("`{}`{}", path.string(),
                            filters.empty() ? "" : fmt::format(" ({})", fmt::join(filters, ", ")));
  return f;
}

std::filesystem::path HeatmapFiles::find(const std::string& id) const {
  if (!indexed_) return dir_ / (id + suffix_);
  auto it = std::lower_bound(index_.begin(), index_.end(), id,
                             [](const std::pair<std::string, std::string>& e, const std::string& k) { return e.first < k; });
  return it != index_.end() && it->first == id ? std::filesystem::path(it->second) : std::filesystem::path();
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Command, "evaluate-heatmaps", daug::plugins::EvaluateHeatmapsCommand,
                     "pointing game / IoBB hit rates of heatmaps against ground-truth boxes")
