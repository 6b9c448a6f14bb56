// Runs interface contracts over every registered plugin (timm-style parametrisation over the registry):
// options documented and rejected when unknown, and per-interface behaviour with tiny inputs.
#include <daug/classifier.h>
#include <daug/core/config_loader.h>
#include <daug/core/plugin_loader.h>
#include <daug/criterion.h>
#include <daug/error.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/labels.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "test_support.h"

namespace {

daug::core::PluginLoader& loader() {
  static daug::core::PluginLoader* l = [] {
    auto* p = new daug::core::PluginLoader({DAUG_TEST_PLUGIN_DIR});
    p->load_all();
    return p;
  }();
  return *l;
}

std::vector<daug::core::PluginInfo> plugins_of(const std::string& interface) {
  std::vector<daug::core::PluginInfo> out;
  for (const auto& p : loader().list())
    if (interface.empty() || p.interface == interface) out.push_back(p);
  return out;
}

std::shared_ptr<daug::Component> build(const daug::core::PluginInfo& p, daug::testing::TestContext& ctx,
                                       const std::string& extra = {}) {
  auto doc = daug::core::parse_config("[t]\nplugin = \"" + p.name + "\"\n" + extra, "conformance.toml");
  return p.manifest->create(daug::ConfigView(doc, "t"), ctx);
}

/// A tiny noise-aware classifier: logits = W·mean-pooled(x) + t/1000, 7 outputs.
class TinyClassifier final : public daug::Classifier {
 public:
  TinyClassifier() {
    torch::manual_seed(0);
    lin_ = torch::nn::Linear(4, 7);
  }
  at::Tensor logits(const at::Tensor& x, const at::Tensor& t) override {
    auto feats = at::cat({x.mean({2, 3}), x.pow(2).mean({2, 3}), x.amax({2, 3}), x.amin({2, 3})}, 1);
    return lin_->forward(feats.narrow(1, 0, 4)) + t.to(at::kFloat).unsqueeze(1) / 1000.0;
  }
  std::vector<std::string> class_names() const override { return daug::SuperClassGrouping::released().names; }
  std::vector<at::Tensor> parameters() override { return lin_->parameters(); }
  daug::NamedTensors state() override { return {}; }
  void load_state(const daug::NamedTensors&) override {}
  void set_training(bool) override {}
  std::string describe() const override { return "tiny"; }

 private:
  torch::nn::Linear lin_{nullptr};
};

}  // namespace

TEST(Conformance, PluginsAreFound) {
  EXPECT_FALSE(plugins_of("").empty()) << "no plugins in " << DAUG_TEST_PLUGIN_DIR;
}

TEST(Conformance, EveryPluginDocumentsOptionsAndRejectsUnknownKeys) {
  for (const auto& p : plugins_of("")) {
    SCOPED_TRACE(p.name + " (" + p.library.string() + ")");
    for (const auto& o : p.manifest->describe()) {
      EXPECT_FALSE(o.doc.empty()) << "option '" << o.key << "' has no doc";
      EXPECT_FALSE(o.type.empty());
    }
    daug::testing::TestContext ctx;
    daug::testing::expect_error_contains([&] { build(p, ctx, "definitely_not_an_option = 1\n"); },
                                         {"conformance.toml:3:", "unknown key 'definitely_not_an_option'"});
  }
}

TEST(Conformance, GuidanceContract) {
  for (const auto& p : plugins_of("Guidance")) {
    SCOPED_TRACE(p.name);
    daug::testing::TestContext ctx;
    ctx.add("classifier", std::make_shared<TinyClassifier>());
    auto g = std::dynamic_pointer_cast<daug::Guidance>(build(p, ctx));
    ASSERT_TRUE(g);
    auto x = at::randn({2, 1, 8, 8});
    auto x_copy = x.clone();
    auto t = at::tensor({10, 500}, at::kLong);
    auto y = at::tensor({0, 3}, at::kLong);
    at::Tensor out;
    {
      at::NoGradGuard no_grad;  // samplers call guidance under NoGradGuard
      out = g->gradient({x, t, y, +1});
    }
    EXPECT_EQ(out.sizes(), x.sizes());
    EXPECT_EQ(out.scalar_type(), x.scalar_type());
    EXPECT_TRUE(at::equal(x, x_copy)) << "input mutated";
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
    EXPECT_GT(out.abs().sum().item<double>(), 0.0);
    auto again = g->gradient({x, t, y, +1});
    EXPECT_TRUE(at::allclose(out, again)) << "not deterministic";
    auto away = g->gradient({x, t, y, -1});
    EXPECT_TRUE(at::allclose(away, -out)) << "direction -1 must negate the gradient";
    auto zero = std::dynamic_pointer_cast<daug::Guidance>(build(p, ctx, "scale = 0.0\n"));
    EXPECT_EQ(zero->gradient({x, t, y, +1}).abs().max().item<double>(), 0.0) << "scale 0 must give 0";
  }
}

TEST(Conformance, HeatmapComposerContract) {
  for (const auto& p : plugins_of("HeatmapComposer")) {
    SCOPED_TRACE(p.name);
    daug::testing::TestContext ctx;
    auto c = std::dynamic_pointer_cast<daug::HeatmapComposer>(build(p, ctx));
    ASSERT_TRUE(c);
    int n = c->num_maps();
    auto image = at::rand({2, 3, 16, 16});
    std::vector<at::Tensor> maps;
    for (int i = 0; i < std::max(n, 1); ++i) maps.push_back(at::rand({2, 1, 16, 16}));
    if (n == 0) maps.clear();
    auto image_copy = image.clone();
    auto out = c->compose(image, maps);
    EXPECT_EQ(out.size(0), 2);
    EXPECT_EQ(out.size(-1), 16);
    EXPECT_EQ(out.size(-2), 16);
    EXPECT_TRUE(at::equal(image, image_copy)) << "input mutated";
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
    EXPECT_TRUE(at::equal(out, c->compose(image, maps))) << "not deterministic";
    if (n > 0) {
      std::vector<at::Tensor> bad(static_cast<size_t>(n), at::rand({2, 1, 8, 8}));
      EXPECT_THROW(c->compose(image, bad), std::exception) << "mismatched map size must be an error";
    }
  }
}

TEST(Conformance, CriterionContract) {
  for (const auto& p : plugins_of("Criterion")) {
    SCOPED_TRACE(p.name);
    daug::testing::TestContext ctx;
    auto c = std::dynamic_pointer_cast<daug::Criterion>(build(p, ctx));
    ASSERT_TRUE(c);
    auto img = at::randn({4, 8}).requires_grad_(true);
    auto img_n = img / img.norm(2, 1, true);
    auto txt = at::randn({4, 8});
    txt = txt / txt.norm(2, 1, true);
    auto cls = at::randn({14, 8});
    cls = cls / cls.norm(2, 1, true);
    auto labels = (at::rand({4, 14}) > 0.5).to(at::kFloat);
    auto scale = at::scalar_tensor(std::log(100.0));
    at::Tensor class_emb = c->needs_class_embeddings() ? cls : at::Tensor();
    auto out = c->compute({img_n, txt, class_emb, labels, scale});
    EXPECT_EQ(out.loss.dim(), 0);
    EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
    out.loss.backward();
    EXPECT_TRUE(img.grad().defined());
    EXPECT_GT(img.grad().abs().sum().item<double>(), 0.0);
  }
}
