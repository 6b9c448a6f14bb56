#pragma once
// command_compare_heatmaps: `daug compare-heatmaps`, the speed/quality trade-off of heatmap variants (e.g. respaced
// sampling schedules): per-image Pearson r with a reference variant's heatmaps, seconds per image, and the
// localisation hit rates when the run scored them (a Command plugin; see README.md).
#include <daug/build_context.h>
#include <daug/command.h>
#include <daug/options.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace daug::plugins {

/// A command takes its input from the command line: no TOML options.
struct CompareHeatmapsCommandOptions {
  void visit(daug::OptionVisitor&) {}
};

class CompareHeatmapsCommand final : public daug::Command {
 public:
  using Options = CompareHeatmapsCommandOptions;
  static std::shared_ptr<daug::Command> create(Options, daug::BuildContext&) {
    return std::make_shared<CompareHeatmapsCommand>();
  }
  std::string describe() const override { return "compare-heatmaps"; }
  int run(const std::vector<std::string>& args, daug::CommandContext& ctx) override;
};

namespace compare {

/// Pearson's r of two equally long vectors, in float64 (two passes: means, then centred sums). NaN when either
/// vector is constant (zero variance: r is undefined) or holds a NaN/Inf; clamped to [-1, 1] against rounding.
double pearson(const std::vector<double>& a, const std::vector<double>& b);

/// Summary of per-image r values: the NaN ones are counted as `undefined` and left out of mean/median/min.
struct Summary {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  int64_t valid = 0, undefined = 0;
  double mean = kNaN, median = kNaN, min = kNaN;  ///< NaN when no value is valid
};
Summary summarize(const std::vector<double>& r);

/// Sampling steps of a generator's `timestep_respacing` (adm::space_timesteps): "ddimN" → N, "N" → N, "a,b,c"
/// (sections) → a + b + c, "" → `diffusion_steps` (no respacing). nullopt for anything else.
std::optional<int64_t> respacing_steps(const std::string& spec, int64_t diffusion_steps);
/// Steps named in a variant name: the last "ddimN" in it ("sweep[generator.timestep_respacing='ddim50']" → 50), or
/// the whole name when it is a number. nullopt otherwise.
std::optional<int64_t> steps_from_name(const std::string& name);
/// The default reference: the variant with the most sampling steps (the first of equals); nullopt when no
/// variant's steps are known.
std::optional<size_t> slowest(const std::vector<std::optional<int64_t>>& steps);

/// The heatmap files of a heatmaps stage output directory, from its index.csv (columns id and file, and target,
/// direction when present). Rows are keyed "id" or, with target/direction columns, "id [target, direction]", so
/// that only heatmaps of the same target and direction are paired. A key listed twice is a DataError (file:line).
struct HeatmapSet {
  std::filesystem::path dir;
  std::map<std::string, std::filesystem::path> files;  ///< key → heatmap file
  static HeatmapSet read(const std::filesystem::path& dir);
};

/// Per-image r of `variant` against `reference` over the keys both have.
struct Pairing {
  std::vector<double> r;  ///< one per matched key, in key order (NaN: undefined)
  int64_t matched = 0, only_variant = 0, only_reference = 0;
  int64_t constant = 0, nonfinite = 0;  ///< why r is undefined: a constant map, a NaN/Inf value
  std::vector<std::string> first_only_variant, first_only_reference, first_undefined;  ///< up to 5 keys each
};
/// Reads both heatmaps of every shared key (.npy of any shape; both must have the same shape, else DataError naming
/// both files) and computes r on the flattened values.
Pairing compare_sets(const HeatmapSet& reference, const HeatmapSet& variant);

/// Localisation scores found among a stage's flattened metrics ("<key>" → value, nested objects joined by '.'): the
/// pointing-game and IoBB hit rates of the `Overall` row when there is one (a key ending in
/// "Overall.pointing_hit_rate"), else the first key ending in "pointing_hit_rate" (likewise "iobb_hit_rate"); and,
/// when masks were scored, the pixel AUROC and best Dice of the heatmap ("pixel.auroc_pooled", "pixel.best_dice").
/// A suffix matches whole key parts only ("xiobb_hit_rate" is another metric), so reference rows nested deeper
/// ("Overall.centred_gaussian.pointing_hit_rate") are not taken for the heatmap's.
struct Localization {
  std::optional<double> pointing, iobb, pixel_auroc, best_dice;
  std::vector<std::string> keys;  ///< the keys read
  bool any() const { return pointing || iobb || pixel_auroc || best_dice; }
};
Localization pick_localization(const std::vector<std::pair<std::string, double>>& flat_metrics);

/// One `[table]` of a TOML file the core writes (effective.toml): its `key = value` lines as text, strings
/// unquoted. Only scalar values are meaningful; empty when the file or table is missing.
std::map<std::string, std::string> read_toml_table(const std::filesystem::path& file, const std::string& table);

}  // namespace compare
}  // namespace daug::plugins
