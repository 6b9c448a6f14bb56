#pragma once
/// `clip` Criterion: the symmetric InfoNCE loss of CLIP, ½[CE(s·T·Iᵀ, arange) + CE(s·I·Tᵀ, arange)]
/// (Radford et al. 2021; open_clip loss.py; drjinying/DAug daug/model.py). s = exp(logit_scale), fixed at
/// exp(4.602) ≈ 99.7 by default as released, or the backbone's (learned) logit scale.
#include "clip_scale.h"

#include <daug/criterion.h>
#include <daug/options.h>

#include <memory>
#include <string>

namespace daug {
class BuildContext;
}

namespace daug::plugins {

struct ClipCriterionOptions {
  /// "fixed": s = exp(logit_scale) (released: 4.602, not learned); "backbone": s = exp(min(backbone's log
  /// scale, ln 100)), learned if the backbone's parameter requires grad.
  clip::ScaleMode scale = clip::ScaleMode::fixed;
  double logit_scale = 4.602;
  void visit(OptionVisitor& v);
};

class ClipCriterion final : public Criterion {
 public:
  using Options = ClipCriterionOptions;
  explicit ClipCriterion(Options opts);
  static std::shared_ptr<Criterion> create(Options opts, BuildContext& ctx);
  CriterionOutput compute(const CriterionInput& in) override;
  std::string describe() const override;

 private:
  Options opts_;
};

}  // namespace daug::plugins
