#pragma once
// Heatmaps and masks from .npy files as the localisation metrics take them (the header needs no LibTorch).
#include <daug/localization/heatmap_localization.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace daug::loc {

/// A heatmap file: [H,W] or [C,H,W] (channel 0), any numeric dtype, as float32.
struct LoadedHeatmap {
  Map map;
  int64_t nonfinite = 0;  ///< NaN/Inf values (such a map has no meaningful maximum: callers leave it out)
};
/// Throws DataError naming the file unless it holds [H,W] or [C,H,W] with H, W > 0.
LoadedHeatmap load_heatmap(const std::filesystem::path& path);

/// A mask file: [H,W] or [1,H,W], any numeric dtype, nonzero = finding.
struct Mask {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> v;
};
/// Throws DataError naming the file unless it holds [H,W] or [1,H,W] with H, W > 0.
Mask load_mask(const std::filesystem::path& path);

}  // namespace daug::loc
