#include "evaluate_stage.h"

#include "clip_common.h"
#include "fakes/fake_backbone.h"
#include "fakes/fake_source.h"
#include "fakes/sample_list_source.h"
#include "fakes/sequential_ranks.h"
#include "test_support.h"

#include <daug/bootstrap.h>
#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace daug;
using daug::testing::expect_error_contains;

namespace {

// A backbone whose embeddings are known in closed form: an image maps to its row-band profile (which third of
// the image is bright; FakeSource draws class c as a bright band c), a text to the one-hot of the band its
// keyword names. So every test report/image retrieves exactly the gallery images of its own class.
class OracleBackbone final : public Backbone {
 public:
  std::string describe() const override { return "oracle"; }
  at::Tensor encode_image(const at::Tensor& px) override {
    const int64_t s = px.size(2) / 3;
    std::vector<at::Tensor> f;
    for (int c = 0; c < 3; ++c) f.push_back(px.select(1, 1).narrow(1, c * s, s).mean({1, 2}));
    auto v = at::stack(f, 1);
    return v - v.mean(1, true);
  }
  at::Tensor encode_text(const at::Tensor& tokens) override { return at::one_hot(tokens.select(1, 0), 4).narrow(1, 0, 3).to(at::kFloat); }
  at::Tensor tokenize(const std::vector<std::string>& texts) override {
    auto out = at::full({static_cast<int64_t>(texts.size()), 1}, 3, at::kLong);
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto& t = texts[i];
      int64_t c = 3;
      if (t.find("enlarged") != std::string::npos || t.find("healthy") != std::string::npos) c = 0;
      if (t.find("edema") != std::string::npos) c = 1;
      if (t.find("effusion") != std::string::npos || t.find("pneumothorax") != std::string::npos) c = 2;
      out[static_cast<int64_t>(i)][0] = c;
    }
    return out;
  }
  int64_t image_size() const override { return 18; }
  int64_t context_length() const override { return 1; }
  int64_t embed_dim() const override { return 3; }
  at::Tensor logit_scale() override { return at::scalar_tensor(4.602); }
  void load_weights(const std::string&) override {}
  std::vector<at::Tensor> parameters() override { return {}; }
  NamedTensors state() override { return {}; }
  void load_state(const NamedTensors&) override {}
  void set_training(bool) override {}
};

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Fixture {
  daug::testing::TempDir tmp;
  std::shared_ptr<daug::testing::FakeSource> src;
  Fixture() {
    at::set_num_threads(1);
    at::manual_seed(5);
    src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 12, 4);  // gallery 8, queries 4
  }
  void run(Stage& st, const std::filesystem::path& out, const std::filesystem::path& train_dir = {}) {
    const auto checkpoint = train_dir / "checkpoint.safetensors";
    daug::testing::run_stage(st, out, daug::testing::single_artifact("train_clip", artifacts::kCheckpoint, checkpoint));
  }
};

}  // namespace

