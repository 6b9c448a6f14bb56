// composer_absdiff_minmax: |minmax(x) − minmax(x̂)| heatmaps (REFERENCE.md §1.2 "Heatmap", §2.3 "Anomaly map").
#include "absdiff_composer.h"

#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

namespace {
std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

/// Per-image min-max over H×W of [N,H,W]; constant images map to 0.
at::Tensor minmax(const at::Tensor& v) {
  at::Tensor flat = v.flatten(1);
  at::Tensor lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  at::Tensor range = hi - lo;
  at::Tensor out = at::where(range > 0, (flat - lo) / at::where(range > 0, range, at::ones_like(range)),
                             at::zeros_like(flat));
  return out.view_as(v);
}
}  // namespace

AbsdiffComposer::AbsdiffComposer(Options opts) : opts_(std::move(opts)) {
  check_options(opts_, "[composer] (absdiff_minmax)");
}

std::shared_ptr<HeatmapComposer> AbsdiffComposer::create(Options opts, BuildContext&) {
  return std::make_shared<AbsdiffComposer>(std::move(opts));
}

std::string AbsdiffComposer::describe() const { return fmt::format("absdiff_minmax(channels={})", opts_.channels); }

at::Tensor AbsdiffComposer::compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) {
  DAUG_CHECK(maps.size() == 1, "absdiff_minmax: expects exactly one map (the translated image x̂), but got ",
             maps.size());
  const at::Tensor& xhat = maps[0];
  DAUG_CHECK(image.defined() && image.dim() == 4, "absdiff_minmax: image must be [N,C,H,W], but got ",
             image.defined() ? shape_str(image.sizes()) : std::string("an undefined tensor"));
  DAUG_CHECK(xhat.defined() && xhat.dim() == 4 && xhat.size(0) == image.size(0) && xhat.size(2) == image.size(2) &&
                 xhat.size(3) == image.size(3),
             "absdiff_minmax: the translated image must be [N, c, H, W] with the input's N, H, W ",
             shape_str(image.sizes()), ", but got ",
             xhat.defined() ? shape_str(xhat.sizes()) : std::string("an undefined tensor"));
  DAUG_CHECK(opts_.channels != "sum" || xhat.size(1) == image.size(1), "absdiff_minmax: channels = \"sum\" needs "
             "the translated image to have the input's ", image.size(1), " channels, but it has ", xhat.size(1));
  at::Tensor x = image.to(at::kFloat);
  at::Tensor y = xhat.to(image.device(), at::kFloat);
  DAUG_CHECK_AS(DataError, at::isfinite(x).all().item<bool>() && at::isfinite(y).all().item<bool>(),
                "absdiff_minmax: NaN/Inf in the image or its translation");
  if (opts_.channels == "sum") return (x - y).abs().sum(1, /*keepdim=*/true);
  return (minmax(x.select(1, 0)) - minmax(y.select(1, 0))).abs().unsqueeze(1);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::HeatmapComposer, "absdiff_minmax", daug::plugins::AbsdiffComposer,
                     "|minmax(x) - minmax(x_hat)| abnormality heatmap (DAug/Wolleb), or the BraTS channel sum")
