#pragma once
// classifier_adm: guided-diffusion's EncoderUNetModel (the noise-aware "half UNet") as a daug::Classifier.
// Declared in a header so tests can build it with explicit Options. See README.md.
#include <daug/adm/unet.h>
#include <daug/build_context.h>
#include <daug/classifier.h>
#include <daug/options.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace daug::plugins {

/// Options of `adm_classifier`. Defaults reproduce the released DAug classifier (REFERENCE.md §1.2): 512²,
/// width 32, depth 4, attention at 32,16,8, resblock_updown, scale-shift norm, head_ch 64, attention pool;
/// K outputs = the super-classes of the [data] source (7 for the released grouping, index 0 = No Finding).
///
/// Example TOML:
///   [classifier]
///   plugin = "adm_classifier"
///   preset = "tiny"
///   data = "data"
struct AdmClassifierOptions {
  std::string preset = "daug512";
  std::string data = "data";
  // Per-field overrides of the preset (unset or empty = keep the preset's value).
  std::optional<int64_t> image_size;
  std::optional<int64_t> in_channels;
  std::optional<int64_t> width;
  std::optional<int64_t> depth;
  std::vector<double> channel_mult;
  std::vector<int64_t> attention_resolutions;
  std::optional<int64_t> num_head_channels;
  double dropout = 0.0;
  std::optional<std::string> pool;  ///< "attention" | "adaptive" (adm::UNetConfig::pool)
  std::optional<bool> use_scale_shift_norm;
  std::optional<bool> resblock_updown;

  void visit(daug::OptionVisitor& v);
};

class AdmClassifier final : public daug::Classifier {
 public:
  using Options = AdmClassifierOptions;

  /// `class_names`: the K output names (normally the data source's super-classes).
  /// `table`: the config table this classifier is built from (error messages name it).
  AdmClassifier(Options opts, std::vector<std::string> class_names, const std::string& device,
                const std::string& table = "classifier");
  static std::shared_ptr<daug::Classifier> create(Options opts, daug::BuildContext& ctx);

  std::string describe() const override;
  at::Tensor logits(const at::Tensor& x_t, const at::Tensor& t) override;
  std::vector<std::string> class_names() const override { return names_; }

  std::vector<at::Tensor> parameters() override { return net_->parameters(); }
  daug::NamedTensors state() override { return net_->named_parameters(); }
  void load_state(const daug::NamedTensors& state) override;
  void set_training(bool on) override { net_->set_training(on); }

  const adm::UNetConfig& config() const { return net_->config(); }
  int64_t num_parameters() const { return net_->num_parameters(); }

 private:
  Options opts_;
  std::vector<std::string> names_;
  at::Device device_;
  std::unique_ptr<adm::EncoderUNetModel> net_;
};

}  // namespace daug::plugins
