// classifier_adm: guided-diffusion EncoderUNetModel as a daug::Classifier (REFERENCE.md §1.2, §2.2).
#include "adm_classifier.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/register.h>
#include <daug/source.h>

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace daug::plugins {

namespace {
std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }
}  // namespace

void AdmClassifierOptions::visit(OptionVisitor& v) {
  v("preset", preset, "EncoderUNet preset: tiny (32², CPU tests), wolleb256, daug512 (the released DAug classifier)",
    Check::choice({"tiny", "wolleb256", "daug512"}));
  v("data", data, "config table of the data Source whose super-classes are the K outputs (index 0 = No Finding)",
    Check::required_non_empty());
  v("image_size", image_size, "override the preset's image size (unset = preset)", Check::at_least(1));
  v("in_channels", in_channels, "override the image channels (unset = preset; CXR: 1)", Check::at_least(1));
  v("width", width, "override classifier_width, the base channels (unset = preset; released 32)", Check::at_least(1));
  v("depth", depth, "override classifier_depth, ResBlocks per level (unset = preset; released 4)", Check::at_least(1));
  v("channel_mult", channel_mult, "override per-level channel multipliers ([] = preset; released 1,1,2,2,4,4)");
  v("attention_resolutions", attention_resolutions,
    "override classifier_attention_resolutions ([] = preset; released [32, 16, 8])");
  v("num_head_channels", num_head_channels, "override channels per attention head (unset = preset; released 64)",
    Check::at_least(1));
  v("dropout", dropout, "dropout in ResBlocks (released 0)", Check::range(0, 0.99));
  v("pool", pool, "classifier_pool: attention (released) or adaptive (unset = preset)",
    Check::choice({"attention", "adaptive"}));
  v("use_scale_shift_norm", use_scale_shift_norm, "classifier_use_scale_shift_norm (unset = preset; released true)");
  v("resblock_updown", resblock_updown, "classifier_resblock_updown (unset = preset; released true)");
}

AdmClassifier::AdmClassifier(Options opts, std::vector<std::string> class_names, const std::string& device,
                             const std::string& table)
    : opts_(std::move(opts)), names_(std::move(class_names)), device_(device) {
  const std::string where = "[" + table + "] (adm_classifier)";
  check_options(opts_, where);
  DAUG_CHECK_AS(ConfigError, names_.size() >= 2, where,
                ": needs >= 2 output classes, but the super-class grouping has ", names_.size());
  adm::UNetConfig c = adm::encoder_preset(opts_.preset);
  c.image_size = opts_.image_size.value_or(c.image_size);
  c.in_channels = opts_.in_channels.value_or(c.in_channels);
  c.model_channels = opts_.width.value_or(c.model_channels);
  c.num_res_blocks = opts_.depth.value_or(c.num_res_blocks);
  if (!opts_.channel_mult.empty()) c.channel_mult = opts_.channel_mult;
  if (!opts_.attention_resolutions.empty()) c.attention_resolutions = opts_.attention_resolutions;
  c.num_head_channels = opts_.num_head_channels.value_or(c.num_head_channels);
  c.pool = opts_.pool.value_or(c.pool);
  c.dropout = opts_.dropout;
  c.use_scale_shift_norm = opts_.use_scale_shift_norm.value_or(c.use_scale_shift_norm);
  c.resblock_updown = opts_.resblock_updown.value_or(c.resblock_updown);
  c.out_channels = static_cast<int64_t>(names_.size());
  c.validate(where, true);
  net_ = std::make_unique<adm::EncoderUNetModel>(c, device_);
}

std::shared_ptr<Classifier> AdmClassifier::create(Options opts, BuildContext& ctx) {
  auto source = ctx.component<Source>(opts.data);
  const auto& groups = source->superclasses();
  return std::make_shared<AdmClassifier>(std::move(opts), groups.names, ctx.device(), ctx.table_or("classifier"));
}

std::string AdmClassifier::describe() const {
  const auto& c = net_->config();
  return fmt::format("adm_classifier(preset={}, image={}x{}x{}, width={}, depth={}, pool={}, classes=[{}], params={})",
                     opts_.preset, c.in_channels, c.image_size, c.image_size, c.model_channels, c.num_res_blocks,
                     c.pool, fmt::join(names_, ", "), net_->num_parameters());
}

at::Tensor AdmClassifier::logits(const at::Tensor& x_t, const at::Tensor& t) {
  const auto& c = net_->config();
  DAUG_CHECK_AS(DataError,
                x_t.defined() && x_t.dim() == 4 && x_t.size(1) == c.in_channels && x_t.size(2) == c.image_size &&
                    x_t.size(3) == c.image_size,
                "adm_classifier: x_t must be [N, ", c.in_channels, ", ", c.image_size, ", ", c.image_size,
                "], but got ", x_t.defined() ? shape_str(x_t.sizes()) : std::string("an undefined tensor"));
  DAUG_CHECK(t.defined() && t.dim() == 1 && t.size(0) == x_t.size(0), "adm_classifier: t must be [", x_t.size(0),
             "] (original timesteps), but got ", t.defined() ? shape_str(t.sizes()) : std::string("none"));
  at::Tensor x = x_t.device() == device_ ? x_t : x_t.to(device_);
  return net_->forward(x.to(at::kFloat), t.to(device_, at::kLong, /*non_blocking=*/true)).to(at::kFloat);
}

void AdmClassifier::load_state(const NamedTensors& state) {
  copy_state_checked(net_->named_parameters(), state, "adm_classifier (" + opts_.preset + ")");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Classifier, "adm_classifier", daug::plugins::AdmClassifier,
                     "guided-diffusion EncoderUNet noise-aware classifier over the data source's super-classes")
