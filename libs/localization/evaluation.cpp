#include <daug/paired_items.h>
#include <daug/localization/evaluation.h>

#include <daug/seed.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

namespace daug::loc {

namespace {
const char* const kKeys[kMapKinds] = {"heatmap", "uniform_noise", "centred_gaussian"};
const char* const kTitles[kMapKinds] = {"heatmap", "uniform noise", "centred Gaussian"};

struct Tally {
  int64_t n = 0;
  std::vector<double> pointing, iobb_hit;  // per pair, 0/1
  double iobb_sum = 0, chance_sum = 0;
  void add(const Result& r, double t) {
    ++n;
    pointing.push_back(r.pointing ? 1.0 : 0.0);
    iobb_hit.push_back(r.best_iobb > t ? 1.0 : 0.0);
    iobb_sum += r.best_iobb;
    chance_sum += r.chance;
  }
};
double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}
/// A JSON number, or null for NaN (metrics.json leaves such keys out instead).
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
std::string fixed(double v, int digits) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "n/a"; }
/// Drops null members recursively (metrics.json holds numbers only).
nlohmann::json numbers_only(const nlohmann::json& j) {
  if (!j.is_object()) return j;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!it.value().is_null() && !it.value().is_string() && !it.value().is_array())
      out[it.key()] = numbers_only(it.value());
  return out;
}
}  // namespace

const char* map_key(int kind) { return kKeys[kind]; }
const char* map_title(int kind) { return kTitles[kind]; }

uint64_t noise_seed(uint64_t seed, const std::string& id) { return mix_seed(seed, stable_hash(id)); }

Evaluation::Evaluation(EvaluationOptions options) : opts_(options) {}

Result Evaluation::add_boxes(const std::string& id, const std::string& label, const std::vector<Box>& boxes, double s,
                             const Map& heat) {
  Pair p{id, label, {}};
  p.r[kHeatmap] = evaluate(heat, boxes, s, opts_.threshold);
  p.r[kUniformNoise] =
      evaluate(uniform_noise_map(heat.h, heat.w, noise_seed(opts_.seed, id)), boxes, s, opts_.threshold);
  p.r[kCentredGaussian] = evaluate(centred_gaussian_map(heat.h, heat.w), boxes, s, opts_.threshold);
  pairs_.push_back(std::move(p));
  return pairs_.back().r[kHeatmap];
}

void Evaluation::add_mask(const std::string& id, const Map& heat, const std::vector<uint8_t>& truth) {
  const Map maps[kMapKinds] = {heat, uniform_noise_map(heat.h, heat.w, noise_seed(opts_.seed, id)),
                               centred_gaussian_map(heat.h, heat.w)};
  const bool any = std::any_of(truth.begin(), truth.end(), [](uint8_t t) { return t != 0; });
  for (int k = 0; k < kMapKinds; ++k) {
    Pixel& px = pixel_[k];
    px.scores.insert(px.scores.end(), maps[k].v.begin(), maps[k].v.end());
    px.truth.insert(px.truth.end(), truth.begin(), truth.end());
    px.auroc.push_back(auroc(maps[k].v, truth));
    // An empty mask has no Dice to find (a min-max map always predicts something): pooled AUROC only.
    if (any) px.dice.push_back(dice_curve(maps[k], truth, dice_thresholds()));
  }
}

