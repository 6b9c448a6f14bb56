// train_classifier stage: end to end on tiny in-code components; pos_weight on a hand-made label set; resume;
// class-name mismatch errors; AP report.
#include "train_classifier_stage.h"

#include "fakes/stage_fakes.h"

#include <daug/stages/common.h>
#include <daug/train/losses_csv.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

using namespace daug;
using namespace daug::plugins;
using daug::stages::fakes::labels_with;

namespace {

struct Fixture : stages::fakes::StageFixture<TrainClassifierStage> {
  std::shared_ptr<stages::fakes::FakeClassifier> clf;

  explicit Fixture(std::shared_ptr<stages::fakes::FakeClassifier> c = std::make_shared<stages::fakes::FakeClassifier>(),
                   const stages::fakes::FakeItems& extra = {})
      : clf(std::move(c)) {
    // Train: 6 images. Super-classes: No Finding 3/6 → pos_weight 1; ECM+Cardiomegaly 2/6 (Cardiomegaly, and
    // ECM) → 2; Lung Lesion 1/6 → 5; Atelectasis+Pneumothorax 1/6 → 5; others 0 positives → 1 (neutral).
    stages::fakes::FakeItems items = {
        {"a", "train", labels_with({"No Finding"})},
        {"b", "train", labels_with({"No Finding"})},
        {"c", "train", labels_with({"No Finding", "Fracture"})},
        {"d", "train", labels_with({"Cardiomegaly", "Lung Lesion"})},
        {"e", "train", labels_with({"Enlarged Cardiomediastinum", "Cardiomegaly"})},
        {"f", "train", labels_with({"Pneumothorax", "Lung Opacity"})},
        {"g", "test", labels_with({"No Finding"})},
        {"h", "test", labels_with({"Cardiomegaly"})},
        {"i", "test", labels_with({"No Finding"})},
    };
    items.insert(items.end(), extra.begin(), extra.end());
    add_data(items);
    build.add("classifier", clf);
  }
};

TrainClassifierOptions small() {
  auto o = stages::fakes::short_training<TrainClassifierOptions>(4, 3, 0.05, 2);
  o.eval_batch_size = 2;
  return o;
}

}  // namespace

