// `daug evaluate-heatmaps`: how well heatmaps localise ground-truth boxes (pointing game, IoBB hit rate, chance).
//
//   daug evaluate-heatmaps --heatmaps DIR --boxes boxes.csv [--suffix _+nof.npy] [--box-image-size 1024]
//                          [--threshold 0.5] [--iobb 0.1] [--out DIR] [--strict]
//
// boxes.csv: columns image,label,x,y,w,h (pixels of a --box-image-size square image; `image` is a file name or id,
// its extension is dropped), or NIH's BBox_List_2017.csv (Image Index, Finding Label, Bbox [x, y, w, h]).
// Heatmaps: DIR/<id><suffix> (.npy, [H,W] or [C,H,W], any resolution). Definitions: heatmap_localization.h.
#include "command.h"
#include "heatmap_localization.h"

#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/data/npy.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <string>
#include <vector>

namespace daug::cli {
namespace {

constexpr const char* kUsage =
    "usage: daug evaluate-heatmaps --heatmaps DIR --boxes boxes.csv [--suffix _+nof.npy] [--box-image-size 1024]\n"
    "                              [--threshold 0.5] [--iobb 0.1] [--out DIR] [--strict]\n"
    "boxes.csv: image,label,x,y,w,h in pixels of the --box-image-size square image (NIH BBox_List_2017.csv works as is).\n"
    "Reports per label and overall: pointing-game hit rate, IoBB > --iobb hit rate after thresholding the min-max\n"
    "heatmap at --threshold (IoBB = |detected box ∩ GT box| / |detected box|, ChestX-ray8), and the chance rate.\n"
    "Writes localization.md/.csv/.json into --out (default: the heatmap directory).\n";

struct Args {
  std::string heatmaps, boxes, suffix = "_+nof.npy", out;
  double box_size = 1024, threshold = 0.5, iobb = 0.1;
  bool strict = false;
};

double number(const std::string& flag, const std::string& v) {
  try {
    size_t pos = 0;
    double d = std::stod(v, &pos);
    if (pos == v.size()) return d;
  } catch (const std::exception&) {
  }
  throw ConfigError("daug evaluate-heatmaps: " + flag + " needs a number, but got '" + v + "'\n" + kUsage);
}

Args parse(const std::vector<std::string>& args) {
  Args a;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto& f = args[i];
    auto value = [&]() -> const std::string& {
      DAUG_CHECK_AS(ConfigError, i + 1 < args.size(), "daug evaluate-heatmaps: ", f, " needs a value\n", kUsage);
      return args[++i];
    };
    if (f == "--heatmaps") a.heatmaps = value();
    else if (f == "--boxes") a.boxes = value();
    else if (f == "--suffix") a.suffix = value();
    else if (f == "--out") a.out = value();
    else if (f == "--box-image-size") a.box_size = number(f, value());
    else if (f == "--threshold") a.threshold = number(f, value());
    else if (f == "--iobb") a.iobb = number(f, value());
    else if (f == "--strict") a.strict = true;
    else if (f == "-h" || f == "--help") throw ConfigError(kUsage);
    else throw ConfigError("daug evaluate-heatmaps: unknown argument '" + f + "'\n" + kUsage);
  }
  DAUG_CHECK_AS(ConfigError, !a.heatmaps.empty() && !a.boxes.empty(),
                "daug evaluate-heatmaps: --heatmaps and --boxes are required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, a.box_size > 0, "--box-image-size must be > 0, but got ", a.box_size);
  DAUG_CHECK_AS(ConfigError, a.threshold >= 0 && a.threshold <= 1, "--threshold must be in [0, 1], but got ",
                a.threshold);
  DAUG_CHECK_AS(ConfigError, a.iobb >= 0 && a.iobb < 1, "--iobb must be in [0, 1), but got ", a.iobb);
  DAUG_CHECK_AS(DataError, std::filesystem::is_directory(a.heatmaps), "daug evaluate-heatmaps: --heatmaps ",
                a.heatmaps, " is not a directory");
  if (a.out.empty()) a.out = a.heatmaps;
  return a;
}

struct Key {
  std::string id, label;
  bool operator<(const Key& o) const { return std::tie(id, label) < std::tie(o.id, o.label); }
};

struct Tally {
  int64_t n = 0, pointing = 0, iobb_hits = 0;
  double iobb_sum = 0, chance_sum = 0;
  void add(const loc::Result& r, double t) {
    ++n;
    pointing += r.pointing;
    iobb_hits += r.best_iobb > t;
    iobb_sum += r.best_iobb;
    chance_sum += r.chance;
  }
};

int evaluate_heatmaps_cmd(const std::vector<std::string>& argv) {
  const Args a = parse(argv);
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
      const auto& s = table.at(r, c);
      try {
        size_t pos = 0;
        const double d = std::stod(s, &pos);
        if (pos == s.size()) return d;
      } catch (const std::exception&) {
      }
      throw DataError(fmt::format("{}:{}: column '{}' must be a number, but got '{}'", a.boxes, table.line_of(r),
                                  table.header()[c], s));
    };
    std::string id = std::filesystem::path(table.at(r, ci)).stem().string();
    const std::string label = table.at(r, cl);
    loc::Box b{num(cx), num(cy), num(cw), num(ch)};
    DAUG_CHECK_AS(DataError, b.w > 0 && b.h > 0, a.boxes, ":", table.line_of(r), ": box width and height must be > 0, "
                  "but got w=", b.w, " h=", b.h);
    boxes[{id, label}].push_back(b);
    if (std::find(label_order.begin(), label_order.end(), label) == label_order.end()) label_order.push_back(label);
  }
  DAUG_CHECK_AS(DataError, !boxes.empty(), a.boxes, ": no boxes");

