// `daug compare-heatmaps`: the speed/quality trade-off of heatmap variants (respaced sampling schedules).
//
//   daug compare-heatmaps --sweep SWEEP_DIR [--reference VARIANT] [--stage TABLE] [--out DIR]
//   daug compare-heatmaps --heatmaps DIR [--heatmaps DIR ...] [--names a,b,...] [--reference DIR] [--out DIR]
//
// For each variant: images matched with the reference (by id, target and direction), mean/median/min of the per-image
// Pearson r with the reference heatmap (undefined r counted), seconds per image from the heatmaps stage's
// metrics.json, and the pointing-game / IoBB hit rates when the run (or `daug evaluate-heatmaps`) scored them.
// Writes tradeoff.md/.csv/.json and tradeoff.png (drawn by libs/plot).
#include "compare_heatmaps_command.h"

#include <daug/artifact.h>
#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/plot/plot.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

namespace po = boost::program_options;

namespace daug::plugins {
namespace compare {

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  DAUG_CHECK(a.size() == b.size(), "pearson: vectors of different lengths (", a.size(), " and ", b.size(), ")");
  const size_t n = a.size();
  if (n == 0) return std::nan("");
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(n), mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db, saa += da * da, sbb += db * db;
  }
  if (!std::isfinite(sab) || !std::isfinite(saa) || !std::isfinite(sbb) || saa == 0 || sbb == 0) return std::nan("");
  return std::clamp(sab / std::sqrt(saa * sbb), -1.0, 1.0);
}

Summary summarize(const std::vector<double>& r) {
  Summary s;
  std::vector<double> v;
  for (double x : r) std::isnan(x) ? ++s.undefined : (v.push_back(x), 0);
  s.valid = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  s.median = v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  s.min = v.front();
  return s;
}

namespace {
std::optional<int64_t> whole_number(const std::string& t) {
  if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(t);
}
}  // namespace

std::optional<int64_t> respacing_steps(const std::string& spec, int64_t diffusion_steps) {
  if (spec.empty()) return diffusion_steps > 0 ? std::optional<int64_t>(diffusion_steps) : std::nullopt;
  if (spec.rfind("ddim", 0) == 0) return whole_number(spec.substr(4));
  int64_t total = 0;
  std::stringstream in(spec);
  for (std::string part; std::getline(in, part, ',');) {
    const auto n = whole_number(part);
    if (!n) return std::nullopt;
    total += *n;
  }
  return total > 0 ? std::optional<int64_t>(total) : std::nullopt;
}

std::optional<int64_t> steps_from_name(const std::string& name) {
  static const std::regex ddim("ddim([0-9]+)");
  std::optional<int64_t> last;
  for (auto it = std::sregex_iterator(name.begin(), name.end(), ddim); it != std::sregex_iterator(); ++it)
    last = whole_number((*it)[1].str());
  return last ? last : whole_number(name);
}

std::optional<size_t> slowest(const std::vector<std::optional<int64_t>>& steps) {
  std::optional<size_t> best;
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i] && (!best || *steps[i] > *steps[*best])) best = i;
  return best;
}

HeatmapSet HeatmapSet::read(const std::filesystem::path& dir) {
  const auto path = dir / kHeatmapsIndexFile;
  DAUG_CHECK_AS(DataError, std::filesystem::exists(path), "daug compare-heatmaps: ", path.string(),
                " does not exist; a heatmaps directory must be a heatmaps stage output (it publishes index.csv)");
  const auto table = data::CsvTable::read(path);
  const size_t ci = table.column("id"), cf = table.column("file");
  const bool td = table.has_column("target") && table.has_column("direction");
  const size_t ct = td ? table.column("target") : 0, cd = td ? table.column("direction") : 0;
  HeatmapSet set;
  set.dir = dir;
  std::map<std::string, int> line_of;
  for (size_t r = 0; r < table.rows(); ++r) {
    const std::string key =
        td ? fmt::format("{} [{}, {}]", table.at(r, ci), table.at(r, ct), table.at(r, cd)) : table.at(r, ci);
    auto [it, fresh] = line_of.emplace(key, table.line_of(r));
    DAUG_CHECK_AS(DataError, fresh, path.string(), ":", table.line_of(r), ": heatmap '", key,
                  "' is listed twice (first on line ", it->second, ")");
    const std::filesystem::path file = table.at(r, cf);
    set.files[key] = file.is_absolute() ? file : dir / file;
  }
  return set;
}

