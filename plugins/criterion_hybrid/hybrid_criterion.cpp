#include "hybrid_criterion.h"

#include "clip_common.h"

#include <daug/build_context.h>
#include <daug/error.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

namespace daug::plugins {

void HybridCriterionOptions::visit(OptionVisitor& v) {
  v("w", w, "weight of the CLIP term; (1 − w) weights the image-to-class BCE (released: 0.7 cls, 0.8 retrieval)",
    Check::range(0, 1));
  v("scale", scale, "CLIP-term scale: \"fixed\" = exp(logit_scale) (released) or \"backbone\" (learned, <= 100)",
    clip::kScaleModes);
  v("logit_scale", logit_scale, "log of the fixed CLIP-term scale (released 4.602)");
  v("class_scale", class_scale, "image-to-class scale: \"fixed\" = exp(class_logit_scale) (released) or \"backbone\"",
    clip::kScaleModes);
  v("class_logit_scale", class_logit_scale, "log of the fixed image-to-class scale s_c (released 4.602 → 99.7)");
}

HybridCriterion::HybridCriterion(Options opts, const std::string& table) : opts_(std::move(opts)) {
  check_options(opts_, "[" + table + "]");
}

std::shared_ptr<Criterion> HybridCriterion::create(Options opts, BuildContext& ctx) {
  return std::make_shared<HybridCriterion>(std::move(opts), ctx.table_or("criterion"));
}

CriterionOutput HybridCriterion::compute(const CriterionInput& in) {
  DAUG_CHECK(in.class_emb.defined(),
             "the hybrid criterion needs class-prompt embeddings (needs_class_embeddings() is true), but got none");
  auto s = clip::contrastive_scale(opts_.scale, opts_.logit_scale, in.logit_scale, in.image_emb);
  auto sc = clip::contrastive_scale(opts_.class_scale, opts_.class_logit_scale, in.logit_scale, in.image_emb);
  auto l_clip = clip::clip_loss(in.image_emb, in.text_emb, s);
  auto l_cls = clip::class_bce_loss(in.image_emb, in.class_emb, in.labels, sc);
  auto loss = opts_.w * l_clip + (1.0 - opts_.w) * l_cls;
  return {loss, {{"clip", l_clip.detach()}, {"i2c_bce", l_cls.detach()}}};
}

std::string HybridCriterion::describe() const {
  return fmt::format("hybrid(w={}, scale={}, class_scale={})", opts_.w,
                     opts_.scale == clip::ScaleMode::fixed ? fmt::format("exp({})", opts_.logit_scale) : "backbone",
                     opts_.class_scale == clip::ScaleMode::fixed ? fmt::format("exp({})", opts_.class_logit_scale) : "backbone");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Criterion, "hybrid", daug::plugins::HybridCriterion,
                     "DAug hybrid loss: w·CLIP + (1−w)·BCEWithLogits(s·cos(image, class prompt), label)")
