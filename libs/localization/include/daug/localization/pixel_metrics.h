#pragma once
// Pixel-level localisation metrics against masks, the trivial reference maps, and a bootstrap CI (no LibTorch).
//
//  * Masks are brought to the heatmap's grid, not the heatmap to the mask's: heatmap cell (i, j) covers
//    [j·W/w, (j+1)·W/w) × [i·H/h, (i+1)·H/h) of an H×W mask, and is positive when at least half of that area is
//    nonzero (exact area fractions, also for sizes that do not divide). The heatmap is scored as it was computed.
//  * AUROC: the probability that a positive pixel scores above a negative one, ties counting 1/2 (Mann-Whitney U
//    with average ranks). NaN when either class is absent.
//  * Best Dice: each heatmap is min-max normalised (a constant map predicts nothing), thresholded at every t of
//    dice_thresholds() (pixel positive when value >= t), Dice = 2|P∩G| / (|P| + |G|) per image, averaged over the
//    images; the best t of that mean curve is one global threshold (the usual "best Dice" of anomaly segmentation).
//  * Reference maps: i.i.d. uniform noise in [0,1) at the heatmap's resolution, seeded per image from (seed, id);
//    a centred Gaussian with σ = a quarter of the side (in cells, pixel centres at i + 0.5).
//  * Bootstrap CI of a mean: `draws` resamples of the n values with replacement, percentile interval (linear
//    interpolation between order statistics, numpy's default) at 2.5% and 97.5%. The indices come from splitmix64
//    (daug::mix_seed), so the interval is the same on every platform.
#include <daug/localization/heatmap_localization.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug::loc {

/// ROC AUC of `scores` for binary `labels` (nonzero = positive), ties 1/2; NaN without both classes.
double auroc(const std::vector<float>& scores, const std::vector<uint8_t>& labels);

/// An mh×mw mask (row-major, nonzero = finding) on an h×w grid: a cell is 1 when >= half its area is nonzero.
std::vector<uint8_t> mask_to_grid(const std::vector<uint8_t>& mask, int64_t mh, int64_t mw, int64_t h, int64_t w);

/// The thresholds of the best-Dice search: 0.05, 0.10, ..., 0.95.
const std::vector<double>& dice_thresholds();

/// Dice of minmax(m) >= t against `truth` (same grid) for every t of `thresholds`. A constant map predicts no
/// pixel; Dice is 1 when prediction and truth are both empty.
std::vector<double> dice_curve(const Map& m, const std::vector<uint8_t>& truth, const std::vector<double>& thresholds);

/// i.i.d. uniform [0,1) noise on an h×w grid, from seed (portable: splitmix64).
Map uniform_noise_map(int64_t h, int64_t w, uint64_t seed);
/// exp(-r²/(2σ²)) around the grid's centre, σ = min(h, w)/4 cells.
Map centred_gaussian_map(int64_t h, int64_t w);

struct Interval {
  double low = 0, high = 0;
};
/// Percentile bootstrap 95% CI of the mean of `values` (see above); {NaN, NaN} for no values.
Interval bootstrap_mean_ci(const std::vector<double>& values, int64_t draws, uint64_t seed);

}  // namespace daug::loc
