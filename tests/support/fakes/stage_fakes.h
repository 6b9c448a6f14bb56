#pragma once
// Tiny in-code components for the stage tests (no plugin loading, no trained model): a Source over PNGs written
// to a temp dir, a Generator with an exact linear-schedule q_sample and a closed-form translate, a Classifier
// with 7 outputs, a Guidance, and the absdiff_minmax composition. They record what the stages pass them.
#include <daug/checkpoint.h>
#include <daug/classifier.h>
#include <daug/data/image.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/source.h>
#include <daug/stage.h>

#include "sample_list_source.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace daug::stages::fakes {

/// Labels in kChexpertClasses order with the given classes set to 1 (others 0).
inline std::vector<float> labels_with(std::initializer_list<const char*> names) {
  std::vector<float> l(14, 0.0f);
  for (const char* n : names) l[static_cast<size_t>(chexpert_index(n))] = 1.0f;
  return l;
}

/// (id, split, labels) of each FakeSource item.
using FakeItems = std::vector<std::tuple<std::string, std::string, std::vector<float>>>;

class FakeSource : public ::daug::testing::SampleListSource {
 public:
  /// Items: (id, split, labels); images are 12×10 gray gradients (different per item) saved as PNG in `dir`.
  FakeSource(const std::filesystem::path& dir, const FakeItems& items) {
    int n = 0;
    for (const auto& [id, split, labels] : items) {
      Sample s;
      s.id = id;
      s.split = split;
      s.labels = labels;
      s.image = dir / (id + ".png");
      at::Tensor img = (at::arange(120, at::kFloat).view({1, 12, 10}) / 119.0 * (0.5 + 0.05 * n)).clamp(0, 1);
      img[0][n % 12][n % 10] = 1.0;
      data::save_png(s.image, img);
      samples_.push_back(s);
      ++n;
    }
  }
  std::string describe() const override { return "fake_source"; }
};

/// Linear β schedule over T=100. training_loss: ε-MSE of a 1-parameter-per-class "denoiser" ε̂ = a_y·x_t + b.
class FakeGenerator : public Generator {
 public:
  FakeGenerator() {
    at::Tensor betas = at::linspace(1e-4 * 10, 0.02 * 10, 100, at::kDouble);
    alphas_cumprod_ = at::cumprod(1 - betas, 0);
    a_ = at::zeros({2}).requires_grad_(true);
    b_ = at::zeros({1}).requires_grad_(true);
  }
  int64_t num_timesteps() const override { return 100; }
  std::vector<int64_t> image_shape() const override { return {1, 8, 8}; }
  at::Tensor q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) override {
    at::Tensor ab = alphas_cumprod_.index_select(0, t.to(at::kCPU)).to(at::kFloat).to(x0.device()).view({-1, 1, 1, 1});
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise;
  }
  at::Tensor training_loss(const at::Tensor& x0, const at::Tensor& label) override {
    seen_labels.push_back(label.defined() ? label.to(at::kCPU).clone() : at::Tensor());
    at::Tensor t = at::randint(0, 100, {x0.size(0)}, at::kLong);
    at::Tensor noise = at::randn_like(x0);
    at::Tensor xt = q_sample(x0, t, noise);
    at::Tensor a = label.defined() ? a_.index_select(0, label) : a_.narrow(0, 1, 1).expand({x0.size(0)});
    at::Tensor eps = a.view({-1, 1, 1, 1}) * xt + b_;
    return (eps - noise).pow(2).mean();
  }
  /// x̂ = 1 − x0 (+ 0.1·guidance gradient when guided): a closed form the tests can recompute.
  at::Tensor translate(const TranslateRequest& r) override {
    requests.push_back(r);
    batch_sizes.push_back(r.x0.size(0));
    at::Tensor out = 1.0 - r.x0;
    if (r.guidance) {
      at::Tensor t = at::full({r.x0.size(0)}, r.noise_level, at::kLong);
      GuidanceInput in{r.x0, t, r.target, r.direction};
      out = out + 0.1 * r.guidance->gradient(in);
    }
    return out;
  }
  std::vector<at::Tensor> parameters() override { return {a_, b_}; }
  NamedTensors state() override { return {{"a", a_}, {"b", b_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "fake_generator"); }
  void set_training(bool on) override { training = on; }
  std::string describe() const override { return "fake_generator"; }

  at::Tensor alphas_cumprod_, a_, b_;
  std::vector<at::Tensor> seen_labels;
  std::vector<TranslateRequest> requests;
  std::vector<int64_t> batch_sizes;
  bool training = true;
};

