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
    Check::choice({"fixed", "backbone"}));
  v("logit_scale", logit_scale, "log of the fixed CLIP-term scale (released 4.602)");
  v("class_scale", class_scale, "image-to-class scale: \"fixed\" = exp(class_logit_scale) (released) or \"backbone\"",
    Check::choice({"fixed", "backbone"}));
  v("class_logit_scale", class_logit_scale, "log of the fixed image-to-class scale s_c (released 4.602 → 99.7)");
}

namespace {
at::Tensor scale_of(const std::string& mode, double fixed, const at::Tensor& backbone, const at::Tensor& like) {
  if (mode == "fixed") return at::scalar_tensor(std::exp(fixed), like.options());
  DAUG_CHECK(backbone.defined() && backbone.numel() == 1,
             "scale = \"backbone\" needs the backbone's scalar logit scale");
  return backbone.reshape({}).to(like.device(), like.scalar_type()).clamp_max(std::log(100.0)).exp();
}
}  // namespace

HybridCriterion::HybridCriterion(Options opts) : opts_(std::move(opts)) {
  DAUG_CHECK_AS(ConfigError, opts_.w >= 0 && opts_.w <= 1, "[criterion].w must be in [0, 1], but got ", opts_.w);
  for (const auto* s : {&opts_.scale, &opts_.class_scale})
    DAUG_CHECK_AS(ConfigError, *s == "fixed" || *s == "backbone",
                  "[criterion] scale/class_scale must be \"fixed\" or \"backbone\", but got \"", *s, "\"");
}

std::shared_ptr<Criterion> HybridCriterion::create(Options opts, BuildContext&) {
  return std::make_shared<HybridCriterion>(std::move(opts));
}

CriterionOutput HybridCriterion::compute(const CriterionInput& in) {
  DAUG_CHECK(in.class_emb.defined(),
             "the hybrid criterion needs class-prompt embeddings (needs_class_embeddings() is true), but got none");
  auto s = scale_of(opts_.scale, opts_.logit_scale, in.logit_scale, in.image_emb);
  auto sc = scale_of(opts_.class_scale, opts_.class_logit_scale, in.logit_scale, in.image_emb);
  auto l_clip = clip::clip_loss(in.image_emb, in.text_emb, s);
  auto l_cls = clip::class_bce_loss(in.image_emb, in.class_emb, in.labels, sc);
  auto loss = opts_.w * l_clip + (1.0 - opts_.w) * l_cls;
  return {loss, {{"clip", l_clip.item<double>()}, {"i2c_bce", l_cls.item<double>()}}};
}

std::string HybridCriterion::describe() const {
  return fmt::format("hybrid(w={}, scale={}, class_scale={})", opts_.w,
                     opts_.scale == "fixed" ? fmt::format("exp({})", opts_.logit_scale) : "backbone",
                     opts_.class_scale == "fixed" ? fmt::format("exp({})", opts_.class_logit_scale) : "backbone");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Criterion, "hybrid", daug::plugins::HybridCriterion,
                     "DAug hybrid loss: w·CLIP + (1−w)·BCEWithLogits(s·cos(image, class prompt), label)")