TEST(Evaluate, OracleEmbeddingsGivePerfectRetrievalAndAuc) {
  Fixture f;
  plugins::EvaluateOptions o;
  o.composer = "";
  o.train_stage = "";
  o.k = {1, 2};
  o.examples = 3;
  plugins::EvaluateStage st(o, f.src, std::make_shared<OracleBackbone>(), nullptr, "cpu");
  f.run(st, f.tmp / "out");
  auto metrics = nlohmann::json::parse(read(f.tmp / "out" / "metrics.json"));
  for (const char* k : {"r2i_map@1", "r2i_map@2", "i2i_map@1", "i2i_map@2", "auc", "auc_exact"}) {
    EXPECT_NEAR(metrics[k]["Avg"].get<double>(), 1.0, 1e-9) << k;
    EXPECT_NEAR(metrics[k]["wAvg"].get<double>(), 1.0, 1e-9) << k;
  }
  auto tables = nlohmann::json::parse(read(f.tmp / "out" / "tables.json"));
  // test queries img8..img11 are bands 2,0,1,2 → Pneumothorax has 2 positive queries; Cardiomegaly none.
  EXPECT_EQ(tables["R→I mAP@2"]["classes"]["Pneumothorax"]["support"].get<int>(), 2);
  EXPECT_TRUE(tables["R→I mAP@2"]["classes"]["Cardiomegaly"]["value"].is_null());
  EXPECT_EQ(tables["R→I mAP@2"]["classes"]["Cardiomegaly"]["na"].get<std::string>(), "no positives");
  auto md = read(f.tmp / "out" / "tables.md");
  EXPECT_NE(md.find("| Metric | Enlarged Cardiomediastinum | Cardiomegaly |"), std::string::npos) << md;
  EXPECT_NE(md.find("n/a (no positives)"), std::string::npos);
  EXPECT_NE(md.find("excluded from Avg and wAvg"), std::string::npos);
  EXPECT_NE(md.find("generated from its labels"), std::string::npos);
  EXPECT_NE(md.find("| AUC (exact) |"), std::string::npos) << md;
  EXPECT_NE(md.find("ranked in float32 as released"), std::string::npos) << md;
  EXPECT_EQ(st.summary(f.tmp / "out"), md);
  auto ex = nlohmann::json::parse(read(f.tmp / "out" / "retrieval_examples.json"));
  ASSERT_EQ(ex.size(), 3u);
  ASSERT_EQ(ex[0]["by_report"].size(), 5u);  // max(K, 5) results, capped by the gallery (8)
  EXPECT_EQ(ex[0]["id"], "img8");
  EXPECT_EQ(ex[0]["by_report"][0]["labels"], ex[0]["labels"]);  // the top hit shares the query's labels
  EXPECT_NE(read(f.tmp / "out" / "tables.csv").find("R→I mAP@1,"), std::string::npos);
}

TEST(Evaluate, LoadsTheTrainClipCheckpointAndItsPrompts) {
  Fixture f;
  auto trained = std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/11);
  NamedTensors ck;
  for (auto& [k, t] : trained->state()) ck.emplace_back("model." + k, t.detach().clone());
  std::filesystem::create_directories(f.tmp / "train");
  std::vector<std::string> prompts(14, "custom prompt");
  save_safetensors(f.tmp / "train" / "checkpoint.safetensors", ck,
                   {{"step", "9"}, {"prompts", nlohmann::json(prompts).dump()}});
  auto bb = std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/1);
  plugins::EvaluateOptions o;
  o.composer = "";
  plugins::EvaluateStage st(o, f.src, bb, nullptr, "cpu");
  f.run(st, f.tmp / "out", f.tmp / "train");
  EXPECT_EQ(daug::testing::max_abs_diff(bb->img_->weight, trained->img_->weight), 0.0);
  auto tables = nlohmann::json::parse(read(f.tmp / "out" / "tables.json"));
  EXPECT_NE(tables["_info"]["weights"].get<std::string>().find("(step 9)"), std::string::npos);
  // AUC values are in [0,1] or null
  for (auto& [name, c] : tables["AUC"]["classes"].items())
    if (!c["value"].is_null()) EXPECT_LE(c["value"].get<double>(), 1.0) << name;
  // a missing checkpoint is a clear error
  expect_error_contains([&] { f.run(st, f.tmp / "out2", f.tmp / "nowhere"); },
                        {"checkpoint", "does not exist", "nowhere"});
}