TEST(TrainClassifierStage, TrainsSavesAndReportsAp) {
  Fixture f;
  at::Tensor before = f.clf->w_.detach().clone();
  auto stage_ptr = f.run(small());
  auto& stage = *stage_ptr;
  EXPECT_GT(daug::testing::max_abs_diff(before, f.clf->w_.detach()), 0.0);
  EXPECT_TRUE(std::filesystem::exists(f.out / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(f.out / "checkpoint.safetensors"));
  EXPECT_EQ(train::read_losses(f.out / "losses.csv").size(), 4u);
  auto saved = load_safetensors(f.out / "model.safetensors");
  EXPECT_EQ(daug::testing::max_abs_diff(saved.tensors.at(0).second, f.clf->w_.detach()), 0.0);

  std::string json = stages::read_text_if_exists(f.out / "metrics.json");
  // pos_weight = #neg/#pos on the training split, in the released grouping's order.
  EXPECT_NE(json.find("\"pos_weight\": [1, 2, 5, 1, 5, 1, 1]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"split\": \"test\", \"images\": 3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\": \"No Finding\", \"positives\": 2"), std::string::npos) << json;
  // Classes without test positives have no AP (null), not 0.
  EXPECT_NE(json.find("\"name\": \"Lung Lesion\", \"positives\": 0, \"ap\": null"), std::string::npos) << json;
  std::string md = stage.summary(f.out.path());
  EXPECT_NE(md.find("| No Finding | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Table 4"), std::string::npos);
}

TEST(TrainClassifierStage, RerunResumesAtTheFinalStep) {
  Fixture f;
  f.run(small());
  at::Tensor w = f.clf->w_.detach().clone();
  Fixture g;  // fresh classifier, same output dir contents
  std::filesystem::copy(f.out.path(), g.out.path(), std::filesystem::copy_options::recursive |
                                                         std::filesystem::copy_options::overwrite_existing);
  auto stage2 = g.run(small());
  EXPECT_EQ(daug::testing::max_abs_diff(w, g.clf->w_.detach()), 0.0);  // restored, no extra steps
  EXPECT_NE(stage2->summary(g.out.path()).find("resumed at step 4"), std::string::npos);
  EXPECT_EQ(train::read_losses(g.out / "losses.csv").size(), 4u);
}

TEST(TrainClassifierStage, WithoutPosWeightTheLossIsPlainBce) {
  // At initialisation all logits are −0.001·t, so the first loss is computable by hand only for BCE without
  // pos_weight; with pos_weight the positive terms are scaled. Compare first losses.
  Fixture f1, f2;
  auto o = small();
  o.steps = 1;
  o.eval_split = "";
  o.pos_weight = false;
  f1.run(o);
  o.pos_weight = true;
  f2.run(o);
  double l_plain = train::read_losses(f1.out / "losses.csv").at(0);
  double l_weighted = train::read_losses(f2.out / "losses.csv").at(0);
  // logit z = −0.001·t ∈ (−0.1, 0]: per-element BCE lies in [log(1+e^−0.1), log(1+e^0.1)] for either target.
  EXPECT_GT(l_plain, std::log1p(std::exp(-0.1)) - 1e-6);
  EXPECT_LT(l_plain, std::log1p(std::exp(0.1)) + 1e-6);
  EXPECT_GT(l_weighted, l_plain);  // pos_weights ≥ 1 and some > 1
  EXPECT_FALSE(std::filesystem::exists(f1.out / "summary.md") &&
               stages::read_text_if_exists(f1.out / "summary.md").find("AP per") != std::string::npos);
}

TEST(TrainClassifierStage, ClassifierOutputsMustMatchTheGrouping) {
  Fixture f(std::make_shared<stages::fakes::FakeClassifier>(std::vector<std::string>{"healthy", "sick"}));
  daug::testing::expect_error_contains([&] { f.make(small()); }, {"[classifier] outputs [healthy, sick]", "No Finding"});
}

TEST(TrainClassifierStage, OptionsAreChecked) {
  // resize_filter/normalize are enums read by name (a wrong name is the SDK reader's ConfigError); pin the names.
  for (const auto& info : daug::describe_options<TrainClassifierStage::Options>()) {
    if (info.key == "resize_filter") {
      EXPECT_EQ(info.constraint, "one of: bilinear, bicubic, area, nearest");
      EXPECT_EQ(info.default_value, "'bilinear'");  // PIL antialiased bilinear, the released transform
    }
    if (info.key == "normalize") EXPECT_EQ(info.constraint, "one of: minmax, minmax_pm1, none");
  }
  Fixture g;
  g.make(small());
  EXPECT_EQ(g.build.requests(), (std::vector<std::string>{"data", "generator", "classifier"}));
}

TEST(TrainClassifierStage, ImagesWithoutAPositiveSuperClassAreLeftOutAsReleased) {
  // Released by_pathology (datasets/mimic.py): `if max(conditions) < 1: continue`, before pos_weight. Two extra
  // training images have no positive super-class (only Lung Opacity, which no super-class holds; all negative)
  // and one extra test image (only Fracture).
  const stages::fakes::FakeItems extra = {{"x", "train", labels_with({"Lung Opacity"})},
                                          {"y", "train", labels_with({})},
                                          {"z", "test", labels_with({"Fracture"})}};
  Fixture dropped(std::make_shared<stages::fakes::FakeClassifier>(), extra);
  dropped.run(small());
  std::string json = stages::read_text_if_exists(dropped.out / "metrics.json");
  // The same 6 training images as the base fixture, so the same hand-computed pos_weight.
  EXPECT_NE(json.find("\"pos_weight\": [1, 2, 5, 1, 5, 1, 1]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"train_images\": 6,\n  \"train_dropped_no_positive\": 2"), std::string::npos) << json;
  EXPECT_NE(json.find("\"split\": \"test\", \"images\": 3, \"dropped_no_positive\": 1"), std::string::npos) << json;
  const std::string md = stages::read_text_if_exists(dropped.out / "summary.md");
  EXPECT_NE(md.find("Left out (no positive super-class, as released): 2 'train' images."), std::string::npos) << md;
  EXPECT_NE(md.find("Left out (no positive super-class, as released): 1 'test' images."), std::string::npos) << md;

  // Kept (drop_no_positive = false): 8 images; No Finding 3/8 → 5/3, ECM+Cardiomegaly 2/8 → 3, Lung Lesion and
  // Atelectasis+Pneumothorax 1/8 → 7.
  Fixture kept(std::make_shared<stages::fakes::FakeClassifier>(), extra);
  auto o = small();
  o.drop_no_positive = false;
  kept.run(o);
  json = stages::read_text_if_exists(kept.out / "metrics.json");
  EXPECT_NE(json.find("\"pos_weight\": [1.6666666666666667, 3, 7, 1, 7, 1, 1]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"split\": \"test\", \"images\": 4, \"dropped_no_positive\": 0"), std::string::npos) << json;
}

TEST(TrainClassifierStage, PerEpochAnnealingHoldsTheLrWithinAnEpoch) {
  // 6 training images, batch 3 → 2 steps per epoch, 2 epochs. Released (classifier_train2.py): lr·(1 − e/2) at the
  // start of epoch e → 0.05, 0.05, 0.025, 0.025. Per step: lr·(1 − s/4) → 0.05, 0.0375, 0.025, 0.0125.
  auto o = small();
  o.steps = 0;
  o.epochs = 2;
  o.eval_split = "";
  Fixture per_epoch;
  per_epoch.run(o);
  EXPECT_EQ(train::read_column(per_epoch.out / "losses.csv", "lr"), (std::vector<double>{0.05, 0.05, 0.025, 0.025}));
  o.anneal = "per_step";
  Fixture per_step;
  per_step.run(o);
  EXPECT_EQ(train::read_column(per_step.out / "losses.csv", "lr"), (std::vector<double>{0.05, 0.0375, 0.025, 0.0125}));
  for (const auto& info : daug::describe_options<TrainClassifierOptions>())
    if (info.key == "anneal") EXPECT_EQ(info.default_value, "'per_epoch'");
}

namespace {

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// losses.csv without its elapsed_s column (wall time).
std::string losses_without_time(const std::filesystem::path& p) {
  std::istringstream in(file_bytes(p));
  std::string line, out;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    EXPECT_GE(cells.size(), 6u) << line;
    if (cells.size() >= 6) cells.erase(cells.begin() + 5);
    for (const auto& c : cells) out += c + ",";
    out += "\n";
  }
  return out;
}

}  // namespace

// Issue 10: with loader workers the next steps' images are decoded meanwhile; weights, losses and AP must not change.
TEST(TrainClassifierStage, LoaderWorkersGiveByteIdenticalWeightsLossesAndMetrics) {
  std::map<int64_t, std::vector<std::string>> got;
  for (int64_t workers : {0, 2}) {
    Fixture f;
    auto o = small();
    o.steps = 7;  // 2 steps per epoch: several epochs, batches in flight across epoch ends
    o.batch_size = 2;
    o.cache_images = false;
    o.loader = {workers, 3};
    f.run(o);
    got[workers] = {file_bytes(f.out / "model.safetensors"), losses_without_time(f.out / "losses.csv"),
                    file_bytes(f.out / "metrics.json")};
    EXPECT_EQ(train::read_losses(f.out / "losses.csv").size(), 7u);
  }
  ASSERT_FALSE(got[0][0].empty());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(got[0][i], got[2][i]) << "file " << i;
}
