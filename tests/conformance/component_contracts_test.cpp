// Contracts of the model-side interfaces, one TEST_P per contract, instantiated over the plugins the loader finds,
// and the checks every plugin shares (coverage, options, building from its config, unknown keys).
#include "conformance.h"

#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace daug::conformance {
namespace {

struct OneThread {
  OneThread() { at::set_num_threads(1); }
} const kOneThread;

std::vector<int64_t> hint_shape(const Built& b, std::vector<int64_t> fallback) {
  auto h = b.hints();
  return h.exists() && h.has("image_shape") ? h.get_int_array("image_shape") : fallback;
}

std::vector<int64_t> batch_shape(int64_t n, const std::vector<int64_t>& chw) {
  std::vector<int64_t> s{n};
  s.insert(s.end(), chw.begin(), chw.end());
  return s;
}

// ---- every plugin (one process for all: each check is cheap, and a ctest costs a LibTorch start-up) ---------

TEST(Conformance, EveryPluginIsCovered) {
  EXPECT_FALSE(plugins_of("").empty()) << "no plugins in " << DAUG_TEST_PLUGIN_DIR;
  for (const auto& i : known_interfaces())
    EXPECT_FALSE(plugins_of(i).empty()) << "no " << i << " plugin found in " << DAUG_TEST_PLUGIN_DIR;
  for (const auto& c : plugins_of("")) {
    EXPECT_TRUE(std::find(known_interfaces().begin(), known_interfaces().end(), c.interface) !=
                known_interfaces().end())
        << "interface '" << c.interface << "' of plugin '" << c.name << "' has no contracts in tests/conformance";
    EXPECT_TRUE(std::filesystem::is_regular_file(config_for(c)))
        << c.interface << " plugin '" << c.name << "' (" << c.library.string() << ") has no conformance config; add "
        << config_for(c).string() << " (see tests/conformance/conformance.h)";
  }
  // The converse: no stale config for a renamed or removed plugin.
  std::set<std::string> expected;
  for (const auto& p : plugins_of("")) expected.insert(config_for(p).lexically_normal().string());
  for (const auto& e : std::filesystem::recursive_directory_iterator(configs_dir())) {
    if (e.path().extension() != ".toml" || e.path().parent_path() == configs_dir()) continue;  // base.toml
    EXPECT_TRUE(expected.count(e.path().lexically_normal().string()))
        << e.path().string() << " matches no loaded plugin (expected configs/<interface>/<plugin>.toml)";
  }
}

TEST(Conformance, EveryPluginBuildsFromItsConfigAndRejectsUnknownKeys) {
  for (const auto& c : plugins_of("")) {
    SCOPED_TRACE(c.interface + " '" + c.name + "'");
    if (!std::filesystem::is_regular_file(config_for(c))) continue;  // reported by EveryPluginIsCovered
    const auto& info = loader().find(c.interface, c.name, "conformance");
    for (const auto& o : info.manifest->describe()) {
      EXPECT_FALSE(o.doc.empty()) << "option '" << o.key << "' has no doc";
      EXPECT_FALSE(o.type.empty()) << "option '" << o.key << "' has no type";
    }
    std::string table;
    try {
      Built b(c);
      table = b.table();
      std::shared_ptr<Component> made = b.subject_any();
      ASSERT_TRUE(made);
      EXPECT_FALSE(made->describe().empty()) << "describe() is empty";
      const auto& ti = trainable_interfaces();
      EXPECT_FALSE(dynamic_cast<Trainable*>(made.get()) && std::find(ti.begin(), ti.end(), c.interface) == ti.end())
          << "this " << c.interface << " is a daug::Trainable, but TrainableContract does not cover its interface; "
          << "extend trainable_interfaces()";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot build it from " << config_for(c).string() << ": " << e.what();
      continue;
    }
    // As a user would misspell it: an unknown key in the plugin's table is a ConfigError naming the key and table.
    Built bad(c, {table + ".definitely_not_an_option=1"});
    daug::testing::expect_error_contains([&] { bad.subject_any(); },
                                         {"unknown key 'definitely_not_an_option'", "[" + table + "]"});
  }
}

// ---- Guidance -----------------------------------------------------------------------------------------------

class GuidanceContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(GuidanceContract, GradientShapeDirectionScaleAndPurity) {
  Built b(GetParam());
  auto g = b.subject<Guidance>();
  std::shared_ptr<Classifier> clf;
  if (b.experiment().config("classifier").exists()) clf = b.get<Classifier>("classifier");
  at::manual_seed(0);
  auto x = at::randn(batch_shape(2, hint_shape(b, {1, 32, 32})));
  auto x_copy = x.clone();
  auto t = at::tensor({10, 500}, at::kLong);
  auto y = at::tensor({0, 3}, at::kLong);
  at::Tensor out;
  {
    at::NoGradGuard no_grad;  // samplers call guidance under NoGradGuard
    out = g->gradient({x, t, y, +1});
  }
  ASSERT_TRUE(out.defined());
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_EQ(out.scalar_type(), x.scalar_type());
  EXPECT_EQ(out.device(), x.device());
  EXPECT_TRUE(at::equal(x, x_copy)) << "input mutated";
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  EXPECT_GT(out.abs().sum().item<double>(), 0.0) << "zero gradient from a non-zero scale";
  auto again = g->gradient({x, t, y, +1});
  EXPECT_TRUE(at::allclose(out, again)) << "not deterministic";
  auto away = g->gradient({x, t, y, -1});
  EXPECT_TRUE(at::allclose(away, -out)) << "direction -1 must negate the gradient";
  if (clf)
    for (const auto& p : clf->parameters())
      EXPECT_TRUE(!p.grad().defined() || p.grad().abs().max().item<double>() == 0.0)
          << "guidance accumulated into a classifier parameter's .grad";
  Built zero_b(GetParam(), {b.table() + ".scale=0.0"});
  auto zero = zero_b.subject<Guidance>();
  EXPECT_EQ(zero->gradient({x, t, y, +1}).abs().max().item<double>(), 0.0) << "scale 0 must give 0";
}

// ---- Generator ----------------------------------------------------------------------------------------------

class GeneratorContract : public ::testing::TestWithParam<PluginCase> {
 protected:
  TranslateRequest request(Built& b, Generator& g) {
    auto shape = g.image_shape();
    at::manual_seed(1);
    x0_ = at::rand(batch_shape(2, shape)) * 2 - 1;
    auto h = b.hints();
    const int64_t label = h.exists() && h.has("label") ? h.get_int("label") : -1;
    TranslateRequest r;
    r.x0 = x0_;
    if (label >= 0) r.label = at::full({2}, label, at::kLong);
    r.target = at::zeros({2}, at::kLong);
    r.noise_level = h.exists() && h.has("noise_level") ? h.get_int("noise_level") : g.num_timesteps() / 2;
    return r;
  }
  at::Tensor x0_;
};

TEST_P(GeneratorContract, ShapesTrainingLossAndTranslate) {
  Built b(GetParam());
  auto g = b.subject<Generator>();
  const auto shape = g->image_shape();
  ASSERT_EQ(shape.size(), 3u) << "image_shape() must be {C, H, W}";
  for (auto s : shape) EXPECT_GT(s, 0);
  EXPECT_GE(g->num_timesteps(), 2);
  auto r = request(b, *g);
  auto t = at::tensor(std::vector<int64_t>{0, g->num_timesteps() - 1}, at::kLong);
  auto xt = g->q_sample(r.x0, t, at::randn_like(r.x0));
  EXPECT_EQ(xt.sizes(), r.x0.sizes());
  EXPECT_TRUE(at::isfinite(xt).all().item<bool>());
  g->set_training(true);
  auto loss = g->training_loss(r.x0, r.label);
  ASSERT_EQ(loss.dim(), 0) << "training_loss must be a scalar";
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  double grad = 0;
  for (const auto& p : g->parameters())
    if (p.grad().defined()) grad += p.grad().abs().sum().item<double>();
  EXPECT_GT(grad, 0.0) << "training_loss does not reach the parameters";
  g->set_training(false);

  // translate: x0's shape and dtype, finite, input untouched; a wrong image shape is a daug::Error.
  auto copy = r.x0.clone();
  auto out = g->translate(r);
  EXPECT_EQ(out.sizes(), r.x0.sizes());
  EXPECT_EQ(out.scalar_type(), r.x0.scalar_type());
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  EXPECT_TRUE(at::equal(r.x0, copy)) << "translate mutated its input";
  auto bad = r;
  bad.x0 = at::zeros({2, g->image_shape()[0], g->image_shape()[1] + 1, g->image_shape()[2]});
  EXPECT_THROW(g->translate(bad), daug::Error) << "a wrong image shape must be a daug::Error";
}

TEST_P(GeneratorContract, ZeroScaleGuidanceEqualsReconstruction) {
  Built b(GetParam(), {"guidance.scale=0.0"});
  auto g = b.subject<Generator>();
  g->set_training(false);
  ASSERT_TRUE(b.experiment().config("guidance").exists()) << "the generator's conformance config needs [guidance]";
  auto zero = b.get<Guidance>("guidance");
  check_zero_guidance_is_reconstruction(*g, *zero, request(b, *g));

  // The converse, so that the equality is not vacuous: the same guidance at its configured scale is applied.
  Built nz(GetParam());
  auto guidance = nz.get<Guidance>("guidance");
  auto r = request(nz, *g);
  at::manual_seed(3);
  auto plain = g->translate(r);
  r.guidance = guidance.get();
  at::manual_seed(3);
  auto guided = g->translate(r);
  EXPECT_GT(daug::testing::max_abs_diff(plain, guided), 1e-6) << "guidance had no effect on translate()";
}

// ---- Classifier ---------------------------------------------------------------------------------------------

class ClassifierContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(ClassifierContract, LogitsShapeFiniteDifferentiableBatchIndependent) {
  Built b(GetParam());
  auto c = b.subject<Classifier>();
  c->set_training(false);
  const auto names = c->class_names();
  ASSERT_FALSE(names.empty());
  at::manual_seed(0);
  auto x = at::randn(batch_shape(3, hint_shape(b, {1, 32, 32}))).requires_grad_(true);
  auto t = at::tensor({0, 500, 999}, at::kLong);
  auto logits = c->logits(x, t);
  ASSERT_EQ(logits.dim(), 2);
  EXPECT_EQ(logits.size(0), 3);
  EXPECT_EQ(logits.size(1), static_cast<int64_t>(names.size())) << "K must equal class_names().size()";
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
  logits.sum().backward();
  ASSERT_TRUE(x.grad().defined()) << "logits are not differentiable w.r.t. x_t";
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());

