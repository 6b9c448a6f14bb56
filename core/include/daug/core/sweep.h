#pragma once
/// Ablations and sweeps: run several variants of an experiment and write one comparison table.
///
/// A sweep is written in the config itself:
///   [sweep]
///   "guidance.scale"  = [10.0, 100.0]
///   "guidance.plugin" = ["softmax", "sigmoid"]
/// expands to the cartesian product (4 variants), each the base config plus those `--set` overrides.
/// An ablation set is a list of config files (usually each imports a shared base and changes one thing).
///
/// Metrics come from the `metrics.json` file a stage writes in its output directory (a JSON object; nested
/// objects are flattened with '.' and only numbers are kept). Stages share outputs through the cache, so
/// variants that differ only downstream reuse upstream work.
#include <daug/detail/config_document.h>

#include <daug/core/pipeline.h>
#include <daug/core/plugin_loader.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace daug::core {

struct Variant {
  std::string name;                         ///< "guidance.scale=10.0,guidance.plugin=softmax" or a file stem
  std::shared_ptr<ConfigDocument> doc;      ///< resolved config of this variant
  std::vector<std::string> overrides;       ///< the --set assignments that made it
};

/// Expands [sweep] (removed from the variants' configs). No [sweep] table → one variant, the config itself.
/// A [sweep] entry that is not a non-empty array → ConfigError with its location.
std::vector<Variant> expand_sweep(const ConfigDocument& doc, const std::string& base_name);

/// Paired bootstrap CIs in the comparison (daug/bootstrap.h): for every stage that wrote paired_items.json in every
/// variant that ran, the difference of each of its metrics from the first such variant, with a percentile CI over
/// `draws` resamples of the items paired by id (the same draws for every variant). draws = 0: no CI table.
struct BootstrapOptions {
  int64_t draws = 1000;
  uint64_t seed = 0;
};

/// Flattened numeric metrics of a finished run: "<stage>.<key>" → value, from each stage's metrics.json.
std::vector<std::pair<std::string, double>> collect_metrics(const RunResult& run);

/// Runs every variant (in order; a failing variant is recorded as failed and the rest still run) and writes
/// comparison.md, comparison.csv and comparison.json into `out_dir`. Returns the Markdown table.
/// `column_filters`: keep only metric columns containing one of these substrings (empty = all).
/// With paired items (see BootstrapOptions) the Markdown gains a table "Paired bootstrap: difference from <first>"
/// (metric | variant | Δ | 95% CI | n items), the CSV the columns "Δ <metric>", "Δ <metric> lo95", "Δ <metric> hi95",
/// "<metric> paired n", and each comparison.json row a "paired_bootstrap" object. A malformed paired_items.json is
/// a DataError naming the file (after comparison.* without the CI were written).
/// Under a distributed launch every rank runs every variant, and rank 0 alone writes the comparison (the other ranks
/// return "").
std::string run_variants(const PluginLoader& loader, const std::vector<Variant>& variants,
                         const std::filesystem::path& out_dir, const RunOptions& options,
                         const std::vector<std::string>& column_filters, const BootstrapOptions& bootstrap = {});

}  // namespace daug::core
