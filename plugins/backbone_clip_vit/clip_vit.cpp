// The `clip_vit` backbone plugin; see clip_vit.h and README.md.
#include "clip_vit.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/int_range.h>
#include <daug/log.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#ifndef DAUG_CLIP_VOCAB_SOURCE
#define DAUG_CLIP_VOCAB_SOURCE ""
#endif
#ifndef DAUG_CLIP_VOCAB_INSTALL
#define DAUG_CLIP_VOCAB_INSTALL ""
#endif

namespace daug::plugins::clip {

namespace {
constexpr double kMaxLogitScale = 4.605170185988092;  // ln 100

ClipArch arch_from(const ClipVitOptions& o) {
  ClipArch a = clip_preset(o.preset);
  DAUG_CHECK_AS(ConfigError, o.image_size % a.patch_size == 0, "[backbone].image_size must be a multiple of the ",
                o.preset, " patch size ", a.patch_size, ", but got ", o.image_size);
  a.image_size = o.image_size;
  a.context_length = o.context_length;
  return a;
}
}  // namespace

std::string ClipVit::resolve_vocab(const std::string& configured) {
  if (!configured.empty()) {
    DAUG_CHECK_AS(DataError, std::filesystem::is_regular_file(configured), "[backbone].vocab: CLIP BPE file '",
                  configured, "' does not exist");
    return configured;
  }
  for (const char* p : {DAUG_CLIP_VOCAB_SOURCE, DAUG_CLIP_VOCAB_INSTALL})
    if (*p && std::filesystem::is_regular_file(p)) return p;
  throw DataError(fmt::format(
      "the shipped CLIP BPE vocabulary was not found at '{}' nor at '{}'; set [backbone].vocab to a copy of "
      "bpe_simple_vocab_16e6.txt.gz",
      DAUG_CLIP_VOCAB_SOURCE, DAUG_CLIP_VOCAB_INSTALL));
}

ClipVit::ClipVit(Options opts, const std::string& device) : opts_(std::move(opts)), device_(c10::kCPU) {
  check_options(opts_, "[backbone] (clip_vit)");
  try {
    device_ = c10::Device(device);
  } catch (const std::exception&) {
    throw ConfigError("clip_vit: device must be like cpu, cuda or cuda:1, but got '" + device + "'");
  }
  parse_pos_interp(opts_.pos_interpolation);
  parse_weights_format(opts_.weights_format);
  vocab_path_ = resolve_vocab(opts_.vocab);
  model_ = ClipModel(arch_from(opts_));
  model_->initialize(opts_.logit_scale);
  model_->logit_scale.set_requires_grad(opts_.learn_logit_scale);
  if (!opts_.weights.empty()) load_weights(opts_.weights);
  model_->to(device_);
}

std::shared_ptr<daug::Backbone> ClipVit::create(Options opts, daug::BuildContext& ctx) {
  return std::make_shared<ClipVit>(std::move(opts), ctx.device());
}

at::Tensor ClipVit::encode_image(const at::Tensor& pixels) {
  const int64_t S = image_size();
  DAUG_CHECK_AS(DataError,
                pixels.defined() && pixels.dim() == 4 && pixels.size(1) == model_->arch.in_channels &&
                    pixels.size(2) == S && pixels.size(3) == S,
                "clip_vit.encode_image expects pixels [N,", model_->arch.in_channels, ",", S, ",", S,
                "], but got ", pixels.defined() ? pixels.sizes() : c10::IntArrayRef{});
  DAUG_CHECK_AS(DataError, at::isFloatingType(pixels.scalar_type()),
                "clip_vit.encode_image expects floating-point pixels, but got ", pixels.scalar_type());
  const auto dtype = model_->visual->proj.scalar_type();
  return model_->encode_image(pixels.to(device_, dtype));
}

at::Tensor ClipVit::encode_text(const at::Tensor& tokens) {
  DAUG_CHECK_AS(DataError, tokens.defined() && tokens.dim() == 2 && tokens.size(1) >= 1 &&
                               tokens.size(1) <= context_length(),
                "clip_vit.encode_text expects token ids [N,L] with 1 <= L <= ", context_length(), ", but got ",
                tokens.defined() ? tokens.sizes() : c10::IntArrayRef{});
  DAUG_CHECK_AS(DataError, at::isIntegralType(tokens.scalar_type(), /*includeBool=*/false),
                "clip_vit.encode_text expects integer token ids, but got ", tokens.scalar_type());
  // Checked before the upload: free for host tokens (what tokenize() returns; train_clip passes them every step),
  // one read-back for tokens already on a device.
  const IntRange r = int_range(tokens);
  DAUG_CHECK_AS(DataError, r.within(0, model_->arch.vocab_size - 1), "clip_vit.encode_text: token ids must be in [0, ",
                model_->arch.vocab_size, "), but got values in [", r.min, ", ", r.max, "]");
  at::Tensor ids = tokens.to(device_, at::kLong, /*non_blocking=*/true);
  return model_->encode_text(ids, opts_.text_pooling == "first_eot" ? TextPooling::first_eot : TextPooling::argmax);
}

const ClipTokenizer& ClipVit::tokenizer() {
  std::lock_guard<std::mutex> lock(tok_mutex_);
  if (!tokenizer_)
    tokenizer_ = std::make_unique<ClipTokenizer>(
        vocab_path_, opts_.text_cleaning == "openai" ? ClipTokenizer::Cleaning::openai : ClipTokenizer::Cleaning::hf);
  return *tokenizer_;
}

at::Tensor ClipVit::tokenize(const std::vector<std::string>& texts) {
  TokenizeOptions t;
  t.context_length = context_length();
  t.pad_longest = opts_.padding == "longest";
  t.pad_id = opts_.pad_token == "eot" ? ClipTokenizer::kEndOfText : 0;
  t.truncate = opts_.truncate;
  int64_t L = 0;
  std::vector<int64_t> ids = tokenize_batch(tokenizer(), texts, t, &L);
  return at::tensor(ids, at::kLong).reshape({static_cast<int64_t>(texts.size()), L});
}

at::Tensor ClipVit::logit_scale() {
  if (!opts_.learn_logit_scale) return model_->logit_scale.detach();
  return at::clamp(model_->logit_scale, 0.0, kMaxLogitScale);
}

void ClipVit::clamp_logit_scale() {
  at::NoGradGuard ng;
  model_->logit_scale.clamp_(0.0, kMaxLogitScale);
}

void ClipVit::load_weights(const std::string& path) {
  WeightsFormat used = WeightsFormat::automatic;
  NamedTensors src = read_clip_weights(path, parse_weights_format(opts_.weights_format), &used);
  load_openai_state(model_, std::move(src), path, parse_pos_interp(opts_.pos_interpolation),
                    opts_.logit_scale_from_weights);
  log::info("clip_vit: loaded {} weights from {}", weights_format_name(used), path);
}

std::vector<at::Tensor> ClipVit::parameters() {
  std::vector<at::Tensor> out;
  for (const auto& p : model_->named_parameters(true))
    if (p.value().requires_grad()) out.push_back(p.value());
  return out;
}

NamedTensors ClipVit::state() {
  NamedTensors out;
  for (const auto& p : model_->named_parameters(true)) out.emplace_back(p.key(), p.value());
  return out;
}

void ClipVit::load_state(const NamedTensors& state) { copy_state_checked(this->state(), state, "clip_vit.load_state"); }

void ClipVit::set_training(bool on) { model_->train(on); }

std::string ClipVit::describe() const {
  return fmt::format("clip_vit(preset={}, image_size={}, context_length={}, weights={}, logit_scale={})",
                     opts_.preset, model_->arch.image_size, model_->arch.context_length,
                     opts_.weights.empty() ? "random" : opts_.weights,
                     opts_.learn_logit_scale ? "learned" : "fixed");
}

}  // namespace daug::plugins::clip

DAUG_REGISTER_PLUGIN(daug::Backbone, "clip_vit", daug::plugins::clip::ClipVit,
                     "OpenAI CLIP ViT (image + text towers), exact BPE tokenizer, OpenAI/HF/daug weight loading")
