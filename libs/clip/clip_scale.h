#pragma once
/// The contrastive scale s of the CLIP losses (criterion_clip, criterion_hybrid): a fixed exp(logit_scale) as
/// released, or the backbone's learned logit scale clamped to <= ln 100 (openai/CLIP model.py).
#include <daug/options.h>
#include <daug/tensor.h>

namespace daug::clip {

/// Where s comes from (TOML names "fixed" and "backbone").
enum class ScaleMode { fixed, backbone };
/// The TOML names of ScaleMode.
extern const Choices<ScaleMode> kScaleModes;

/// s = exp(fixed_log_scale) (fixed) or exp(min(backbone_log_scale, ln 100)) (backbone), a scalar on `like`'s
/// device (and, for the backbone, dtype). Throws if the backbone mode gets no scalar logit scale.
at::Tensor contrastive_scale(ScaleMode mode, double fixed_log_scale, const at::Tensor& backbone_log_scale,
                             const at::Tensor& like);

}  // namespace daug::clip
