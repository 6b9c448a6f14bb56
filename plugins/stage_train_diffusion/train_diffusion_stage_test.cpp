// train_diffusion stage: the UNet label is the No-Finding indicator; EMA weights are saved; options checked.
#include "train_diffusion_stage.h"

#include "fakes/stage_fakes.h"

#include <daug/stages/common.h>
#include <daug/train/losses_csv.h>

using namespace daug;
using namespace daug::plugins;
using daug::stages::fakes::labels_with;

namespace {

struct ThreadsOne : ::testing::Environment {
  void SetUp() override { at::set_num_threads(1); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new ThreadsOne);

struct Fixture {
  daug::testing::TempDir images, out;
  daug::testing::TestContext build;
  std::shared_ptr<stages::fakes::FakeSource> src;
  std::shared_ptr<stages::fakes::FakeGenerator> gen = std::make_shared<stages::fakes::FakeGenerator>();
  Fixture() {
    src = std::make_shared<stages::fakes::FakeSource>(
        images.path(), std::vector<std::tuple<std::string, std::string, std::vector<float>>>{
                           {"h1", "train", labels_with({"No Finding"})},
                           {"s1", "train", labels_with({"Edema"})},
                           {"h2", "train", labels_with({"No Finding"})},
                           {"s2", "train", labels_with({"Cardiomegaly"})},
                           {"t1", "test", labels_with({"No Finding"})},
                       });
    build.add("data", src);
    build.add("generator", gen);
  }
  std::shared_ptr<Stage> make(const TrainDiffusionOptions& o) { return TrainDiffusionStage::create(o, build); }
  StageContext ctx(const Stage& stage) { return daug::testing::stage_context(stage, build, out.path()); }
};

TrainDiffusionOptions small() {
  TrainDiffusionOptions o;
  o.steps = 6;
  o.batch_size = 2;
  o.lr = 0.05;
  o.ema_rate = 0.5;
  o.checkpoint_every = 3;
  o.log_every_s = 1e9;
  return o;
}

}  // namespace

TEST(TrainDiffusionStage, LabelIsTheNoFindingIndicator) {
  auto g = SuperClassGrouping::released();
  Sample healthy, sick, unknown;
  healthy.labels = labels_with({"No Finding"});
  sick.labels = labels_with({"Pleural Other"});
  unknown.labels = std::vector<float>(14, NAN);
  TrainDiffusionOptions o;
  EXPECT_EQ(TrainDiffusionStage::label_of(healthy, o, g), 1);
  EXPECT_EQ(TrainDiffusionStage::label_of(sick, o, g), 0);
  EXPECT_EQ(TrainDiffusionStage::label_of(unknown, o, g), 0);
  o.label_source = "superclass";
  o.label_class = "Pleural Effusion+Pleural Other";
  EXPECT_EQ(TrainDiffusionStage::label_of(sick, o, g), g.names[5] == o.label_class ? 1 : 0);
  o.label_source = "chexpert";
  o.label_class = "Pleural Other";
  EXPECT_EQ(TrainDiffusionStage::label_of(sick, o, g), 1);
  o.label_source = "none";
  EXPECT_EQ(TrainDiffusionStage::label_of(sick, o, g), -1);
}

TEST(TrainDiffusionStage, TrainsOnTheTrainSplitWithHealthyLabelsAndSavesEma) {
  Fixture f;
  auto stage_ptr = f.make(small());
  auto& stage = *stage_ptr;
  auto ctx = f.ctx(stage);
  stage.run(ctx);
  // 6 steps of 2 from the 4 training images; each batch's labels are the items' No-Finding indicators.
  ASSERT_EQ(f.gen->seen_labels.size(), 6u);
  int64_t ones = 0, total = 0;
  for (const auto& l : f.gen->seen_labels) {
    ASSERT_TRUE(l.defined());
    ones += l.sum().item<int64_t>();
    total += l.numel();
  }
  EXPECT_EQ(total, 12);
  EXPECT_EQ(ones, 6);  // 3 epochs × (2 healthy of 4), each epoch a permutation of the 4 items
  auto model = load_safetensors(f.out / "model.safetensors");
  auto ema = load_safetensors(f.out / "ema.safetensors");
  EXPECT_EQ(daug::testing::max_abs_diff(model.tensors.at(0).second, f.gen->a_.detach()), 0.0);
  EXPECT_GT(daug::testing::max_abs_diff(model.tensors.at(0).second, ema.tensors.at(0).second), 0.0);
  EXPECT_EQ(ema.metadata.at("ema_rate"), "0.5");
  EXPECT_EQ(train::read_losses(f.out / "losses.csv").size(), 6u);
  EXPECT_NE(stage.summary(f.out.path()).find("6 steps"), std::string::npos);
}

TEST(TrainDiffusionStage, UnconditionalPassesNoLabel) {
  Fixture f;
  auto o = small();
  o.steps = 1;
  o.label_source = "none";
  o.ema_rate = 0.0;
  auto stage_ptr = f.make(o);
  auto& stage = *stage_ptr;
  auto ctx = f.ctx(stage);
  stage.run(ctx);
  ASSERT_EQ(f.gen->seen_labels.size(), 1u);
  EXPECT_FALSE(f.gen->seen_labels[0].defined());
  auto model = load_safetensors(f.out / "model.safetensors");
  auto ema = load_safetensors(f.out / "ema.safetensors");
  EXPECT_EQ(daug::testing::max_abs_diff(model.tensors.at(0).second, ema.tensors.at(0).second), 0.0);
}

TEST(TrainDiffusionStage, BadLabelClassListsValidNames) {
  auto o = small();
  o.label_source = "chexpert";
  o.label_class = "Healthy";
  Fixture f;
  daug::testing::expect_error_contains([&] { f.make(o); }, {"'Healthy'", "valid:", "No Finding"});
  auto o2 = small();
  o2.label_class = "Healthy";
  auto s2_ptr = f.make(o2);
  auto& s2 = *s2_ptr;
  auto ctx = f.ctx(s2);
  daug::testing::expect_error_contains([&] { s2.run(ctx); }, {"Healthy", "No Finding"});
}
