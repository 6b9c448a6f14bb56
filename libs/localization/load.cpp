#include <daug/localization/load.h>

#include <daug/data/npy.h>
#include <daug/error.h>

#include <ATen/ATen.h>

namespace daug::loc {

LoadedHeatmap load_heatmap(const std::filesystem::path& path) {
  at::Tensor t = data::load_npy(path).to(at::kFloat);
  if (t.dim() == 3) t = t.select(0, 0);
  DAUG_CHECK_AS(DataError, t.dim() == 2 && t.numel() > 0, path.string(),
                ": a heatmap must be [H,W] or [C,H,W], but the file holds shape ", t.sizes());
  t = t.contiguous();
  LoadedHeatmap r;
  r.nonfinite = t.numel() - at::isfinite(t).sum().item<int64_t>();
  r.map = Map{t.size(0), t.size(1), std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())};
  return r;
}

Mask load_mask(const std::filesystem::path& path) {
  at::Tensor t = data::load_npy(path);
  if (t.dim() == 3 && t.size(0) == 1) t = t.select(0, 0);
  DAUG_CHECK_AS(DataError, t.dim() == 2 && t.numel() > 0, path.string(),
                ": a mask must be [H,W] or [1,H,W] (nonzero = finding), but the file holds shape ", t.sizes());
  t = t.ne(0).to(at::kByte).contiguous();
  return {t.size(0), t.size(1), std::vector<uint8_t>(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel())};
}

}  // namespace daug::loc
