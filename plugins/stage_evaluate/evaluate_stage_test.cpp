#include "evaluate_stage.h"

#include "clip_common.h"
#include "fakes/fake_backbone.h"
#include "fakes/fake_source.h"
#include "fakes/sequential_ranks.h"
#include "test_support.h"

#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
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