// Issue 11: under a distributed launch each rank embeds its shard (padded to equal sizes), rank 0 gathers the
// embeddings in order and writes the tables; ranks > 0 write nothing. The tables equal the single-process ones.
TEST(Evaluate, DistributedRanksGiveTheSingleProcessTables) {
  daug::testing::TempDir tmp;
  at::manual_seed(5);
  auto src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 30, 10);  // gallery 20, queries 10
  plugins::EvaluateOptions o;
  o.composer = "";
  o.train_stage = "";
  o.k = {1, 5};
  o.batch_size = 3;  // ranks see other batch compositions than one process
  auto run = [&](const std::filesystem::path& out) {
    // Every rank builds its own backbone, identically (same seed).
    plugins::EvaluateStage st(o, src, std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/3), nullptr,
                              "cpu");
    daug::testing::run_stage(st, out, daug::testing::single_artifact("train_clip", artifacts::kCheckpoint, {}));
  };
  run(tmp / "one");
  const std::string md = read(tmp / "one" / "tables.md");
  const auto metrics = nlohmann::json::parse(read(tmp / "one" / "metrics.json"));
  const auto examples = nlohmann::json::parse(read(tmp / "one" / "retrieval_examples.json"));
  ASSERT_NE(md.find("R→I mAP@5"), std::string::npos);
  // 2 ranks: shards of 10 gallery / 5 query rows; 3: 7 + 1 padding / 4 + 2; 11: the queries fit one row per rank.
  for (int world : {2, 3, 11}) {
    daug::testing::SequentialRanks ranks(world);
    const auto out = tmp / ("ranks" + std::to_string(world));
    for (int r = world - 1; r >= 0; --r) {
      const daug::testing::SequentialRanks::Scope scope(ranks, r);
      run(out / std::to_string(r));
      if (r > 0) EXPECT_TRUE(std::filesystem::is_empty(out / std::to_string(r))) << "rank " << r << " of " << world;
    }
    const auto dir = out / "0";
    EXPECT_EQ(read(dir / "tables.md"), md) << world << " ranks";
    EXPECT_EQ(read(dir / "tables.csv"), read(tmp / "one" / "tables.csv")) << world << " ranks";
    const auto m = nlohmann::json::parse(read(dir / "metrics.json"));
    for (const auto& [key, v] : metrics.items())
      for (const char* avg : {"Avg", "wAvg"})
        EXPECT_NEAR(m[key][avg].get<double>(), v[avg].get<double>(), 1e-9) << key << " " << avg << ", " << world;
    // The same top hits with scores equal up to the rounding of other batch compositions.
    const auto ex = nlohmann::json::parse(read(dir / "retrieval_examples.json"));
    ASSERT_EQ(ex.size(), examples.size());
    for (size_t q = 0; q < ex.size(); ++q)
      for (const char* by : {"by_report", "by_image"})
        for (size_t h = 0; h < ex[q][by].size(); ++h) {
          EXPECT_EQ(ex[q][by][h]["id"], examples[q][by][h]["id"]) << q << " " << by << " " << h;
          EXPECT_NEAR(ex[q][by][h]["score"].get<double>(), examples[q][by][h]["score"].get<double>(), 1e-6);
        }
  }
}

namespace {

// FakeSource's samples with some edits (NaN query labels).
class EditedSource final : public daug::testing::SampleListSource {
 public:
  explicit EditedSource(std::vector<Sample> s) { samples_ = std::move(s); }
  std::string describe() const override { return "edited"; }
};

}  // namespace