  // In eval mode an item's logits do not depend on the rest of the batch.
  at::NoGradGuard no_grad;
  auto all = c->logits(x.detach(), t);
  for (int64_t i = 0; i < 3; ++i) {
    auto one = c->logits(x.detach().narrow(0, i, 1), t.narrow(0, i, 1));
    EXPECT_LE(daug::testing::max_abs_diff(one, all.narrow(0, i, 1)), 1e-4) << "item " << i;
  }
}

// ---- Backbone -----------------------------------------------------------------------------------------------

class BackboneContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(BackboneContract, ImageAndTextEmbeddingShapes) {
  Built b(GetParam());
  auto m = b.subject<Backbone>();
  m->set_training(false);
  const int64_t s = m->image_size(), d = m->embed_dim();
  ASSERT_GT(s, 0);
  ASSERT_GT(d, 0);
  at::NoGradGuard no_grad;
  auto emb = m->encode_image(at::randn({2, 3, s, s}));
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{2, d}));
  EXPECT_TRUE(at::isfinite(emb).all().item<bool>());
  EXPECT_THROW(m->encode_image(at::randn({2, 3, s + 1, s + 1})), daug::Error) << "wrong size must throw";
  auto scale = m->logit_scale();
  EXPECT_EQ(scale.dim(), 0) << "logit_scale() must be a scalar";
  EXPECT_TRUE(std::isfinite(scale.item<double>()));

  // Text: tokenize → [N, L <= context_length()] int64 (long texts truncated), encode_text → [N, D], the same D.
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "no acute cardiopulmonary process ";
  auto tok = m->tokenize({"cardiomegaly", "small left pleural effusion", long_text});
  ASSERT_EQ(tok.dim(), 2);
  EXPECT_EQ(tok.size(0), 3);
  EXPECT_LE(tok.size(1), m->context_length()) << "tokens longer than context_length()";
  EXPECT_EQ(tok.scalar_type(), at::kLong);
  auto temb = m->encode_text(tok);
  EXPECT_EQ(temb.sizes(), (std::vector<int64_t>{3, d})) << "text and image embeddings must share D";
  EXPECT_TRUE(at::isfinite(temb).all().item<bool>());
}