EvaluationFiles Evaluation::render(const std::vector<std::string>& label_order, const EvaluationText& text,
                                   const std::map<std::string, double>& info) const {
  // Tallies per label (and Overall) per map kind, in pair order.
  std::map<std::string, Tally> per_label[kMapKinds];
  Tally overall[kMapKinds];
  for (const auto& p : pairs_)
    for (int k = 0; k < kMapKinds; ++k) {
      per_label[k][p.label].add(p.r[k], opts_.iobb);
      overall[k].add(p.r[k], opts_.iobb);
    }
  std::vector<std::string> names;
  for (const auto& l : label_order)
    if (per_label[0].count(l)) names.push_back(l);
  names.push_back("Overall");
  auto tally = [&](const std::string& name, int k) -> const Tally& {
    return name == "Overall" ? overall[k] : per_label[k].at(name);
  };

  EvaluationFiles f;
  std::string& md = f.md;
  md = fmt::format(
      "{}\n\n{}. Threshold {} on the min-max heatmap; IoBB hit = IoBB > {}. Beside each heatmap row, the same metrics "
      "of two trivial maps on the same boxes: i.i.d. uniform noise and a centred Gaussian (σ = a quarter of the side). "
      "[95% CI]: percentile bootstrap over the (image, label) pairs, {} draws, seed {}.\n\n"
      "| Label | Map | N | Pointing hit rate [95% CI] | IoBB>{} hit rate [95% CI] | Mean IoBB | Chance (box area "
      "fraction) |\n|---|---|---:|---:|---:|---:|---:|\n",
      text.title, text.source, opts_.threshold, opts_.iobb, opts_.draws, opts_.seed, opts_.iobb);
  f.csv =
      "label,map,n,pointing_hit_rate,pointing_ci_low,pointing_ci_high,iobb_hit_rate,iobb_ci_low,iobb_ci_high,"
      "mean_iobb,chance\n";
  nlohmann::json js = nlohmann::json::object();
  nlohmann::json paired = {{"format", ::daug::kPairedItemsFormat}, {"metrics", nlohmann::json::array()}};
  for (const auto& name : names) {
    nlohmann::json row;
    for (int k = 0; k < kMapKinds; ++k) {
      const Tally& t = tally(name, k);
      const double pr = mean(t.pointing), ir = mean(t.iobb_hit);
      const double mi = t.n ? t.iobb_sum / static_cast<double>(t.n) : 0;
      const double chance = t.n ? t.chance_sum / static_cast<double>(t.n) : 0;
      const Interval pc = bootstrap_mean_ci(t.pointing, opts_.draws, opts_.seed);
      const Interval ic = bootstrap_mean_ci(t.iobb_hit, opts_.draws, opts_.seed);
      md += fmt::format("| {} | {} | {} | {:.4f} [{}, {}] | {:.4f} [{}, {}] | {:.4f} | {:.4f} |\n",
                        k == kHeatmap ? name : "", map_title(k), t.n, pr, fixed(pc.low, 3), fixed(pc.high, 3), ir,
                        fixed(ic.low, 3), fixed(ic.high, 3), mi, chance);
      f.csv += fmt::format("{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f}\n", name, map_key(k), t.n,
                           pr, pc.low, pc.high, ir, ic.low, ic.high, mi, chance);
      nlohmann::json m = {{"n", t.n},
                          {"pointing_hit_rate", pr},
                          {"pointing_ci_low", num(pc.low)},
                          {"pointing_ci_high", num(pc.high)},
                          {"iobb_hit_rate", ir},
                          {"iobb_ci_low", num(ic.low)},
                          {"iobb_ci_high", num(ic.high)},
                          {"mean_iobb", mi},
                          {"chance", chance}};
      if (k == kHeatmap) row = m;  // the heatmap's numbers at the top level of the label, as before the reference rows
      else row[map_key(k)] = m;
    }
    js[name] = row;
    // Per-pair hits of the heatmap, for paired bootstrap CIs across variants.
    for (const char* metric : {"pointing_hit_rate", "iobb_hit_rate"}) {
      nlohmann::json items = nlohmann::json::array();
      for (const auto& p : pairs_)
        if (name == "Overall" || p.label == name) {
          const bool hit = std::string(metric) == "pointing_hit_rate" ? p.r[kHeatmap].pointing
                                                                      : p.r[kHeatmap].best_iobb > opts_.iobb;
          items.push_back({p.id + "|" + p.label, hit ? 1.0 : 0.0});
        }
      paired["metrics"].push_back(
          {{"name", fmt::format("localization.{}.{}", name, metric)}, {"kind", "mean"}, {"items", std::move(items)}});
    }
  }
  md +=
      "\nPointing game: the map's maximum (pixel centre, rescaled to box coordinates) lies in a box of that image "
      "and label. IoBB (Wang et al., ChestX-ray8): area(B ∩ G) / area(B), B = bounding box of the largest "
      "8-connected region of the thresholded min-max map, G = the best-matching ground-truth box. Chance: the "
      "fraction of the image the boxes cover (the pointing-game rate of a uniformly random point).\n";

  if (!pixel_[0].auroc.empty()) {
    md += fmt::format(
        "\n#### Pixel level (masks)\n\nMasks on the heatmap grid (a cell is positive when at least half of it is); "
        "AUROC pooled over every pixel of every image, and the mean of the per-image AUROCs (images with both "
        "classes); best Dice: each map min-max normalised, one global threshold t ∈ {{0.05, …, 0.95}} maximising the "
        "mean Dice over the images with a non-empty mask.\n\n"
        "| Map | Images | AUROC (pooled) | AUROC (mean per image) | Best Dice | at t "
        "|\n|---|---:|---:|---:|---:|---:|\n");
    nlohmann::json pj;
    for (int k = 0; k < kMapKinds; ++k) {
      const Pixel& px = pixel_[k];
      const double pooled = auroc(px.scores, px.truth);
      std::vector<double> per;
      for (double a : px.auroc)
        if (std::isfinite(a)) per.push_back(a);
      const double per_mean = per.empty() ? std::nan("") : mean(per);
      double best = std::nan(""), best_t = std::nan("");
      const auto& ts = dice_thresholds();
      for (size_t q = 0; q < ts.size() && !px.dice.empty(); ++q) {
        double s = 0;
        for (const auto& c : px.dice) s += c[q];
        s /= static_cast<double>(px.dice.size());
        if (!(s <= best)) {  // first maximum; NaN best takes the first
          best = s;
          best_t = ts[q];
        }
      }
      md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", map_title(k), px.auroc.size(), fixed(pooled, 4),
                        fixed(per_mean, 4), fixed(best, 4), fixed(best_t, 2));
      nlohmann::json m = {{"n_images", px.auroc.size()}, {"n_images_dice", px.dice.size()},
                          {"auroc_pooled", num(pooled)}, {"auroc_mean_image", num(per_mean)},
                          {"best_dice", num(best)},      {"best_dice_threshold", num(best_t)}};
      if (k == kHeatmap)
        for (auto it = m.begin(); it != m.end(); ++it) pj[it.key()] = it.value();
      else pj[map_key(k)] = m;
    }
    js["pixel"] = pj;
  }
  for (const auto& n : text.notes) md += "\n" + n + "\n";

  nlohmann::json metrics = {{"localization", numbers_only(js)}};
  if (!info.empty()) js["_info"] = info;
  f.json = js.dump(2) + "\n";
  f.metrics = metrics.dump(2) + "\n";
  f.paired_items = paired.dump() + "\n";
  return f;
}

}  // namespace daug::loc
