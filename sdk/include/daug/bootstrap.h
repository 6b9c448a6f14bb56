#pragma once
/// Bootstrap confidence intervals over the items of a paired_items.json metric (daug/paired_items.h): the value
/// of a metric kind (mean, macro_auc, macro_mean) on a resample, a percentile CI of one metric, and the paired CI
/// of the difference between two variants (items paired by id). Used by `daug ablate`/sweeps (the core) and by
/// stages that report a CI of their own metrics (e.g. `evaluate`).
///
/// Resampling is portable and exactly reproducible (no std::*_distribution): draw d of seed S picks n item
/// indices; pick j takes x = mix_seed(mix_seed(S, d), t) for t = 0, 1, ... (one counter per draw, daug/seed.h),
/// rejects x < 2^64 mod n (so every index is equally likely) and keeps x mod n. The CI is the percentile interval
/// of the draws where the metric is defined, with linear interpolation between order statistics (numpy's default
/// percentile): lo at (1 - level)/2, hi at (1 + level)/2.
///
/// Example:
///   auto items = daug::read_paired_items(dir / daug::kPairedItemsFile);
///   auto ci = daug::bootstrap_interval(items.metrics[0], 1000, 0);           // ci.estimate, ci.lo, ci.hi
///   auto d = daug::paired_difference(base.metrics[0], other.metrics[0], 1000, 0);  // other − base
#include <daug/api.h>
#include <daug/paired_items.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug {

/// A metric on the items as given (`estimate`) and its bootstrap percentile interval [lo, hi]. NaN where the
/// metric is undefined (e.g. macro_auc without a class that has both labels); `defined_draws` of `draws` counted.
struct BootstrapInterval {
  double estimate = 0;
  double lo = 0;
  double hi = 0;
  int64_t draws = 0;
  int64_t defined_draws = 0;
};

/// A paired difference other − base over the items whose id both have.
struct PairedDifference {
  BootstrapInterval delta;  ///< estimate = other − base on the paired items; CI from paired resamples
  double base_value = 0;    ///< base metric on the paired items
  double other_value = 0;   ///< other metric on the paired items
  size_t paired = 0;        ///< items in both (the ones resampled)
  size_t base_items = 0;    ///< items of base
  size_t other_items = 0;   ///< items of other
};

/// Throws DataError("<where>: metric '<name>' ...") unless `m` is well formed for its kind (see paired_items.h):
/// a known kind, unique non-empty ids, one value per mean item, equal value/label counts per item and across items,
/// labels 0/1 (macro_auc: or NaN), numbers where they count.
DAUG_SDK_API void check_paired_metric(const PairedMetric& m, const std::string& where);

/// Reads and checks a paired_items.json. Throws DataError naming the file and what was expected where it is not
/// valid JSON, not format daug.paired_items/1, or a metric or item is malformed.
DAUG_SDK_API PairedItems read_paired_items(const std::filesystem::path& file);

/// The metric on the items weighted by `counts` (counts[i] copies of item i; empty = each item once).
DAUG_SDK_API double paired_metric_value(const PairedMetric& m, const std::vector<uint32_t>& counts = {});

/// Draw `draw` of `seed`: how often each of n items is picked in n picks with replacement (see above).
DAUG_SDK_API std::vector<uint32_t> bootstrap_counts(size_t n, uint64_t seed, uint64_t draw);

/// Percentile interval of `m` over `draws` resamples of its items (draws = 0: estimate only, lo = hi = NaN).
DAUG_SDK_API BootstrapInterval bootstrap_interval(const PairedMetric& m, int64_t draws, uint64_t seed,
                                                  double level = 0.95);

/// Paired bootstrap of other − base: both metrics are computed on the same resample of the paired ids each draw.
/// The kinds must match (DataError otherwise). No paired items: every value NaN.
DAUG_SDK_API PairedDifference paired_difference(const PairedMetric& base, const PairedMetric& other, int64_t draws,
                                                uint64_t seed, double level = 0.95);

}  // namespace daug
