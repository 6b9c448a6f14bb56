// The contrastive scale of the CLIP losses (see clip_scale.h).
#include "clip_scale.h"

#include <daug/error.h>

#include <ATen/ATen.h>

#include <cmath>

namespace daug::clip {

const Choices<ScaleMode> kScaleModes = choices<ScaleMode>({{"fixed", ScaleMode::fixed}, {"backbone", ScaleMode::backbone}});

at::Tensor contrastive_scale(ScaleMode mode, double fixed_log_scale, const at::Tensor& backbone_log_scale,
                             const at::Tensor& like) {
  if (mode == ScaleMode::fixed) return at::scalar_tensor(std::exp(fixed_log_scale), like.options());
  DAUG_CHECK(backbone_log_scale.defined() && backbone_log_scale.numel() == 1,
             "scale = \"backbone\" needs the backbone's scalar logit scale, but got ",
             backbone_log_scale.defined() ? backbone_log_scale.sizes() : at::IntArrayRef{});
  return backbone_log_scale.reshape({}).to(like.device(), like.scalar_type()).clamp_max(std::log(100.0)).exp();
}

}  // namespace daug::clip
