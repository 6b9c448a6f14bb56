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
    "learned logit scale (clamped to <= ln 100)", clip::kScaleModes);
  v("logit_scale", logit_scale, "log of the fixed contrastive scale (released 4.602 → s = 99.7)");
}

ClipCriterion::ClipCriterion(Options opts) : opts_(std::move(opts)) {}

std::shared_ptr<Criterion> ClipCriterion::create(Options opts, BuildContext&) {
  return std::make_shared<ClipCriterion>(std::move(opts));
}

CriterionOutput ClipCriterion::compute(const CriterionInput& in) {
  auto s = clip::contrastive_scale(opts_.scale, opts_.logit_scale, in.logit_scale, in.image_emb);
  auto loss = clip::clip_loss(in.image_emb, in.text_emb, s);
  return {loss, {{"clip", loss.detach()}}};
}

std::string ClipCriterion::describe() const {
  return opts_.scale == clip::ScaleMode::fixed ? fmt::format("clip(scale=fixed, logit_scale={})", opts_.logit_scale)
                                : std::string("clip(scale=backbone)");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Criterion, "clip", daug::plugins::ClipCriterion,
                     "symmetric CLIP contrastive loss over report/image pairs, fixed or learned scale")