namespace {
std::vector<double> load_values(const std::filesystem::path& file, std::vector<int64_t>* shape) {
  DAUG_CHECK_AS(DataError, std::filesystem::exists(file), "daug compare-heatmaps: heatmap ", file.string(),
                " is listed in its index.csv but does not exist");
  at::Tensor t = data::load_npy(file).to(at::kDouble).contiguous();
  *shape = t.sizes().vec();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}
}  // namespace

Pairing compare_sets(const HeatmapSet& reference, const HeatmapSet& variant) {
  Pairing p;
  for (const auto& [key, file] : variant.files)
    if (!reference.files.count(key) && p.only_variant++ < 5) p.first_only_variant.push_back(key);
  for (const auto& [key, ref_file] : reference.files) {
    auto it = variant.files.find(key);
    if (it == variant.files.end()) {
      if (p.only_reference++ < 5) p.first_only_reference.push_back(key);
      continue;
    }
    ++p.matched;
    std::vector<int64_t> sa, sb;
    const auto a = load_values(ref_file, &sa), b = load_values(it->second, &sb);
    DAUG_CHECK_AS(DataError, sa == sb, "daug compare-heatmaps: heatmap '", key, "' has shape ",
                  fmt::format("[{}]", fmt::join(sb, ", ")), " in ", it->second.string(), " but ",
                  fmt::format("[{}]", fmt::join(sa, ", ")), " in the reference ", ref_file.string(),
                  "; variants must be made at the same resolution");
    const double r = pearson(a, b);
    if (std::isnan(r)) {
      const bool finite = std::all_of(a.begin(), a.end(), [](double v) { return std::isfinite(v); }) &&
                          std::all_of(b.begin(), b.end(), [](double v) { return std::isfinite(v); });
      ++(finite ? p.constant : p.nonfinite);
      if (p.first_undefined.size() < 5)
        p.first_undefined.push_back(fmt::format("{} ({})", key, finite ? "constant map" : "NaN/Inf values"));
    }
    p.r.push_back(r);
  }
  return p;
}

Localization pick_localization(const std::vector<std::pair<std::string, double>>& flat) {
  Localization loc;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  // "a.b.metric" matches "metric" and "b.metric", never "xmetric" (the match starts after a '.').
  auto names = [&](const std::string& k, const std::string& suffix) {
    return k == suffix || ends_with(k, "." + suffix);
  };
  auto pick = [&](std::vector<std::string> suffixes, std::optional<double>& value) {
    for (const auto& suffix : suffixes)
      for (const auto& [k, v] : flat)
        if (names(k, suffix)) {
          value = v;
          loc.keys.push_back(k);
          return;
        }
  };
  pick({"Overall.pointing_hit_rate", "pointing_hit_rate"}, loc.pointing);
  pick({"Overall.iobb_hit_rate", "iobb_hit_rate"}, loc.iobb);
  pick({"pixel.auroc_pooled"}, loc.pixel_auroc);
  pick({"pixel.best_dice"}, loc.best_dice);
  return loc;
}

std::map<std::string, std::string> read_toml_table(const std::filesystem::path& file, const std::string& table) {
  std::map<std::string, std::string> out;
  std::ifstream in(file);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    const size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    if (line[b] == '[') {
      inside = line.substr(b) == "[" + table + "]";
      continue;
    }
    if (!inside) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(b, eq - b);
    key.erase(key.find_last_not_of(" \t") + 1);
    std::string v = line.substr(eq + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    if (!v.empty() && (v[0] == '\'' || v[0] == '"')) {  // a string: up to its closing quote
      const size_t close = v.find(v[0], 1);
      v = close == std::string::npos ? v.substr(1) : v.substr(1, close - 1);
    } else {
      v = v.substr(0, v.find_first_of(" \t#"));
    }
    out[key] = v;
  }
  return out;
}

}  // namespace compare

