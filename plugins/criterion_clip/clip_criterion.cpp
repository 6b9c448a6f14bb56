#include "clip_criterion.h"

#include "clip_common.h"

#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

namespace daug::plugins {

void ClipCriterionOptions::visit(OptionVisitor& v) {
  v("scale", scale, "where s comes from: \"fixed\" = exp(logit_scale) (released), \"backbone\" = the backbone's "
    "learned logit scale (clamped to <= ln 100)", Check::choice({"fixed", "backbone"}));
  v("logit_scale", logit_scale, "log of the fixed contrastive scale (released 4.602 → s = 99.7)");
}

at::Tensor contrastive_scale(const std::string& mode, double fixed_log_scale, const at::Tensor& backbone_log_scale,
                             const at::Tensor& like) {
  if (mode == "fixed") return at::scalar_tensor(std::exp(fixed_log_scale), like.options());
  DAUG_CHECK(backbone_log_scale.defined() && backbone_log_scale.numel() == 1,
             "scale = \"backbone\" needs the backbone's scalar logit scale, but got ",
             backbone_log_scale.defined() ? backbone_log_scale.sizes() : at::IntArrayRef{});
  return backbone_log_scale.reshape({}).to(like.device(), like.scalar_type()).clamp_max(std::log(100.0)).exp();
}

ClipCriterion::ClipCriterion(Options opts) : opts_(std::move(opts)) {
  DAUG_CHECK_AS(ConfigError, opts_.scale == "fixed" || opts_.scale == "backbone",
                "[criterion].scale must be \"fixed\" or \"backbone\", but got \"", opts_.scale, "\"");
}

std::shared_ptr<Criterion> ClipCriterion::create(Options opts, BuildContext&) {
  return std::make_shared<ClipCriterion>(std::move(opts));
}

CriterionOutput ClipCriterion::compute(const CriterionInput& in) {
  auto s = contrastive_scale(opts_.scale, opts_.logit_scale, in.logit_scale, in.image_emb);
  auto loss = clip::clip_loss(in.image_emb, in.text_emb, s);
  return {loss, {{"clip", loss.item<double>()}}};
}

std::string ClipCriterion::describe() const {
  return opts_.scale == "fixed" ? fmt::format("clip(scale=fixed, logit_scale={})", opts_.logit_scale)
                                : std::string("clip(scale=backbone)");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Criterion, "clip", daug::plugins::ClipCriterion,
                     "symmetric CLIP contrastive loss over report/image pairs, fixed or learned scale")
