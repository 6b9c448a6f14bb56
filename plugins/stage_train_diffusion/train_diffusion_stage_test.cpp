// train_diffusion stage: the UNet label is the No-Finding indicator; EMA weights are saved; options checked.
#include "train_diffusion_stage.h"

#include "fakes/stage_fakes.h"

#include <daug/stages/common.h>
#include <daug/train/losses_csv.h>

using namespace daug;
using namespace daug::plugins;
using daug::stages::fakes::labels_with;

namespace {

TrainDiffusionOptions small() {
  auto o = stages::fakes::short_training<TrainDiffusionOptions>(6, 2, 0.05, 3);
  o.ema_rate = 0.5;
  return o;
}

struct Fixture : stages::fakes::StageFixture<TrainDiffusionStage> {
  Fixture() {
    add_data({
        {"h1", "train", labels_with({"No Finding"})},
        {"s1", "train", labels_with({"Edema"})},
        {"h2", "train", labels_with({"No Finding"})},
        {"s2", "train", labels_with({"Cardiomegaly"})},
        {"t1", "test", labels_with({"No Finding"})},
    });
  }
};

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
  auto stage_ptr = f.run(small());
  auto& stage = *stage_ptr;
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
  f.run(o);
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

TEST(TrainDiffusionStage, DefaultResizeFilterIsTheReleasedPilBilinear) {
  // torchvision Resize on PIL images (released datasets/mimic.py:90-93) = antialiased bilinear, not a box filter.
  bool seen = false;
  for (const auto& info : daug::describe_options<TrainDiffusionOptions>())
    if (info.key == "resize_filter") {
      EXPECT_EQ(info.default_value, "'bilinear'");
      seen = true;
    }
  EXPECT_TRUE(seen);
}

// accumulate = k: each optimizer step calls training_loss on k micro-batches of batch_size / k images (each starts
// from the step's reseed and keeps its rows of the whole batch's t and noise: daug/batch_part.h), and still makes
// one losses.csv row per optimizer step. The equality of k micro-batches with one batch for per-item losses is
// TrainerAccumulate.MicroBatchesEqualTheFullBatch; with per-item draws, DataParallel.MicroBatchesDrawTheUnsplit-
// BatchsNumbers and, for the real generator, DdpmGenerator.TrainingLossOfBatchPartsIsTheWholeBatchs.
TEST(TrainDiffusionStage, AccumulateSplitsEachStepIntoMicroBatches) {
  Fixture f;
  auto o = small();
  o.accumulate = 2;
  f.run(o);
  ASSERT_EQ(f.gen->seen_labels.size(), 12u);
  for (const auto& l : f.gen->seen_labels) EXPECT_EQ(l.numel(), 1);
  EXPECT_EQ(train::read_losses(f.out / "losses.csv").size(), 6u);
  Fixture g;
  o.accumulate = 3;
  daug::testing::expect_error_contains([&] { g.make(o); }, {"accumulate = 3: must divide batch_size = 2"});
  o.accumulate = 1;
  o.precision = "fp16";
  daug::testing::expect_error_contains([&] { g.make(o); }, {"precision = \"fp16\" needs a CUDA device"});
}