namespace {

using namespace compare;

constexpr const char* kUsage =
    "usage: daug compare-heatmaps --sweep SWEEP_DIR [--reference VARIANT] [--stage TABLE] [--out DIR]\n"
    "       daug compare-heatmaps --heatmaps DIR [--heatmaps DIR ...] [--names a,b,...] [--reference DIR] [--out DIR]\n"
    "Compares heatmap variants (e.g. timestep_respacing = ddim10/20/50/...) with a reference variant: per image, the\n"
    "Pearson r of the flattened heatmaps (float64; matched by id, target and direction; a constant or NaN map has no "
    "r\n"
    "and is counted), seconds per image from each heatmaps stage's metrics.json, and the pointing-game / IoBB hit\n"
    "rates when the run scored them (a stage's metrics.json, or localization.json of `daug evaluate-heatmaps` in the\n"
    "heatmap directory).\n"
    "--sweep: the directory `daug ablate` or a [sweep] wrote (comparison.json); each ok variant's run directory\n"
    "(stages.txt) gives its heatmaps stage (the stage with an index.csv, or --stage) and the other stages' metrics.\n"
    "The reference is, by default, the variant with the most sampling steps: the generator's timestep_respacing in\n"
    "the run's effective.toml (ddimN, N, a,b,c; \"\" = diffusion_steps), else \"ddimN\" in the variant name (or\n"
    "--names). --reference names a variant (sweep) or a heatmap directory.\n"
    "Writes tradeoff.md/.csv/.json and tradeoff.png into --out (default: the sweep directory, or the current one).\n";

struct Args {
  std::string sweep, reference, stage, out, names;
  std::vector<std::string> heatmaps;
  bool help = false;
};

Args parse(const std::vector<std::string>& args) {
  Args a;
  po::options_description desc("daug compare-heatmaps options");
  desc.add_options()("help,h", "show help")("sweep", po::value(&a.sweep), "sweep/ablation directory")(
      "heatmaps", po::value(&a.heatmaps)->composing(), "heatmaps stage output directory (repeatable)")(
      "names", po::value(&a.names), "comma-separated names of the --heatmaps directories")(
      "reference", po::value(&a.reference), "reference variant (sweep) or heatmap directory")(
      "stage", po::value(&a.stage), "heatmaps stage table in the sweep's runs")("out", po::value(&a.out),
                                                                                "output directory");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
    a.help = vm.count("help") > 0;
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("daug compare-heatmaps: {}\n{}", e.what(), kUsage));
  }
  if (a.help) return a;
  DAUG_CHECK_AS(ConfigError, a.sweep.empty() != a.heatmaps.empty(),
                "daug compare-heatmaps: give either --sweep DIR or --heatmaps DIR..., ",
                a.sweep.empty() ? "but got neither\n" : "not both\n", kUsage);
  DAUG_CHECK_AS(ConfigError, a.sweep.empty() || (a.names.empty()),
                "daug compare-heatmaps: --names goes with --heatmaps (a sweep's variants have their names)");
  DAUG_CHECK_AS(ConfigError, a.stage.empty() || !a.sweep.empty(),
                "daug compare-heatmaps: --stage picks the heatmaps stage of a sweep's runs; it needs --sweep");
  if (a.out.empty()) a.out = a.sweep.empty() ? std::string(".") : a.sweep;
  return a;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const std::filesystem::path& p) {
  try {
    return nlohmann::json::parse(read_text(p));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("daug compare-heatmaps: {} is not valid JSON: {}", p.string(), e.what()));
  }
}

void flatten(const nlohmann::json& j, const std::string& prefix, std::vector<std::pair<std::string, double>>& out) {
  if (j.is_number()) {
    out.emplace_back(prefix, j.get<double>());
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  }
}

/// One row of the comparison.
struct Variant {
  std::string name, schedule;  // schedule: the respacing spec ("ddim10") when known, else the name
  std::optional<int64_t> steps;
  std::string steps_from;  // "effective.toml" or "name"
  std::filesystem::path heatmaps;
  std::optional<double> seconds_per_image, images_per_s;
  std::string timing_note;  // why there is no timing
  Localization loc;
  std::string loc_source;  // the stage or file the rates came from
  Pairing pairing;
  Summary summary;
};