// ---- Criterion ----------------------------------------------------------------------------------------------

class CriterionContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(CriterionContract, FiniteScalarLossAndGradients) {
  Built b(GetParam());
  auto c = b.subject<Criterion>();
  at::manual_seed(0);
  auto img = at::randn({4, 8}).requires_grad_(true);
  auto txt = at::randn({4, 8}).requires_grad_(true);
  auto img_n = img / img.norm(2, 1, true);
  auto txt_n = txt / txt.norm(2, 1, true);
  auto cls = at::randn({14, 8});
  cls = cls / cls.norm(2, 1, true);
  auto labels = (at::rand({4, 14}) > 0.5).to(at::kFloat);
  auto scale = at::scalar_tensor(std::log(100.0));
  at::Tensor class_emb = c->needs_class_embeddings() ? cls : at::Tensor();
  auto out = c->compute({img_n, txt_n, class_emb, labels, scale});
  ASSERT_TRUE(out.loss.defined());
  EXPECT_EQ(out.loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  for (const auto& [name, v] : out.parts) {
    EXPECT_TRUE(v.defined() && v.numel() == 1 && !v.requires_grad()) << "part " << name << " must be a detached scalar";
    if (v.defined() && v.numel() == 1) EXPECT_TRUE(std::isfinite(v.item<double>())) << "part " << name;
  }
  auto again = c->compute({img_n, txt_n, class_emb, labels, scale});
  EXPECT_TRUE(at::allclose(out.loss, again.loss)) << "not deterministic";
  out.loss.backward();
  ASSERT_TRUE(img.grad().defined());
  EXPECT_GT(img.grad().abs().sum().item<double>(), 0.0) << "no gradient to the image embeddings";
  ASSERT_TRUE(txt.grad().defined());
  EXPECT_GT(txt.grad().abs().sum().item<double>(), 0.0) << "no gradient to the text embeddings";
}

// ---- HeatmapComposer ----------------------------------------------------------------------------------------

class HeatmapComposerContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(HeatmapComposerContract, ComposeShapePurityAndMismatch) {
  Built b(GetParam());
  auto c = b.subject<HeatmapComposer>();
  const int n = c->num_maps();
  ASSERT_GE(n, 0);
  at::manual_seed(0);
  auto image = at::rand({2, 3, 16, 16});
  std::vector<at::Tensor> maps;
  for (int i = 0; i < n; ++i) maps.push_back(at::rand({2, 1, 16, 16}));
  auto image_copy = image.clone();
  std::vector<at::Tensor> maps_copy;
  for (const auto& m : maps) maps_copy.push_back(m.clone());
  auto out = c->compose(image, maps);
  ASSERT_EQ(out.dim(), 4) << "compose must return [N, c, H, W]";
  EXPECT_EQ(out.size(0), 2);
  EXPECT_GE(out.size(1), 1);
  EXPECT_EQ(out.size(2), 16);
  EXPECT_EQ(out.size(3), 16);
  EXPECT_EQ(out.device(), image.device());
  EXPECT_TRUE(at::equal(image, image_copy)) << "image mutated";
  for (size_t i = 0; i < maps.size(); ++i) EXPECT_TRUE(at::equal(maps[i], maps_copy[i])) << "map " << i << " mutated";
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  EXPECT_TRUE(at::equal(out, c->compose(image, maps))) << "not deterministic";
  if (n > 0) {
    std::vector<at::Tensor> bad(static_cast<size_t>(n), at::rand({2, 1, 8, 8}));
    EXPECT_THROW(c->compose(image, bad), daug::Error) << "mismatched map size must be a daug::Error";
  }
}

// ---- VectorSearch -------------------------------------------------------------------------------------------

class VectorSearchContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(VectorSearchContract, AddSearchOrderingAndErrors) {
  Built b(GetParam());
  const auto h = b.hints();
  {
    SCOPED_TRACE(config_for(GetParam()).string());
    check_vector_search(*b.subject<VectorSearch>(), h.exists() && h.has("exact") && h.get_bool("exact"));
  }
  // Each variant: the same config with a list of --set overrides (e.g. the approximate index types).
  if (h.exists() && h.has("variants"))
    for (const auto& overrides : h.get_string_matrix("variants")) {
      std::string label;
      for (const auto& o : overrides) label += (label.empty() ? "" : " ") + o;
      SCOPED_TRACE("variant --set " + label);
      Built v(GetParam(), overrides);
      check_vector_search(*v.subject<VectorSearch>(), false);
    }
}

// ---- Trainable ----------------------------------------------------------------------------------------------

class TrainableContract : public ::testing::TestWithParam<PluginCase> {
 protected:
  void SetUp() override {
    built_ = std::make_unique<Built>(GetParam());
    component_ = built_->subject_any();
    trainable_ = dynamic_cast<Trainable*>(component_.get());
    ASSERT_NE(trainable_, nullptr) << GetParam().interface << " must be a daug::Trainable";
  }
  std::unique_ptr<Built> built_;
  std::shared_ptr<Component> component_;
  Trainable* trainable_ = nullptr;
};

TEST_P(TrainableContract, StateRoundTrip) {
  check_state_round_trip(*trainable_);
  for (const auto& p : trainable_->parameters()) EXPECT_TRUE(p.requires_grad()) << "parameters() must require grad";
}

TEST_P(TrainableContract, FailedLoadStateChangesNothing) {
  // The bad key is the LAST one where it matters: an implementation that copies in order has copied the rest.
  {
    auto donor = perturbed_state(trainable_->state(), 5);
    ASSERT_GE(donor.size(), 2u);
    const std::string key = donor.back().first;
    donor.pop_back();
    check_load_state_rejects(*trainable_, donor, key, "missing key '" + key + "'");
  }
  {
    auto donor = perturbed_state(trainable_->state(), 6);
    const std::string key = "conformance.unexpected_tensor";
    donor.emplace_back(key, at::zeros({3}));
    check_load_state_rejects(*trainable_, donor, key, "extra key");
  }
  for (bool last : {true, false}) {
    auto donor = perturbed_state(trainable_->state(), 7);
    auto& [key, t] = last ? donor.back() : donor.front();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (shape.empty())
      shape = {2};
    else
      shape[0] += 1;
    t = at::zeros(shape, t.options());
    const std::string k = key;
    check_load_state_rejects(*trainable_, donor, k,
                             std::string("mis-shaped ") + (last ? "last" : "first") + " key '" + k + "'");
  }
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Conformance, GuidanceContract, ::testing::ValuesIn(plugins_of(Guidance::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, GeneratorContract, ::testing::ValuesIn(plugins_of(Generator::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, ClassifierContract, ::testing::ValuesIn(plugins_of(Classifier::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, BackboneContract, ::testing::ValuesIn(plugins_of(Backbone::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, CriterionContract, ::testing::ValuesIn(plugins_of(Criterion::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, HeatmapComposerContract,
                         ::testing::ValuesIn(plugins_of(HeatmapComposer::kInterface)), plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, VectorSearchContract, ::testing::ValuesIn(plugins_of(VectorSearch::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, TrainableContract, ::testing::ValuesIn(plugins_of_any(trainable_interfaces())),
                         qualified_param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GuidanceContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GeneratorContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ClassifierContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackboneContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CriterionContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HeatmapComposerContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VectorSearchContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TrainableContract);

}  // namespace daug::conformance
