#pragma once
// generator_ddpm: guided-diffusion's class-conditional ADM UNet + Gaussian diffusion as a daug::Generator.
// Declared in a header so tests can build it with explicit Options (no TOML). See README.md.
#include <daug/adm/diffusion.h>
#include <daug/adm/unet.h>
#include <daug/build_context.h>
#include <daug/generator.h>
#include <daug/options.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace daug::plugins {

/// Options of the `ddpm` generator. Defaults reproduce the released DAug diffusion model (REFERENCE.md §1.2):
/// preset daug512, T = 1000, linear schedule, learn_sigma (LEARNED_RANGE), 2 classes (y = 1 healthy), DDIM.
///
/// Example TOML:
///   [generator]
///   plugin = "ddpm"
///   preset = "tiny"
///   timestep_respacing = "ddim100"
struct DdpmGeneratorOptions {
  std::string preset = "daug512";
  // Per-field overrides of the preset (unset or empty = keep the preset's value).
  std::optional<int64_t> image_size;
  std::optional<int64_t> in_channels;
  std::optional<int64_t> num_channels;
  std::optional<int64_t> num_res_blocks;
  std::vector<double> channel_mult;
  std::vector<int64_t> attention_resolutions;
  std::optional<int64_t> num_heads;
  std::optional<int64_t> num_head_channels;
  double dropout = 0.0;
  std::optional<bool> use_scale_shift_norm;
  std::optional<bool> resblock_updown;
  std::optional<bool> use_new_attention_order;
  std::optional<int64_t> num_classes;
  bool learn_sigma = true;
  std::string variance = "auto";
  int64_t diffusion_steps = 1000;
  std::string noise_schedule = "linear";
  std::string timestep_respacing = "";
  bool clip_denoised = true;
  double eta = 0.0;
  bool exact_index_pattern = false;
  std::string compute_dtype;  ///< removed (an error naming [run].precision); "" = not set
  bool gradient_checkpointing = false;
  std::string memory_format = "contiguous";
  bool concurrent_guidance = false;
  int64_t guidance_threads = 1;

  void visit(daug::OptionVisitor& v);
};

class DdpmGenerator final : public daug::Generator {
 public:
  using Options = DdpmGeneratorOptions;

  /// Builds the UNet on `device` (weights from the global ATen generator; load a checkpoint for real use).
  /// `table`: the config table this generator is built from (error messages name it).
  DdpmGenerator(Options opts, const std::string& device, const std::string& table = "generator");
  static std::shared_ptr<daug::Generator> create(Options opts, daug::BuildContext& ctx);

  std::string describe() const override;
  int64_t num_timesteps() const override { return opts_.diffusion_steps; }
  std::vector<int64_t> image_shape() const override;
  at::Tensor q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) override;
  at::Tensor training_loss(const at::Tensor& x0, const at::Tensor& label) override;
  at::Tensor translate(const daug::TranslateRequest& request) override;

  std::vector<at::Tensor> parameters() override { return unet_->parameters(); }
  daug::NamedTensors state() override { return unet_->named_parameters(); }
  void load_state(const daug::NamedTensors& state) override;
  void set_training(bool on) override { unet_->set_training(on); }

  /// The resolved UNet configuration (preset + overrides).
  const adm::UNetConfig& unet_config() const { return unet_->config(); }
  /// The sampling process (respaced when timestep_respacing is set).
  const adm::GaussianDiffusion& sampler() const { return *sampler_; }
  /// Raw UNet output [N, C or 2C, H, W] for ORIGINAL timesteps t.
  at::Tensor model_output(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const;

 private:
  void check_image(const at::Tensor& x, const char* what) const;
  at::Tensor labels_for(const at::Tensor& label, int64_t n, const char* what) const;

  Options opts_;
  at::Device device_;
  std::unique_ptr<adm::UNetModel> unet_;
  std::unique_ptr<adm::GaussianDiffusion> base_;     // all T steps: training, q_sample
  std::unique_ptr<adm::GaussianDiffusion> sampler_;  // respaced: translate
};

}  // namespace daug::plugins