/// Seconds per image from a heatmaps stage's metrics.json: seconds / made (the images it translated in that run).
void read_timing(Variant& v) {
  const auto file = v.heatmaps / kMetricsFile;
  if (!std::filesystem::exists(file)) {
    v.timing_note = "no metrics.json";
    return;
  }
  const auto j = read_json(file);
  const double secs = j.value("seconds", 0.0), made = j.value("made", 0.0);
  if (!(secs > 0) || !(made > 0)) {
    v.timing_note =
        made > 0 ? "no seconds in metrics.json" : "the stage made no image in its last run (all found done)";
    return;
  }
  v.seconds_per_image = secs / made;
  v.images_per_s = made / secs;
}

/// The variants of a sweep directory: comparison.json rows with status ok, each run's heatmaps stage and the
/// localisation rates of its other stages. `skipped` collects the rows left out, with why.
std::vector<Variant> sweep_variants(const Args& a, std::vector<std::string>& skipped) {
  const auto cmp_file = std::filesystem::path(a.sweep) / "comparison.json";
  DAUG_CHECK_AS(DataError, std::filesystem::exists(cmp_file), "daug compare-heatmaps: ", cmp_file.string(),
                " does not exist; --sweep must be the directory `daug ablate` (--out) or a [sweep] run wrote");
  const auto rows = read_json(cmp_file);
  DAUG_CHECK_AS(DataError, rows.is_array(), cmp_file.string(), ": expected a JSON array of variants");
  std::vector<Variant> out;
  for (const auto& row : rows) {
    Variant v;
    v.name = row.value("variant", std::string());
    const std::string status = row.value("status", std::string()), run = row.value("run_dir", std::string());
    if (status != "ok" || run.empty()) {
      skipped.push_back(fmt::format("{} ({})", v.name, status.empty() ? "no status" : status.substr(0, 80)));
      continue;
    }
    const std::filesystem::path run_dir = run;
    const auto stages_file = run_dir / "stages.txt";
    DAUG_CHECK_AS(DataError, std::filesystem::exists(stages_file), "daug compare-heatmaps: variant ", v.name, ": ",
                  stages_file.string(), " does not exist (the run directory lists its stages there when it ends)");
    std::vector<std::pair<std::string, std::filesystem::path>> stages;
    std::stringstream in(read_text(stages_file));
    for (std::string line; std::getline(in, line);) {
      const size_t sp = line.find(' ');
      if (sp != std::string::npos) stages.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    }
    std::vector<std::string> candidates;
    std::string table;
    for (const auto& [t, dir] : stages) {
      if (!a.stage.empty() ? t == a.stage : std::filesystem::exists(dir / kHeatmapsIndexFile)) {
        candidates.push_back(t);
        table = t;
        v.heatmaps = dir;
      }
    }
    std::vector<std::string> names;
    for (const auto& s : stages) names.push_back(s.first);
    DAUG_CHECK_AS(ConfigError, !candidates.empty(), "daug compare-heatmaps: variant ", v.name, ": ",
                  a.stage.empty() ? std::string("no stage of its run wrote an index.csv (a heatmaps stage output)")
                                  : "its run has no stage [" + a.stage + "]",
                  "; its stages: ", fmt::format("{}", fmt::join(names, ", ")), " (", stages_file.string(), ")");
    DAUG_CHECK_AS(ConfigError, candidates.size() == 1, "daug compare-heatmaps: variant ", v.name,
                  ": several stages wrote heatmaps (", fmt::format("{}", fmt::join(candidates, ", ")),
                  "); pick one with --stage");
    // Steps: [<heatmaps table>].generator names the generator table; its timestep_respacing is in the run's
    // effective.toml (every option, defaults included).
    const auto hm_opts = read_toml_table(v.heatmaps / "effective.toml", table);
    const std::string gen = hm_opts.count("generator") ? hm_opts.at("generator") : "generator";
    const auto gen_opts = read_toml_table(run_dir / "effective.toml", gen);
    if (gen_opts.count("timestep_respacing")) {
      const std::string spec = gen_opts.at("timestep_respacing");
      const auto t = gen_opts.count("diffusion_steps") ? whole_number(gen_opts.at("diffusion_steps")) : std::nullopt;
      v.steps = respacing_steps(spec, t.value_or(0));
      v.schedule = spec.empty() ? fmt::format("T{} (no respacing)", t.value_or(0)) : spec;
      v.steps_from = "effective.toml";
    }
    if (!v.steps) {
      v.steps = steps_from_name(v.name);
      if (v.steps) v.steps_from = "name";
    }
    if (v.schedule.empty()) v.schedule = v.steps ? fmt::format("ddim{}", *v.steps) : v.name;
    // Localisation: the first other stage whose metrics.json holds hit rates.
    for (const auto& [t, dir] : stages) {
      if (t == table || !std::filesystem::exists(dir / kMetricsFile)) continue;
      std::vector<std::pair<std::string, double>> flat;
      flatten(read_json(dir / kMetricsFile), "", flat);
      auto loc = pick_localization(flat);
      if (loc.any()) {
        v.loc = loc;
        v.loc_source = "[" + t + "] metrics.json";
        break;
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

/// localization.json that `daug evaluate-heatmaps` writes into a heatmap directory by default.
void read_dir_localization(Variant& v) {
  const auto file = v.heatmaps / "localization.json";
  if (v.loc.any() || !std::filesystem::exists(file)) return;
  std::vector<std::pair<std::string, double>> flat;
  flatten(read_json(file), "", flat);
  v.loc = pick_localization(flat);
  if (v.loc.any()) v.loc_source = "localization.json";
}

/// A value for the tables: "n/a" (Markdown) or `missing` (CSV: empty) when absent or not finite.
std::string num(std::optional<double> v, const char* f = "{:.4f}", const char* missing = "n/a") {
  return v && std::isfinite(*v) ? fmt::format(fmt::runtime(f), *v) : std::string(missing);
}

}  // namespace

int CompareHeatmapsCommand::run(const std::vector<std::string>& argv, CommandContext&) {
  const Args a = parse(argv);
  if (a.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  std::vector<Variant> vs;
  std::vector<std::string> skipped;
  std::optional<size_t> ref;
  std::string ref_why;
  if (!a.sweep.empty()) {
    vs = sweep_variants(a, skipped);
    DAUG_CHECK_AS(
        DataError, !vs.empty(), "daug compare-heatmaps: ", a.sweep,
        "/comparison.json has no variant that finished (status ok): ", fmt::format("{}", fmt::join(skipped, "; ")));
    if (!a.reference.empty()) {
      std::vector<std::string> choices;
      for (size_t i = 0; i < vs.size(); ++i) {
        choices.push_back(vs[i].name);
        if (vs[i].name == a.reference || vs[i].schedule == a.reference) {
          DAUG_CHECK_AS(ConfigError, !ref, "daug compare-heatmaps: --reference ", a.reference,
                        " matches two variants; give the full variant name");
          ref = i;
        }
      }
      DAUG_CHECK_AS(ConfigError, ref.has_value(), "daug compare-heatmaps: --reference ", a.reference,
                    " is not a variant of the sweep (nor its schedule); the variants: ",
                    fmt::format("{}", fmt::join(choices, ", ")));
      ref_why = "given with --reference";
    }
  } else {
    std::vector<std::string> names;
    if (!a.names.empty()) {
      std::stringstream in(a.names);
      for (std::string n; std::getline(in, n, ',');) names.push_back(n);
      DAUG_CHECK_AS(ConfigError, names.size() == a.heatmaps.size(), "daug compare-heatmaps: --names has ", names.size(),
                    " names for ", a.heatmaps.size(), " --heatmaps directories");
    }
    for (size_t i = 0; i < a.heatmaps.size(); ++i) {
      DAUG_CHECK_AS(DataError, std::filesystem::is_directory(a.heatmaps[i]), "daug compare-heatmaps: --heatmaps ",
                    a.heatmaps[i], " is not a directory");
      Variant v;
      v.heatmaps = a.heatmaps[i];
      v.name = names.empty() ? std::filesystem::path(a.heatmaps[i]).lexically_normal().filename().string() : names[i];
      if (v.name.empty()) v.name = a.heatmaps[i];
      v.steps = steps_from_name(v.name);
      if (v.steps) v.steps_from = "name";
      v.schedule = v.name;
      vs.push_back(std::move(v));
    }
    if (!a.reference.empty()) {
      DAUG_CHECK_AS(DataError, std::filesystem::is_directory(a.reference), "daug compare-heatmaps: --reference ",
                    a.reference, " is not a directory");
      const auto want = std::filesystem::weakly_canonical(a.reference);
      for (size_t i = 0; i < vs.size() && !ref; ++i)
        if (std::filesystem::weakly_canonical(vs[i].heatmaps) == want) ref = i;
      if (!ref) {  // a reference that is not among the variants: its own row
        Variant v;
        v.heatmaps = a.reference;
        v.name = v.schedule = "reference";
        vs.push_back(std::move(v));
        ref = vs.size() - 1;
      }
      ref_why = "given with --reference";
    }
  }
  if (!ref) {
    std::vector<std::optional<int64_t>> steps;
    for (const auto& v : vs) steps.push_back(v.steps);
    ref = slowest(steps);
    DAUG_CHECK_AS(ConfigError, ref.has_value(),
                  "daug compare-heatmaps: cannot tell which variant samples with the most steps (no timestep_respacing "
                  "in the runs' effective.toml and no ddimN in the names); give --reference",
                  a.sweep.empty() ? " DIR, or --names with ddimN" : " VARIANT");
    ref_why = fmt::format("the most sampling steps ({}, from its {})", *vs[*ref].steps, vs[*ref].steps_from);
  }

  // Compare every variant with the reference; timing and localisation.
  const HeatmapSet ref_set = HeatmapSet::read(vs[*ref].heatmaps);
  for (auto& v : vs) {
    read_timing(v);
    read_dir_localization(v);
    v.pairing = compare_sets(ref_set, HeatmapSet::read(v.heatmaps));
    v.summary = summarize(v.pairing.r);
  }
  // Rows by steps (fewest first; unknown last, in the given order).
  std::vector<size_t> order(vs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const auto sx = vs[x].steps.value_or(INT64_MAX), sy = vs[y].steps.value_or(INT64_MAX);
    return sx < sy;
  });

  const Variant& R = vs[*ref];
  const int64_t ref_images = static_cast<int64_t>(ref_set.files.size());
  std::string md = fmt::format(
      "### Speed/quality trade-off of the heatmaps\n\nReference: **{}** (`{}`; {}), {} heatmaps in `{}`.\n"
      "r: Pearson correlation of each image's heatmap with the reference's (flattened, float64), over the images "
      "both have (matched by id, target and direction). s/image: the heatmaps stage's wall time over the images it "
      "made (metrics.json: seconds / made; includes image loading and file writes).\n\n"
      "| schedule | steps | matched | mean r | median r | min r | r undefined | s/image | speed-up | pointing | "
      "IoBB hit | pixel AUROC | best Dice | variant "
      "|\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
      R.schedule, R.name, ref_why, ref_images, R.heatmaps.string());
  std::string csv =
      "variant,schedule,steps,reference,heatmaps_dir,matched,only_variant,only_reference,pearson_valid,"
      "pearson_undefined,pearson_constant,pearson_nonfinite,pearson_mean,pearson_median,pearson_min,"
      "seconds_per_image,images_per_s,speedup,pointing_hit_rate,iobb_hit_rate,pixel_auroc,best_dice,localization_"
      "source\n";
  auto csv_field = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  auto jnum = [](std::optional<double> v) -> nlohmann::ordered_json {
    return v && std::isfinite(*v) ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
  };
  nlohmann::ordered_json jrows = nlohmann::ordered_json::array();
  std::vector<std::string> notes;
  for (size_t i : order) {
    const Variant& v = vs[i];
    const Pairing& p = v.pairing;
    const Summary& s = v.summary;
    const std::optional<double> speedup = v.seconds_per_image && R.seconds_per_image
                                              ? std::optional<double>(*R.seconds_per_image / *v.seconds_per_image)
                                              : std::nullopt;
    const std::string steps = v.steps ? std::to_string(*v.steps) : "?";
    md += fmt::format("| {}{} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", v.schedule,
                      i == *ref ? " (ref)" : "", steps, p.matched, ref_images, num(s.mean), num(s.median), num(s.min),
                      s.undefined, num(v.seconds_per_image, "{:.3f}"), num(speedup, "{:.1f}×"), num(v.loc.pointing),
                      num(v.loc.iobb), num(v.loc.pixel_auroc), num(v.loc.best_dice), v.name);
    csv +=
        fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(v.name),
                    csv_field(v.schedule), v.steps ? std::to_string(*v.steps) : "", i == *ref ? 1 : 0,
                    csv_field(v.heatmaps.string()), p.matched, p.only_variant, p.only_reference, s.valid, s.undefined,
                    p.constant, p.nonfinite, num(s.mean, "{:.6f}", ""), num(s.median, "{:.6f}", ""),
                    num(s.min, "{:.6f}", ""), num(v.seconds_per_image, "{:.6g}", ""), num(v.images_per_s, "{:.6g}", ""),
                    num(speedup, "{:.6g}", ""), num(v.loc.pointing, "{:.6f}", ""), num(v.loc.iobb, "{:.6f}", ""),
                    num(v.loc.pixel_auroc, "{:.6f}", ""), num(v.loc.best_dice, "{:.6f}", ""), csv_field(v.loc_source));
    nlohmann::ordered_json row;
    row["variant"] = v.name;
    row["schedule"] = v.schedule;
    row["steps"] = v.steps ? nlohmann::ordered_json(*v.steps) : nlohmann::ordered_json(nullptr);
    row["steps_from"] = v.steps_from;
    row["reference"] = i == *ref;
    row["heatmaps_dir"] = v.heatmaps.string();
    row["matched"] = p.matched;
    row["only_variant"] = p.only_variant;
    row["only_reference"] = p.only_reference;
    row["pearson"] = {{"mean", jnum(s.mean)},    {"median", jnum(s.median)}, {"min", jnum(s.min)},
                      {"valid", s.valid},        {"undefined", s.undefined}, {"constant", p.constant},
                      {"nonfinite", p.nonfinite}};
    row["seconds_per_image"] = jnum(v.seconds_per_image);
    row["images_per_s"] = jnum(v.images_per_s);
    row["speedup"] = jnum(speedup);
    if (!v.timing_note.empty()) row["timing_note"] = v.timing_note;
    row["pointing_hit_rate"] = jnum(v.loc.pointing);
    row["iobb_hit_rate"] = jnum(v.loc.iobb);
    row["pixel_auroc"] = jnum(v.loc.pixel_auroc);
    row["best_dice"] = jnum(v.loc.best_dice);
    if (!v.loc_source.empty()) row["localization"] = {{"source", v.loc_source}, {"keys", v.loc.keys}};
    jrows.push_back(row);

    if (p.only_reference > 0)
      notes.push_back(fmt::format("{}: {} reference heatmap(s) have no counterpart (first: {})", v.schedule,
                                  p.only_reference, fmt::join(p.first_only_reference, "; ")));
    if (p.only_variant > 0)
      notes.push_back(fmt::format("{}: {} heatmap(s) are not in the reference (first: {})", v.schedule, p.only_variant,
                                  fmt::join(p.first_only_variant, "; ")));
    if (s.undefined > 0)
      notes.push_back(
          fmt::format("{}: r is undefined for {} image(s) ({} constant map, {} with NaN/Inf; first: {}); "
                      "they are counted, not averaged",
                      v.schedule, s.undefined, p.constant, p.nonfinite, fmt::join(p.first_undefined, "; ")));
    if (!v.seconds_per_image) notes.push_back(fmt::format("{}: no timing ({})", v.schedule, v.timing_note));
  }
  bool any_loc = false;
  std::vector<std::string> loc_sources;
  for (const auto& v : vs) {
    any_loc = any_loc || v.loc.any();
    if (!v.loc_source.empty()) {
      const std::string src = fmt::format("{} ({})", v.loc_source, fmt::join(v.loc.keys, ", "));
      if (std::find(loc_sources.begin(), loc_sources.end(), src) == loc_sources.end()) loc_sources.push_back(src);
    }
  }
  md += "\n";
  if (any_loc) md += fmt::format("Localisation scores from: {}.\n", fmt::join(loc_sources, "; "));
  else
    md +=
        "No localisation scores were found (no other stage's metrics.json with *pointing_hit_rate, *iobb_hit_rate, "
        "*pixel.auroc_pooled or *pixel.best_dice; no localization.json in the heatmap directories).\n";
  for (const auto& n : notes) md += "- " + n + "\n";
  if (!skipped.empty()) md += fmt::format("- left out (did not finish): {}\n", fmt::join(skipped, "; "));

  // The figure: r (and the hit rates) against seconds per image, points labelled with the schedule.
  plot::Series r_series;
  r_series.name = "mean Pearson r with the reference";
  plot::Series pg, iobb;
  pg.name = "pointing game";
  iobb.name = "IoBB hit rate";
  iobb.marker = plot::Marker::square;
  iobb.color = plot::kPalette[1];
  plot::Series auroc, dice;
  auroc.name = "pixel AUROC";
  auroc.marker = plot::Marker::triangle;
  auroc.color = plot::kPalette[3];
  dice.name = "best Dice";
  dice.marker = plot::Marker::diamond;
  dice.color = plot::Rgb{127, 127, 127};
  pg.color = plot::kPalette[2];
  int64_t unplotted = 0;
  for (size_t i : order) {
    const Variant& v = vs[i];
    if (!v.seconds_per_image) {
      ++unplotted;
      continue;
    }
    r_series.x.push_back(*v.seconds_per_image);
    r_series.y.push_back(v.summary.mean);
    r_series.labels.push_back(v.schedule);
    if (v.loc.pointing)
      pg.x.push_back(*v.seconds_per_image), pg.y.push_back(*v.loc.pointing), pg.labels.push_back(v.schedule);
    if (v.loc.iobb) iobb.x.push_back(*v.seconds_per_image), iobb.y.push_back(*v.loc.iobb);
    if (v.loc.pixel_auroc) auroc.x.push_back(*v.seconds_per_image), auroc.y.push_back(*v.loc.pixel_auroc);
    if (v.loc.best_dice) dice.x.push_back(*v.seconds_per_image), dice.y.push_back(*v.loc.best_dice);
  }
  std::vector<plot::Panel> panels(1);
  panels[0].title = fmt::format("Heatmap agreement with {} vs sampling cost", R.schedule);
  panels[0].x = {"seconds per image", true, std::nullopt, std::nullopt};
  panels[0].y = {"mean Pearson r", false, std::nullopt, std::nullopt};
  panels[0].series.push_back(r_series);
  if (any_loc) {
    plot::Panel lp;
    lp.title = "Localisation vs sampling cost";
    lp.x = {"seconds per image", true, std::nullopt, std::nullopt};
    lp.y = {"hit rate / AUROC / Dice", false, 0.0, 1.0};
    if (!pg.x.empty()) lp.series.push_back(pg);
    if (!iobb.x.empty()) lp.series.push_back(iobb);
    if (!auroc.x.empty()) lp.series.push_back(auroc);
    if (!dice.x.empty()) lp.series.push_back(dice);
    panels.push_back(lp);
  }
  if (unplotted > 0) md += fmt::format("- {} variant(s) are not in the plot: no seconds per image.\n", unplotted);
  md += "\n![speed/quality trade-off](tradeoff.png)\n";

  nlohmann::ordered_json js;
  js["format"] = "daug.tradeoff/1";
  js["reference"] = {{"variant", R.name}, {"schedule", R.schedule}, {"why", ref_why}, {"images", ref_images}};
  js["variants"] = jrows;
  js["skipped"] = skipped;
  const std::filesystem::path out = a.out;
  std::filesystem::create_directories(out);
  plot::render(panels, 620, 420).canvas.save_png(out / "tradeoff.png");
  write_file_atomic(out / "tradeoff.md", md);
  write_file_atomic(out / "tradeoff.csv", csv);
  write_file_atomic(out / "tradeoff.json", js.dump(2) + "\n");
  fmt::print("{}\ntrade-off: {}/tradeoff.{{md,csv,json,png}}\n", md, out.string());
  return 0;
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Command, "compare-heatmaps", daug::plugins::CompareHeatmapsCommand,
                     "speed/quality trade-off of heatmap variants: Pearson r with a reference, s/image, hit rates")