  std::map<std::string, Tally> per_label;
  Tally overall;
  int64_t missing = 0;
  std::vector<std::string> first_missing;
  for (const auto& [key, bx] : boxes) {
    const auto path = std::filesystem::path(a.heatmaps) / (key.id + a.suffix);
    if (!std::filesystem::exists(path)) {
      ++missing;
      if (first_missing.size() < 5) first_missing.push_back(path.string());
      continue;
    }
    at::Tensor t = data::load_npy(path).to(at::kFloat);
    if (t.dim() == 3) t = t.select(0, 0);
    DAUG_CHECK_AS(DataError, t.dim() == 2 && t.numel() > 0, path.string(), ": a heatmap must be [H,W] or [C,H,W], "
                  "but the file holds shape ", t.sizes());
    t = t.contiguous();
    loc::Map m{t.size(0), t.size(1), std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())};
    const auto r = loc::evaluate(m, bx, a.box_size, a.threshold);
    per_label[key.label].add(r, a.iobb);
    overall.add(r, a.iobb);
  }
  const int64_t total = static_cast<int64_t>(boxes.size());
  if (missing > 0 && (a.strict || overall.n == 0))
    throw DataError(fmt::format("daug evaluate-heatmaps: {} of {} boxed image/label pairs have no heatmap {}<id>{}; "
                                "first missing: {}{}", missing, total, a.heatmaps + "/", a.suffix,
                                fmt::join(first_missing, ", "), a.strict ? " (--strict)" : ""));

  auto rate = [](int64_t k, int64_t n) { return n ? static_cast<double>(k) / static_cast<double>(n) : 0.0; };
  std::string md = fmt::format(
      "### Heatmap localisation\n\nHeatmaps `{}/<id>{}` vs boxes `{}` ({}×{} px box images). Threshold {} on the "
      "min-max heatmap; IoBB hit = IoBB > {}.\n\n| Label | N | Pointing hit rate | IoBB>{} hit rate | Mean IoBB | "
      "Chance (box area fraction) |\n|---|---:|---:|---:|---:|---:|\n",
      a.heatmaps, a.suffix, a.boxes, a.box_size, a.box_size, a.threshold, a.iobb, a.iobb);
  std::string csv = "label,n,pointing_hit_rate,iobb_hit_rate,mean_iobb,chance\n";
  nlohmann::json js;
  auto emit = [&](const std::string& name, const Tally& t) {
    const double pr = rate(t.pointing, t.n), ir = rate(t.iobb_hits, t.n);
    const double mi = t.n ? t.iobb_sum / t.n : 0, chance = t.n ? t.chance_sum / t.n : 0;
    md += fmt::format("| {} | {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |\n", name, t.n, pr, ir, mi, chance);
    csv += fmt::format("{},{},{:.6f},{:.6f},{:.6f},{:.6f}\n", name, t.n, pr, ir, mi, chance);
    js[name] = {{"n", t.n}, {"pointing_hit_rate", pr}, {"iobb_hit_rate", ir}, {"mean_iobb", mi}, {"chance", chance}};
  };
  for (const auto& l : label_order)
    if (per_label.count(l)) emit(l, per_label[l]);
  emit("Overall", overall);
  md += "\nPointing game: the heatmap's maximum (pixel centre, rescaled to box coordinates) lies in a box of that image "
        "and label. IoBB (Wang et al., ChestX-ray8): area(B ∩ G) / area(B), B = bounding box of the largest "
        "8-connected region of the thresholded min-max heatmap, G = the best-matching ground-truth box. Chance: the "
        "fraction of the image the boxes cover (the pointing-game rate of a uniformly random point).\n";
  if (missing > 0)
    md += fmt::format("\n{} of {} boxed image/label pairs were skipped: no heatmap (first: {}).\n", missing, total,
                      fmt::join(first_missing, ", "));
  js["_info"] = {{"threshold", a.threshold}, {"iobb", a.iobb}, {"box_image_size", a.box_size}, {"missing", missing},
                 {"pairs", total}};
  std::filesystem::create_directories(a.out);
  write_file_atomic(std::filesystem::path(a.out) / "localization.md", md);
  write_file_atomic(std::filesystem::path(a.out) / "localization.csv", csv);
  write_file_atomic(std::filesystem::path(a.out) / "localization.json", js.dump(2));
  fmt::print("{}", md);
  return 0;
}

}  // namespace
}  // namespace daug::cli

DAUG_CLI_COMMAND("evaluate-heatmaps", "pointing game / IoBB hit rates of heatmaps against ground-truth boxes",
                 daug::cli::evaluate_heatmaps_cmd);