/// logits_k = w_k·mean(x_t) + c_k − 0.001·t (7 outputs named as the released grouping, or custom names).
class FakeClassifier : public Classifier {
 public:
  explicit FakeClassifier(std::vector<std::string> names = SuperClassGrouping::released().names)
      : names_(std::move(names)) {
    const auto k = static_cast<int64_t>(names_.size());
    w_ = at::zeros({k}).requires_grad_(true);
    c_ = at::zeros({k}).requires_grad_(true);
  }
  at::Tensor logits(const at::Tensor& x_t, const at::Tensor& t) override {
    at::Tensor m = x_t.mean({1, 2, 3}).unsqueeze(1);
    return m * w_.unsqueeze(0) + c_.unsqueeze(0) - 0.001 * t.to(at::kFloat).unsqueeze(1);
  }
  std::vector<std::string> class_names() const override { return names_; }
  std::vector<at::Tensor> parameters() override { return {w_, c_}; }
  NamedTensors state() override { return {{"w", w_}, {"c", c_}}; }
  void load_state(const NamedTensors& s) override { copy_state_checked(state(), s, "fake_classifier"); }
  void set_training(bool) override {}
  std::string describe() const override { return "fake_classifier"; }

  std::vector<std::string> names_;
  at::Tensor w_, c_;
};

/// direction · ∇ₓ log softmax(f(x,t))[target] (scale 1), with grad enabled internally.
class FakeGuidance : public Guidance {
 public:
  explicit FakeGuidance(std::shared_ptr<Classifier> clf) : clf_(std::move(clf)) {}
  at::Tensor gradient(const GuidanceInput& in) override {
    targets.push_back(in.target.clone());
    directions.push_back(in.direction);
    at::AutoGradMode on(true);
    at::Tensor x = in.x_t.detach().requires_grad_(true);
    at::Tensor lp = at::log_softmax(clf_->logits(x, in.t), 1).gather(1, in.target.view({-1, 1})).sum();
    return in.direction * torch::autograd::grad({lp}, {x})[0];
  }
  std::string describe() const override { return "fake_guidance"; }
  std::shared_ptr<Classifier> clf_;
  std::vector<at::Tensor> targets;
  std::vector<int> directions;
};

class FakeComposer : public HeatmapComposer {
 public:
  at::Tensor compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) override {
    return (data::minmax(image.narrow(1, 0, 1)) - data::minmax(maps.at(0).narrow(1, 0, 1))).abs();
  }
  std::string describe() const override { return "fake_composer"; }
};

/// What the stage tests share: temp dirs for the images and the stage output, a TestContext with a FakeSource
/// ("data") and a FakeGenerator ("generator"), and the stage `S` built and run as `daug run` does.
template <class S>
struct StageFixture {
  ::daug::testing::TempDir images, out;
  ::daug::testing::TestContext build;
  std::shared_ptr<FakeSource> src;
  std::shared_ptr<FakeGenerator> gen = std::make_shared<FakeGenerator>();
  std::filesystem::path upstream_root;  ///< where upstream stage directories live ("" = none)

  /// Writes the images of `items` and adds the source as "data", then the generator as "generator".
  void add_data(const FakeItems& items) {
    src = std::make_shared<FakeSource>(images.path(), items);
    build.add("data", src);
    build.add("generator", gen);
  }
  /// The stage built as `daug run` builds it (create() requests its dependencies from `build`).
  std::shared_ptr<::daug::Stage> make(const typename S::Options& o) { return S::create(o, build); }
  ::daug::StageContext ctx(const ::daug::Stage& stage, int shard = 0, int count = 1) {
    return ::daug::testing::stage_context(stage, build, out.path(), upstream_root, shard, count);
  }
  /// make(o), then one run in ctx(shard, count); returns the stage.
  std::shared_ptr<::daug::Stage> run(const typename S::Options& o, int shard = 0, int count = 1) {
    auto stage = make(o);
    auto c = ctx(*stage, shard, count);
    stage->run(c);
    return stage;
  }
};

/// Options with a short, quiet training run: `steps` steps of `batch_size`, learning rate `lr`, a checkpoint
/// every `checkpoint_every` steps, no periodic log lines.
template <class O>
O short_training(int64_t steps, int64_t batch_size, double lr, int64_t checkpoint_every) {
  O o;
  o.steps = steps;
  o.batch_size = batch_size;
  o.lr = lr;
  o.checkpoint_every = checkpoint_every;
  o.log_every_s = 1e9;
  return o;
}

}  // namespace daug::stages::fakes
