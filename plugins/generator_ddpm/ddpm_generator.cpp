// generator_ddpm: the ADM UNet + guided-diffusion sampler as a daug::Generator (REFERENCE.md §1.2, §2.3, §3).
#include "ddpm_generator.h"

#include <daug/adm/translate.h>
#include <daug/batch_part.h>

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/guidance.h>
#include <daug/int_range.h>
#include <daug/log.h>
#include <daug/register.h>

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace daug::plugins {

namespace {

std::string shape_str(at::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

void DdpmGeneratorOptions::visit(OptionVisitor& v) {
  v("preset", preset, "UNet preset: tiny (32², CPU tests), wolleb256, daug512 (the released DAug model)",
    Check::choice({"tiny", "wolleb256", "daug512"}));
  v("image_size", image_size, "override the preset's image size (unset = preset)", Check::at_least(1));
  v("in_channels", in_channels, "override the image channels (unset = preset; DAug/Wolleb CXR: 1)", Check::at_least(1));
  v("num_channels", num_channels, "override the base channel count (unset = preset; released: 128)",
    Check::at_least(1));
  v("num_res_blocks", num_res_blocks, "override ResBlocks per level (unset = preset; released: 2)", Check::at_least(1));
  v("channel_mult", channel_mult, "override the per-level channel multipliers ([] = preset; released 1,1,2,2,4,4)");
  v("attention_resolutions", attention_resolutions,
    "override the feature-map resolutions with attention, as the script flag ([] = preset; released [16])");
  v("num_heads", num_heads, "override attention heads (unset = preset; released 1)", Check::at_least(1));
  v("num_head_channels", num_head_channels,
    "override channels per head (unset = preset, -1 = use num_heads; released -1)", Check::at_least(-1));
  v("dropout", dropout, "dropout in ResBlocks (released 0)", Check::range(0, 0.99));
  v("use_scale_shift_norm", use_scale_shift_norm, "FiLM-style ResBlock conditioning (unset = preset; released false)");
  v("resblock_updown", resblock_updown, "ResBlocks for up/down-sampling (unset = preset; released false)");
  v("use_new_attention_order", use_new_attention_order,
    "QKVAttention (q|k|v first) instead of QKVAttentionLegacy (unset = preset; released false)");
  v("num_classes", num_classes,
    "class-conditional UNet with this many classes (unset = preset, 0 = unconditional; released 2, y = 1 healthy)",
    Check::at_least(0));
  v("learn_sigma", learn_sigma, "the UNet also predicts the variance interpolant v (2C outputs; released true)");
  v("variance", variance,
    "reverse variance: auto (learned_range with learn_sigma, else fixed_large), learned_range, fixed_large, "
    "fixed_small",
    Check::choice({"auto", "learned_range", "fixed_large", "fixed_small"}));
  v("diffusion_steps", diffusion_steps, "T of the training schedule (released 1000)", Check::at_least(2));
  v("noise_schedule", noise_schedule, "beta schedule", Check::choice({"linear", "cosine"}));
  v("timestep_respacing", timestep_respacing,
    "sampling steps, guided-diffusion space_timesteps syntax: \"\" (all T), \"ddimN\", \"N\" or \"a,b,c\" "
    "(released ddim1000; ddim100 is ~10x cheaper). The noise level must be one of the kept timesteps",
    Check::sampling_only());
  v("clip_denoised", clip_denoised, "clamp x̂0 to [-1, 1] while sampling (released true)", Check::sampling_only());
  v("eta", eta, "DDIM η (0 = deterministic, released)", Check::range(0, 1).for_sampling());
  v("exact_index_pattern", exact_index_pattern,
    "reproduce the released code's index pattern: q_sample(x0, 0), encode 1..J-1, decode J-2..0 (DDIM) or "
    "q_sample to J-1 then p_sample J-1..0 (DDPM). false: encode 0..J-1, decode J..1 (DDIM; exact inverse "
    "levels), q_sample to J then p_sample J..0 (DDPM)", Check::sampling_only());
  v("compute_dtype", compute_dtype,
    "removed: the precision of sampling and training is [run].precision (or a stage's `precision`: "
    "fp32 | bf16 | fp16); any value here is an error that says so",
    Check::sampling_only());
  v("gradient_checkpointing", gradient_checkpointing,
    "training: recompute each UNet block in backward instead of keeping its activations (same gradients up to "
    "float32 summation order; less memory, about one more forward per step). No effect on sampling");
  v("memory_format", memory_format,
    "UNet activations: contiguous (NCHW) or channels_last (NHWC; other conv kernels, results differ in the last "
    "bits; slower on Debian's 1.13 CPU build, can be faster on CUDA/AVX512)",
    Check::choice({"contiguous", "channels_last"}));
  v("concurrent_guidance", concurrent_guidance,
    "run the guidance gradient of each guided step on a second thread while the UNet forward runs (both depend "
    "only on x_t); same heatmaps. Faster on CPU when one op cannot use all cores (tests/bench/README.md)",
    Check::sampling_only().for_runtime());
  v("guidance_threads", guidance_threads,
    "intra-op threads of the guidance thread with concurrent_guidance; the UNet keeps run.threads minus these "
    "(at least 1, so with run.threads = 1 two threads run)",
    Check::at_least(1).for_sampling().for_runtime());
}

DdpmGenerator::DdpmGenerator(Options opts, const std::string& device, const std::string& table)
    : opts_(std::move(opts)), device_(device) {
  const std::string where = "[" + table + "] (ddpm)";
  check_options(opts_, where);
  adm::UNetConfig c = adm::unet_preset(opts_.preset);
  c.image_size = opts_.image_size.value_or(c.image_size);
  c.in_channels = opts_.in_channels.value_or(c.in_channels);
  c.model_channels = opts_.num_channels.value_or(c.model_channels);
  c.num_res_blocks = opts_.num_res_blocks.value_or(c.num_res_blocks);
  if (!opts_.channel_mult.empty()) c.channel_mult = opts_.channel_mult;
  if (!opts_.attention_resolutions.empty()) c.attention_resolutions = opts_.attention_resolutions;
  c.num_heads = opts_.num_heads.value_or(c.num_heads);
  c.num_head_channels = opts_.num_head_channels.value_or(c.num_head_channels);
  c.dropout = opts_.dropout;
  c.use_scale_shift_norm = opts_.use_scale_shift_norm.value_or(c.use_scale_shift_norm);
  c.resblock_updown = opts_.resblock_updown.value_or(c.resblock_updown);
  c.use_new_attention_order = opts_.use_new_attention_order.value_or(c.use_new_attention_order);
  c.num_classes = opts_.num_classes.value_or(c.num_classes);
  c.out_channels = opts_.learn_sigma ? 2 * c.in_channels : c.in_channels;
  c.validate(where, false);

  adm::VarianceType vt;
  if (opts_.variance == "auto") {
    vt = opts_.learn_sigma ? adm::VarianceType::learned_range : adm::VarianceType::fixed_large;
  } else {
    vt = adm::parse_variance_type(opts_.variance);
    DAUG_CHECK_AS(ConfigError, (vt == adm::VarianceType::learned_range) == opts_.learn_sigma,
                  where, ": variance = \"", opts_.variance, "\" needs learn_sigma = ",
                  opts_.learn_sigma ? "false" : "true", ", but learn_sigma = ", opts_.learn_sigma ? "true" : "false");
  }
  const auto betas = adm::beta_schedule(opts_.noise_schedule, opts_.diffusion_steps);
  base_ = std::make_unique<adm::GaussianDiffusion>(betas, std::vector<int64_t>{}, vt);
  sampler_ = std::make_unique<adm::GaussianDiffusion>(
      betas, adm::space_timesteps(opts_.diffusion_steps, opts_.timestep_respacing), vt);
  unet_ = std::make_unique<adm::UNetModel>(c, device_);
  unet_->set_gradient_checkpointing(opts_.gradient_checkpointing);
  if (opts_.memory_format == "channels_last") unet_->set_memory_format(at::MemoryFormat::ChannelsLast);
}

std::shared_ptr<Generator> DdpmGenerator::create(Options opts, BuildContext& ctx) {
  // The generator's own dtype switch became the run-wide precision (autocast around the stage's calls), which also
  // covers training and the guidance classifier.
  if (!opts.compute_dtype.empty()) {
    const std::string p = opts.compute_dtype == "float16" ? "fp16" : opts.compute_dtype == "bfloat16" ? "bf16" : "fp32";
    throw ConfigError(fmt::format(
        "{} = \"{}\": the option was replaced by [run].precision (or `precision` in the [heatmaps] / training "
        "stage's table); remove it and set precision = \"{}\" there",
        ctx.where("compute_dtype"), opts.compute_dtype, p));
  }
  return std::make_shared<DdpmGenerator>(std::move(opts), ctx.device(), ctx.table_or("generator"));
}

std::string DdpmGenerator::describe() const {
  const auto& c = unet_->config();
  return fmt::format(
      "ddpm(preset={}, image={}x{}x{}, channels={}, classes={}, params={}, T={}, schedule={}, respacing='{}' ({} "
      "steps), learn_sigma={}, clip_denoised={}, eta={}, exact_index_pattern={})",
      opts_.preset, c.in_channels, c.image_size, c.image_size, c.model_channels, c.num_classes, unet_->num_parameters(),
      opts_.diffusion_steps, opts_.noise_schedule, opts_.timestep_respacing, sampler_->num_steps(), opts_.learn_sigma,
      opts_.clip_denoised, opts_.eta, opts_.exact_index_pattern);
}

std::vector<int64_t> DdpmGenerator::image_shape() const {
  const auto& c = unet_->config();
  return {c.in_channels, c.image_size, c.image_size};
}

void DdpmGenerator::check_image(const at::Tensor& x, const char* what) const {
  const auto want = image_shape();
  DAUG_CHECK_AS(DataError,
                x.defined() && x.dim() == 4 && x.size(1) == want[0] && x.size(2) == want[1] && x.size(3) == want[2],
                "ddpm ", what, ": images must be [N, ", want[0], ", ", want[1], ", ", want[2],
                "] (in_channels, image_size, image_size of the configured UNet), but got ",
                x.defined() ? shape_str(x.sizes()) : std::string("an undefined tensor"));
}

at::Tensor DdpmGenerator::labels_for(const at::Tensor& label, int64_t n, const char* what) const {
  const int64_t k = unet_->config().num_classes;
  if (k == 0) {
    DAUG_CHECK(!label.defined(), "ddpm ", what, ": the UNet is unconditional (num_classes = 0), but a label was given");
    return {};
  }
  DAUG_CHECK(label.defined() && label.dim() == 1 && label.size(0) == n, "ddpm ", what,
             ": the UNet is class-conditional (num_classes = ", k, "), so label must be [", n, "] int64, but got ",
             label.defined() ? shape_str(label.sizes()) : std::string("none"));
  // Checked before the upload: free for host labels (train_diffusion passes them every step); labels already on a
  // device are read back once per call.
  const IntRange r = int_range(label);
  DAUG_CHECK(r.within(0, k - 1), "ddpm ", what, ": labels must be in [0, ", k - 1, "], but got values in [", r.min,
             ", ", r.max, "]");
  return label.to(device_, at::kLong, /*non_blocking=*/true);
}

// The UNet's output is cast to float32 (a no-op in fp32): under autocast its last convolution returns bf16/fp16,
// and the diffusion arithmetic on it must run in float32.
at::Tensor DdpmGenerator::model_output(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const {
  return unet_->forward(x, t, y).to(at::kFloat);
}

at::Tensor DdpmGenerator::q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) {
  DAUG_CHECK(t.dim() == 1 && t.size(0) == x0.size(0), "ddpm q_sample: t must be [", x0.size(0), "], but got ",
             shape_str(t.sizes()));
  // Free for host timesteps (train_classifier draws them on the host every step); once per call on a device.
  const IntRange r = int_range(t);
  DAUG_CHECK(r.within(0, opts_.diffusion_steps - 1), "ddpm q_sample: timesteps must be in [0, ",
             opts_.diffusion_steps - 1, "], but got values in [", r.min, ", ", r.max, "]");
  return base_->q_sample(x0, t, noise);
}

at::Tensor DdpmGenerator::training_loss(const at::Tensor& x0_in, const at::Tensor& label) {
  check_image(x0_in, "training_loss");
  at::Tensor x0 = x0_in.to(device_, at::kFloat);
  const int64_t n = x0.size(0);
  at::Tensor y = labels_for(label, n, "training_loss");
  // Per-item draws of the trainer's whole batch (daug/batch_part.h): the same t and noise per image however the
  // batch is split over ranks and micro-batches; exactly at::randint / at::randn_like outside a split.
  at::Tensor t = randint_part(0, opts_.diffusion_steps, n, at::TensorOptions().dtype(at::kLong).device(device_));
  at::Tensor noise = randn_like_part(x0);
  adm::ModelFn model = [&](const at::Tensor& x, const at::Tensor& tt) {
    return unet_->forward(x, tt, y).to(at::kFloat);
  };
  return base_->training_losses(model, x0, t, noise).loss.mean();
}

at::Tensor DdpmGenerator::translate(const TranslateRequest& req) {
  check_image(req.x0, "translate");
  adm::TranslateOptions schedule;
  schedule.encode = req.encode;
  schedule.pattern = opts_.exact_index_pattern ? adm::IndexPattern::released : adm::IndexPattern::matched;
  schedule.clip_denoised = opts_.clip_denoised;
  schedule.eta = opts_.eta;
  schedule.what = "ddpm translate";
  schedule.respacing = opts_.timestep_respacing;
  schedule.concurrent_guidance = opts_.concurrent_guidance;
  schedule.guidance_threads = opts_.guidance_threads;
  adm::noise_level_index(*sampler_, req.noise_level, schedule);  // a bad noise level fails before any compute
  at::NoGradGuard no_grad;
  at::Tensor x0 = req.x0.to(device_, at::kFloat);
  const int64_t n = x0.size(0);
  at::Tensor y = labels_for(req.label, n, "translate");
  adm::ModelFn model = [&](const at::Tensor& x, const at::Tensor& t) { return unet_->forward(x, t, y).to(at::kFloat); };
  adm::GradFn grad;
  at::Tensor target;
  if (req.guidance) {
    DAUG_CHECK(req.target.defined() && req.target.dim() == 1 && req.target.size(0) == n,
               "ddpm translate: guidance needs target [", n, "] int64, but got ",
               req.target.defined() ? shape_str(req.target.sizes()) : std::string("none"));
    DAUG_CHECK(req.direction == 1 || req.direction == -1, "ddpm translate: direction must be +1 or -1, but got ",
               req.direction);
    target = req.target.to(device_, at::kLong);
    grad = [&](const at::Tensor& x, const at::Tensor& t) {
      GuidanceInput in{x, t, target, req.direction};
      return req.guidance->gradient(in);
    };
  }
  at::Tensor x = adm::translate(*sampler_, model, x0, req.noise_level, req.guidance ? &grad : nullptr, schedule);
  return x.to(req.x0.device(), req.x0.scalar_type());
}

void DdpmGenerator::load_state(const NamedTensors& state) {
  copy_state_checked(unet_->named_parameters(), state, "ddpm generator (" + opts_.preset + ")");
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Generator, "ddpm", daug::plugins::DdpmGenerator,
                     "ADM UNet + guided-diffusion DDPM/DDIM (DAug/Wolleb heatmap generator; respacing, DDIM "
                     "inversion, classifier guidance)")