// Issue 12: paired_items.json holds per-query values that reproduce every Avg exactly (so `daug ablate` can pair
// variants by query), and the stage reports a bootstrap 95% CI of each Avg from them, seeded.
TEST(Evaluate, PairedItemsReproduceEveryAvgAndGiveSeededCIs) {
  daug::testing::TempDir tmp;
  at::manual_seed(5);
  daug::testing::FakeSource fake(tmp / "images", 70, 40);  // queries img30..img69
  auto samples = fake.samples();
  samples[31].labels[0] = NAN;  // a positive and a negative of two classes become unknown
  samples[34].labels[8] = NAN;
  auto src = std::make_shared<EditedSource>(samples);
  auto run = [&](plugins::EvaluateOptions o, const std::filesystem::path& out) {
    o.composer = "";
    o.train_stage = "";
    o.k = {1, 5};
    plugins::EvaluateStage st(o, src, std::make_shared<daug::testing::FakeBackbone>(8, 16, 24, /*seed=*/3), nullptr,
                              "cpu");
    daug::testing::run_stage(st, out, daug::testing::single_artifact("train_clip", artifacts::kCheckpoint, {}));
  };
  for (auto missing : {plugins::MissingLabels::negative, plugins::MissingLabels::exclude}) {
    plugins::EvaluateOptions o;
    o.missing_labels = missing;
    const auto out = tmp / (missing == plugins::MissingLabels::exclude ? "exclude" : "negative");
    run(o, out);
    const auto metrics = nlohmann::json::parse(read(out / "metrics.json"));
    const auto items = daug::read_paired_items(out / "paired_items.json");
    ASSERT_EQ(items.metrics.size(), 6u);
    std::vector<std::string> names;
    int wide = 0;
    for (const auto& m : items.metrics) {
      names.push_back(m.name);
      ASSERT_EQ(m.items.size(), 40u) << m.name;
      EXPECT_EQ(m.items[0].id, "img30");
      const std::string key = m.name.substr(0, m.name.size() - 4);  // without ".Avg"
      EXPECT_EQ(m.kind, key.rfind("auc", 0) == 0 ? "macro_auc" : "macro_mean") << m.name;
      // The full sample's metric is the table's Avg (the AUC one ranks with ties 1/2 like the stage).
      EXPECT_NEAR(daug::paired_metric_value(m), metrics[key]["Avg"].get<double>(), 1e-12) << m.name;
      // The CI in metrics.json is the bootstrap of these items: 1000 draws, seed 0.
      const auto ci = daug::bootstrap_interval(m, 1000, 0);
      EXPECT_EQ(metrics[key]["Avg_ci95"][0].get<double>(), ci.lo) << m.name;
      EXPECT_EQ(metrics[key]["Avg_ci95"][1].get<double>(), ci.hi) << m.name;
      EXPECT_LE(ci.lo, ci.hi) << m.name;
      wide += ci.lo < ci.hi;
    }
    EXPECT_GE(wide, 2) << "retrieval is perfect here, but the AUCs vary";
    EXPECT_EQ(names, (std::vector<std::string>{"r2i_map@1.Avg", "i2i_map@1.Avg", "r2i_map@5.Avg", "i2i_map@5.Avg",
                                               "auc.Avg", "auc_exact.Avg"}));
    // NaN labels: left out of AUC with "exclude" (null in the file), negative with "negative"; never relevant in
    // retrieval.
    const auto& auc = items.metrics[4];
    EXPECT_EQ(std::isnan(auc.items[1].labels[0]), missing == plugins::MissingLabels::exclude);
    EXPECT_EQ(std::isnan(auc.items[4].labels[8]), missing == plugins::MissingLabels::exclude);
    EXPECT_EQ(items.metrics[0].items[1].labels[0], 0.0);
    const auto md = read(out / "tables.md");
    EXPECT_NE(md.find("Bootstrap 95% CI of Avg: percentile interval over 1000 resamples of the 40 test queries"),
              std::string::npos)
        << md;
    EXPECT_NE(
        md.find(fmt::format("| AUC | {:.4f} | [{:.4f}, {:.4f}] |", metrics["auc"]["Avg"].get<double>(),
                            metrics["auc"]["Avg_ci95"][0].get<double>(), metrics["auc"]["Avg_ci95"][1].get<double>())),
        std::string::npos)
        << md;
  }
  // Same seed: the same CIs; another seed: other CIs, the same Avg; bootstrap = 0: no CI, the items still written.
  plugins::EvaluateOptions o;
  run(o, tmp / "again");
  EXPECT_EQ(read(tmp / "again" / "metrics.json"), read(tmp / "negative" / "metrics.json"));
  o.bootstrap_seed = 1;
  run(o, tmp / "seed1");
  const auto m0 = nlohmann::json::parse(read(tmp / "negative" / "metrics.json"));
  const auto m1 = nlohmann::json::parse(read(tmp / "seed1" / "metrics.json"));
  bool other_ci = false;
  for (const auto& [key, v] : m0.items()) {
    EXPECT_EQ(m1[key]["Avg"], v["Avg"]) << key;
    other_ci |= m1[key]["Avg_ci95"] != v["Avg_ci95"];
  }
  EXPECT_TRUE(other_ci) << m0.dump() << "\n" << m1.dump();
  o.bootstrap = 0;
  run(o, tmp / "off");
  const auto moff = nlohmann::json::parse(read(tmp / "off" / "metrics.json"));
  EXPECT_FALSE(moff["auc"].contains("Avg_ci95"));
  EXPECT_EQ(moff["auc"]["Avg"], m0["auc"]["Avg"]);
  EXPECT_EQ(read(tmp / "off" / "tables.md").find("Bootstrap"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(tmp / "off" / "paired_items.json"));
}
