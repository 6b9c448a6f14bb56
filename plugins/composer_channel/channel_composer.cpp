#include "channel_composer.h"

#include "clip_common.h"

#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

namespace daug::plugins {

void ChannelComposerOptions::visit(OptionVisitor& v) {
  v("channels", channels,
    "image channel replaced by each heatmap, in map order: [0] released code, [2] paper, [] plain image "
    "(baseline); several entries take several heatmaps",
    Check::range(0, 2));
  v("quantize", quantize, "min-max and uint8-truncate each (already resized) heatmap here; false (default) when the "
    "stage already did it at the native size (train_clip/evaluate heatmap_prep = \"released\")");
}

ChannelComposer::ChannelComposer(Options opts, const std::string& table) : opts_(std::move(opts)) {
  check_options(opts_, "[" + table + "]");  // entries in [0, 2]
  std::set<int64_t> seen;
  for (auto c : opts_.channels)
    DAUG_CHECK_AS(ConfigError, seen.insert(c).second, "[", table, "].channels must not repeat a channel, but ", c,
                  " appears twice in ", fmt::format("{}", opts_.channels));
}

std::shared_ptr<HeatmapComposer> ChannelComposer::create(Options opts, BuildContext& ctx) {
  return std::make_shared<ChannelComposer>(std::move(opts), ctx.table_or("composer"));
}

at::Tensor ChannelComposer::compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) {
  DAUG_CHECK(image.dim() == 4 && image.size(1) == 3,
             "channel composer: image must be CLIP pixels [N,3,H,W], but got shape ", image.sizes());
  DAUG_CHECK(maps.size() == opts_.channels.size(), "channel composer (channels=",
             fmt::format("{}", opts_.channels), ") expects ", opts_.channels.size(), " heatmap(s), but got ",
             maps.size());
  if (maps.empty()) return image.clone();
  auto out = image.clone();
  for (size_t j = 0; j < maps.size(); ++j) {
    const auto& m = maps[j];
    DAUG_CHECK(m.dim() == 4 && m.size(0) == image.size(0) && m.size(2) == image.size(2) &&
                   m.size(3) == image.size(3),
               "channel composer: heatmap ", j, " must be [N,c,H,W] = [", image.size(0), ",c,", image.size(2), ",",
               image.size(3), "] like the image ", image.sizes(), ", but got ", m.sizes());
    auto h = m.narrow(1, 0, 1).to(image.device(), at::kFloat);
    if (opts_.quantize) h = clip::minmax_uint8(h);
    const auto c = opts_.channels[j];
    auto norm = (h.squeeze(1) - clip::kClipMean[c]) / clip::kClipStd[c];
    out.select(1, c).copy_(norm.to(out.dtype()));
  }
  return out;
}

std::string ChannelComposer::describe() const {
  return fmt::format("channel(channels={}, quantize={})", opts_.channels, opts_.quantize);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::HeatmapComposer, "channel", daug::plugins::ChannelComposer,
                     "puts min-max/uint8 heatmaps, CLIP-normalised, into chosen channels of the CLIP input (DAug)")
