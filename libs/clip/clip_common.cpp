#include "clip_common.h"

#include <daug/error.h>

#include <ATen/ATen.h>

#include <cmath>

namespace daug::clip {

const std::vector<std::string>& released_prompts() {
  static const std::vector<std::string> prompts = {
      "A chest-xray image of enlarged cardiomediastinum.",
      "A chest-xray image of cardiomegaly.",
      "A chest-xray image of lung opacity",
      "A chest-xray image of lung lesion.",
      "A chest-xray image of edema",
      "A chest-xray image of consolidation",
      "A chest-xray image of pneumonia",
      "A chest-xray image of atelectasis",
      "A chest-xray image of pneumothorax",
      "A chest-xray image of pleural effusion",
      "A chest-xray image of other pleural diseases",
      "A chest-xray image of rib fracture",
      "A chest-xray image of support devices",
      "A healthy chest-xray image with no findings.",
  };
  return prompts;
}

namespace {
at::Tensor resize_bicubic_aa(const at::Tensor& x4, int64_t size) {
  if (x4.size(2) == size && x4.size(3) == size) return x4;
  return at::_upsample_bicubic2d_aa(x4, {size, size}, /*align_corners=*/false);  // scales: default (none)
}
}  // namespace

at::Tensor preprocess_pixels(const at::Tensor& rgb, int64_t size) {
  DAUG_CHECK(rgb.dim() == 3 && (rgb.size(0) == 3 || rgb.size(0) == 1),
             "CLIP preprocessing expects an image [3,H,W] or [1,H,W] in [0,1], but got shape ", rgb.sizes());
  DAUG_CHECK(size > 0, "CLIP image size must be > 0, but got ", size);
  auto x = rgb.to(at::kFloat);
  if (x.size(0) == 1) x = x.expand({3, x.size(1), x.size(2)});
  x = resize_bicubic_aa(x.unsqueeze(0).contiguous(), size);
  // PIL returns uint8 after the resize: clamp and round to the 8-bit grid before rescaling by 1/255.
  x = (x.clamp(0.0, 1.0) * 255.0).round() / 255.0;
  auto mean = at::tensor(std::vector<float>(kClipMean.begin(), kClipMean.end()), x.options()).view({1, 3, 1, 1});
  auto std = at::tensor(std::vector<float>(kClipStd.begin(), kClipStd.end()), x.options()).view({1, 3, 1, 1});
  return ((x - mean) / std).squeeze(0);
}

at::Tensor resize_heatmap(const at::Tensor& heat, int64_t size) {
  at::Tensor h = heat;
  if (h.dim() == 3) h = h.select(0, 0);
  DAUG_CHECK(h.dim() == 2, "a heatmap must be [H,W], [1,H,W] or [C,H,W], but got shape ", heat.sizes());
  h = h.to(at::kFloat).contiguous();
  auto lo = h.min(), hi = h.max();
  auto r = resize_bicubic_aa(h.view({1, 1, h.size(0), h.size(1)}), size);
  r = at::max(at::min(r, hi), lo);  // bicubic overshoot clamped to the input's range (PIL-like)
  return r.squeeze(0);
}

at::Tensor quantize_resize_heatmap(const at::Tensor& heat, int64_t size) {
  at::Tensor h = heat;
  if (h.dim() == 3) h = h.select(0, 0);
  DAUG_CHECK(h.dim() == 2, "a heatmap must be [H,W], [1,H,W] or [C,H,W], but got shape ", heat.sizes());
  // Quantise first, at the native size, as the released loader; the resize then works on the 8-bit image.
  auto q = minmax_uint8(h.to(at::kFloat).contiguous().view({1, 1, h.size(0), h.size(1)})) * 255.0;
  auto r = resize_bicubic_aa(q, size);
  r = r.round().clamp(0.0, 255.0) / 255.0;  // PIL returns uint8
  return r.squeeze(0);
}

at::Tensor minmax_uint8(const at::Tensor& maps) {
  DAUG_CHECK(maps.dim() == 4, "minmax_uint8 expects maps [N,C,H,W], but got shape ", maps.sizes());
  auto flat = maps.to(at::kFloat).reshape({maps.size(0), -1});
  auto lo = std::get<0>(flat.min(1, true));
  auto hi = std::get<0>(flat.max(1, true));
  auto range = hi - lo;
  auto safe = at::where(range > 0, range, at::ones_like(range));
  auto n = at::where(range > 0, (flat - lo) / safe, at::zeros_like(flat));
  n = at::floor(n * 255.0) / 255.0;  // np.uint8(x*255) truncates
  return n.view(maps.sizes());
}

at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

at::Tensor clip_loss(const at::Tensor& image_emb, const at::Tensor& text_emb, const at::Tensor& scale) {
  DAUG_CHECK(image_emb.dim() == 2 && text_emb.sizes() == image_emb.sizes(),
             "clip loss needs image and text embeddings of the same shape [B,D], but got ", image_emb.sizes(),
             " and ", text_emb.sizes());
  const int64_t b = image_emb.size(0);
  auto logits_t2i = scale * text_emb.mm(image_emb.t());  // [B,B]: row = report, column = image
  auto target = at::arange(b, image_emb.options().dtype(at::kLong));
  auto l1 = at::cross_entropy_loss(logits_t2i, target);
  auto l2 = at::cross_entropy_loss(logits_t2i.t(), target);
  return 0.5 * (l1 + l2);
}

at::Tensor class_bce_loss(const at::Tensor& image_emb, const at::Tensor& class_emb, const at::Tensor& labels,
                          const at::Tensor& scale) {
  DAUG_CHECK(class_emb.defined() && class_emb.dim() == 2 && class_emb.size(1) == image_emb.size(1),
             "class embeddings must be [K,D] with D = ", image_emb.size(1), ", but got ",
             class_emb.defined() ? class_emb.sizes() : at::IntArrayRef{});
  DAUG_CHECK(labels.dim() == 2 && labels.size(0) == image_emb.size(0) && labels.size(1) == class_emb.size(0),
             "labels must be [B,K] = [", image_emb.size(0), ",", class_emb.size(0), "], but got ", labels.sizes());
  auto logits = scale * image_emb.mm(class_emb.t());
  return at::binary_cross_entropy_with_logits(logits, labels.to(logits.dtype()));
}

CriterionOutput grouped_criterion(Criterion& criterion, const CriterionInput& in, int64_t group) {
  const int64_t b = in.image_emb.size(0);
  if (group <= 0 || group == b) return criterion.compute(in);
  DAUG_CHECK(b % group == 0, "the contrastive batch of ", b, " rows is not a multiple of contrastive_group = ",
             group);
  const int64_t n = b / group;
  CriterionOutput out;
  for (int64_t g = 0; g < n; ++g) {
    const auto img = in.image_emb.narrow(0, g * group, group), txt = in.text_emb.narrow(0, g * group, group);
    const auto y = in.labels.defined() ? in.labels.narrow(0, g * group, group) : in.labels;
    auto part = criterion.compute({img, txt, in.class_emb, y, in.logit_scale});
    out.loss = g == 0 ? part.loss : out.loss + part.loss;
    // Parts are summed and averaged in float64 on the device (as the former host doubles), read by the trainer.
    if (g == 0) {
      out.parts = std::move(part.parts);
      for (auto& p : out.parts) p.second = p.second.detach().to(at::kDouble);
    } else {
      DAUG_CHECK(part.parts.size() == out.parts.size(), "criterion ", criterion.describe(),
                 " returned a different number of loss parts for group ", g);
      for (size_t i = 0; i < out.parts.size(); ++i)
        out.parts[i].second = out.parts[i].second + part.parts[i].second.detach().to(at::kDouble);
    }
  }
  out.loss = out.loss / static_cast<double>(n);
  for (auto& p : out.parts) p.second = p.second / static_cast<double>(n);
  return out;
}

at::Tensor labels_tensor(const std::vector<const std::vector<float>*>& labels, int64_t* nan_count) {
  DAUG_CHECK(!labels.empty(), "labels_tensor: no samples");
  const size_t k = labels.front()->size();
  auto out = at::zeros({static_cast<int64_t>(labels.size()), static_cast<int64_t>(k)}, at::kFloat);
  auto acc = out.accessor<float, 2>();
  int64_t nans = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    DAUG_CHECK_AS(DataError, labels[i]->size() == k, "sample ", i, " has ", labels[i]->size(),
                  " labels, but the first has ", k);
    for (size_t j = 0; j < k; ++j) {
      const float v = (*labels[i])[j];
      if (std::isnan(v)) {
        ++nans;
        continue;
      }
      acc[i][j] = v > 0.5f ? 1.f : 0.f;
    }
  }
  if (nan_count) *nan_count = nans;
  return out;
}

}  // namespace daug::clip
