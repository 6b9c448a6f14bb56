#include "train_clip_stage.h"

#include "clip_common.h"
#include "fakes/fake_backbone.h"
#include "fakes/fake_source.h"
#include "test_support.h"
#include "thread_ranks.h"

#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/error.h>
#include <daug/train/losses_csv.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

using namespace daug;
using daug::testing::expect_error_contains;

namespace {

// Test doubles with the real math (the real plugins live in other MODULE libraries; each exports the same
// manifest symbol, so they cannot be linked into one test binary). End-to-end runs: configs/smoke/clip_nih.toml.
struct Channel0Composer final : HeatmapComposer {
  at::Tensor compose(const at::Tensor& image, const std::vector<at::Tensor>& maps) override {
    auto out = image.clone();
    out.select(1, 0).copy_((clip::minmax_uint8(maps.at(0)).squeeze(1) - clip::kClipMean[0]) / clip::kClipStd[0]);
    return out;
  }
  std::string describe() const override { return "channel0"; }
};
struct HybridLoss final : Criterion {
  CriterionOutput compute(const CriterionInput& in) override {
    auto s = at::scalar_tensor(std::exp(4.602));
    auto a = clip::clip_loss(in.image_emb, in.text_emb, s), b = clip::class_bce_loss(in.image_emb, in.class_emb, in.labels, s);
    return {0.7 * a + 0.3 * b, {{"clip", a.detach()}, {"i2c_bce", b.detach()}}};
  }
  bool needs_class_embeddings() const override { return true; }
  std::string describe() const override { return "hybrid"; }
};

struct Fixture {
  daug::testing::TempDir tmp;
  std::shared_ptr<daug::testing::FakeSource> src;
  std::filesystem::path heat_dir;
  Fixture() {
    at::set_num_threads(1);
    at::manual_seed(7);
    src = std::make_shared<daug::testing::FakeSource>(tmp / "images", 12, 4);
    heat_dir = tmp / "heatmaps";
  }
  std::shared_ptr<plugins::TrainClipStage> stage(std::shared_ptr<Backbone> bb, plugins::TrainClipOptions o,
                                                  bool with_composer = true) {
    std::shared_ptr<HeatmapComposer> comp;
    if (with_composer) comp = std::make_shared<Channel0Composer>();
    else o.composer = "";
    auto crit = std::make_shared<HybridLoss>();
    return std::make_shared<plugins::TrainClipStage>(o, src, bb, crit, comp, "cpu", 0);
  }
  void run(plugins::TrainClipStage& st, const std::filesystem::path& out, bool strict = false) {
    daug::testing::run_stage(st, out, daug::testing::single_artifact("heatmaps", artifacts::kHeatmapsIndex,
                                                                     heat_dir / "index.csv"), strict);
  }
  static plugins::TrainClipOptions small() {
    plugins::TrainClipOptions o;
    o.epochs = 2;
    o.batch_size = 4;
    o.lr = 1e-2;
    o.warmup_steps = 1;
    o.checkpoint_every = 1;
    return o;
  }
};

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(TrainClip, TrainsWritesCheckpointAndLosses) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir);
  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  auto before = bb->img_->weight.clone();
  auto st = f.stage(bb, Fixture::small());
  f.run(*st, f.tmp / "out");
  // train+val = 8 images, batch 4, drop_last → 2 steps/epoch × 2 epochs
  auto csv = read(f.tmp / "out" / "losses.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5) << csv;
  EXPECT_EQ(csv.rfind("step,epoch,lr,loss,grad_norm,elapsed_s,clip,i2c_bce\n", 0), 0u) << csv;
  EXPECT_NE(csv.find("\n0,0,0,"), std::string::npos) << csv;  // HF schedule: the first update has lr 0
  auto ck = load_safetensors(f.tmp / "out" / "checkpoint.safetensors");
  EXPECT_EQ(ck.metadata.at("step"), "4");
  EXPECT_EQ(ck.metadata.at("complete"), "true");
  EXPECT_NE(ck.metadata.at("prompts").find("A chest-xray image of lung opacity\""), std::string::npos);
  bool has_model = false;
  for (auto& [k, t] : ck.tensors) has_model |= k == "model.visual.proj.weight";
  EXPECT_TRUE(has_model);
  EXPECT_GT((bb->img_->weight - before).abs().max().item<double>(), 0.0);
  EXPECT_NE(st->summary(f.tmp / "out").find("4 steps"), std::string::npos);
}

TEST(TrainClip, ResumeAfterCrashMatchesUninterruptedRun) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir);
  auto a = std::make_shared<daug::testing::FakeBackbone>();
  f.run(*f.stage(a, Fixture::small()), f.tmp / "a");

  auto b1 = std::make_shared<daug::testing::FakeBackbone>();
  b1->fail_after_images = 2;  // crashes during step 3
  EXPECT_THROW(f.run(*f.stage(b1, Fixture::small()), f.tmp / "b"), daug::Error);
  EXPECT_EQ(load_safetensors(f.tmp / "b" / "checkpoint.safetensors").metadata.at("step"), "2");
  auto b2 = std::make_shared<daug::testing::FakeBackbone>();  // fresh process: same init, resumes at step 2
  f.run(*f.stage(b2, Fixture::small()), f.tmp / "b");
  EXPECT_EQ(b2->image_calls, 2);  // only steps 3 and 4 ran
  EXPECT_LT((a->img_->weight - b2->img_->weight).abs().max().item<double>(), 1e-6);
  EXPECT_LT((a->emb_->weight - b2->emb_->weight).abs().max().item<double>(), 1e-6);
  for (const char* c : {"step", "epoch", "lr", "loss", "grad_norm", "clip", "i2c_bce"})  // all but elapsed_s
    EXPECT_EQ(train::read_column(f.tmp / "a" / "losses.csv", c), train::read_column(f.tmp / "b" / "losses.csv", c)) << c;
}

TEST(TrainClip, MissingHeatmapsAreReportedOrSkipped) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir, "_+nof.npy", {"img0", "img2"});
  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  expect_error_contains([&] { f.run(*f.stage(bb, Fixture::small()), f.tmp / "o1"); },
                        {"2 of 8 images have no heatmap", "img0_+nof.npy", "on_missing_heatmap"});
  auto o = Fixture::small();
  o.heatmaps.on_missing_heatmap = "skip";
  f.run(*f.stage(bb, o), f.tmp / "o2");  // 6 images left → 1 step/epoch
  EXPECT_EQ(load_safetensors(f.tmp / "o2" / "checkpoint.safetensors").metadata.at("step"), "2");
  expect_error_contains([&] { f.run(*f.stage(bb, o), f.tmp / "o3", /*strict=*/true); }, {"--strict"});
}

TEST(TrainClip, BaselineNeedsNoHeatmapsAndRejectsTinySplits) {
  Fixture f;  // no heatmaps written at all
  auto bb = std::make_shared<daug::testing::FakeBackbone>();
  auto o = Fixture::small();
  o.epochs = 1;
  auto st = f.stage(bb, o, /*with_composer=*/false);
  f.run(*st, f.tmp / "base");
  EXPECT_EQ(load_safetensors(f.tmp / "base" / "checkpoint.safetensors").metadata.at("composer"), "none");
  o.batch_size = 64;
  expect_error_contains([&] { f.run(*f.stage(bb, o, false), f.tmp / "x"); },
                        {"8 usable images, fewer than batch_size = 64"});
  o.prompts = {"only one"};
  expect_error_contains([&] { f.stage(bb, o, false); }, {"14 class prompts"});
}

TEST(TrainClip, ContrastiveGroupSplitsTheLossNotTheStep) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir);
  auto o = Fixture::small();
  auto run_with = [&](int64_t group, const char* dir) {
    o.contrastive_group = group;
    f.run(*f.stage(std::make_shared<daug::testing::FakeBackbone>(), o), f.tmp / dir);
    return train::read_column(f.tmp / dir / "losses.csv", "loss");
  };
  const auto whole = run_with(0, "g0"), same = run_with(4, "g4"), pairs = run_with(2, "g2");
  EXPECT_EQ(whole, same);           // one group of the whole batch is the plain loss
  ASSERT_EQ(pairs.size(), 4u);      // still 2 optimizer steps/epoch of 4 pairs: the step count does not change
  EXPECT_NE(whole.front(), pairs.front());  // 2 groups of 2: each CE row sees 1 negative instead of 3
  EXPECT_NE(read(f.tmp / "g2" / "summary.md").find("batch 4 in contrastive groups of 2"), std::string::npos);
  o.contrastive_group = 3;
  expect_error_contains([&] { f.stage(std::make_shared<daug::testing::FakeBackbone>(), o); },
                        {"[train_clip].contrastive_group = 3", "divisor", "batch_size = 4"});
}

// accumulate = k with contrastive groups inside the micro-batches is the unsplit step (the loss is the mean of the
// same per-group losses, the gradient their weighted sum): the losses agree to float rounding. Without such groups
// the micro-batched contrastive loss would be a different loss: refused with the option names.
TEST(TrainClip, AccumulateEqualsTheUnsplitStepWithGroupsInsideMicroBatches) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir);
  auto o = Fixture::small();
  o.contrastive_group = 2;
  auto run_with = [&](int64_t k, const char* dir) {
    o.accumulate = k;
    f.run(*f.stage(std::make_shared<daug::testing::FakeBackbone>(), o), f.tmp / dir);
    return train::read_column(f.tmp / dir / "losses.csv", "loss");
  };
  const auto one = run_with(1, "k1"), two = run_with(2, "k2");
  ASSERT_EQ(one.size(), 4u);
  ASSERT_EQ(two.size(), 4u);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_NEAR(two[i], one[i], 1e-5 * std::abs(one[i])) << i;
  o.accumulate = 2;
  o.contrastive_group = 0;
  expect_error_contains(
      [&] { f.stage(std::make_shared<daug::testing::FakeBackbone>(), o); },
      {"[train_clip].accumulate = 2", "micro-batches of 2", "contrastive_group = 0", "e.g. contrastive_group = 2"});
  o.contrastive_group = 4;
  expect_error_contains([&] { f.stage(std::make_shared<daug::testing::FakeBackbone>(), o); },
                        {"contrastive_group = 4 must divide 2"});
  o.accumulate = 3;
  expect_error_contains([&] { f.stage(std::make_shared<daug::testing::FakeBackbone>(), o); },
                        {"[train_clip].accumulate = 3 must divide batch_size = 4"});
}

namespace {
double max_rel_state_diff(Backbone& a, Backbone& b) {
  double worst = 0;
  auto sa = a.state(), sb = b.state();
  for (size_t i = 0; i < sa.size(); ++i) {
    const double scale = sb[i].second.abs().max().item<double>();
    worst = std::max(worst, (sa[i].second - sb[i].second).abs().max().item<double>() / std::max(scale, 1e-30));
  }
  return worst;
}
bool states_equal(Backbone& a, Backbone& b) {
  auto sa = a.state(), sb = b.state();
  for (size_t i = 0; i < sa.size(); ++i)
    if (!sa[i].second.equal(sb[i].second)) return false;
  return true;
}
}  // namespace

// Two ranks (threads standing in for processes: daug::testing::run_thread_ranks) with batch_size = 4 = 2 per rank:
// gather = "local" with contrastive_group = 2 (per-rank groups, the released per-GPU loss) trains the model of one
// process with contrastive_group = 2; gather = "global" (embeddings all-gathered with gradient, the loss over the
// whole batch) trains the model of one process with one contrastive group of 4. Every rank ends with bitwise the
// same weights; only rank 0 writes. The process runs are tests/ddp.
TEST(TrainClip, TwoRanksTrainTheModelOfOneProcessLocallyOrWithGlobalGather) {
  Fixture f;
  f.src->write_heatmaps(f.heat_dir);
  for (const std::string gather : {"local", "global"}) {
    auto o = Fixture::small();
    o.gather = gather;
    o.contrastive_group = gather == "local" ? 2 : 0;
    auto one = std::make_shared<daug::testing::FakeBackbone>();
    f.run(*f.stage(one, o), f.tmp / ("one_" + gather));
    std::vector<std::shared_ptr<daug::testing::FakeBackbone>> ranks{std::make_shared<daug::testing::FakeBackbone>(),
                                                                    std::make_shared<daug::testing::FakeBackbone>()};
    daug::testing::run_thread_ranks(
        2, [&](int r) { f.run(*f.stage(ranks[static_cast<size_t>(r)], o), f.tmp / (gather + std::to_string(r))); });
    const double rel = max_rel_state_diff(*ranks[0], *one);
    std::printf("[ measured ] train_clip gather=%s, 2 thread-ranks vs 1 process: max relative weight difference %.3g\n",
                gather.c_str(), rel);
    EXPECT_LT(rel, 1e-5) << gather;
    EXPECT_TRUE(states_equal(*ranks[0], *ranks[1])) << gather;
    daug::testing::FakeBackbone fresh;
    EXPECT_GT(max_rel_state_diff(*ranks[0], fresh), 1e-3) << gather;  // it trained
    const auto l1 = train::read_column(f.tmp / ("one_" + gather) / "losses.csv", "loss");
    const auto l2 = train::read_column(f.tmp / (gather + "0") / "losses.csv", "loss");
    ASSERT_EQ(l1.size(), l2.size());
    for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << gather << " " << i;
    EXPECT_FALSE(std::filesystem::exists(f.tmp / (gather + "1") / "losses.csv"));
    EXPECT_FALSE(std::filesystem::exists(f.tmp / (gather + "1") / "checkpoint.safetensors"));
    EXPECT_TRUE(std::filesystem::exists(f.tmp / (gather + "0") / "summary.md"));
  }
}

// Under 2 ranks: per-rank groups must fit the rank's micro-batch (batch_size / ranks / accumulate); a whole-batch
// group (contrastive_group = 0) cannot be split without changing the loss, unless gathered; gathering needs
// accumulate = 1 and as many pairs on every rank. In one process gather = "global" changes nothing.
TEST(TrainClip, RankSplitsOfTheContrastiveLossAreCheckedAtConstruction) {
  Fixture f;
  auto make = [&](plugins::TrainClipOptions o) {
    daug::testing::run_thread_ranks(2, [&](int) { f.stage(std::make_shared<daug::testing::FakeBackbone>(), o); });
  };
  auto o = Fixture::small();
  o.batch_size = 8;
  o.contrastive_group = 0;
  expect_error_contains([&] { make(o); }, {"[train_clip].accumulate = 1 on 2 ranks", "micro-batches of 4",
                                           "contrastive_group = 0", "e.g. contrastive_group = 4", "gather"});
  o.contrastive_group = 8;
  expect_error_contains([&] { make(o); }, {"contrastive_group = 8 must divide 4"});
  o.contrastive_group = 2;
  o.accumulate = 2;
  make(o);  // 8 = 2 ranks × 2 micro-batches × 1 group of 2
  o.accumulate = 4;
  expect_error_contains([&] { make(o); }, {"contrastive_group = 2 must divide 1"});
  o.gather = "global";
  expect_error_contains([&] { make(o); }, {"gather = \"global\"", "accumulate = 4"});
  o.accumulate = 1;
  o.contrastive_group = 0;
  make(o);
  o.batch_size = 7;
  expect_error_contains([&] { make(o); }, {"batch_size = 7 must be a multiple of 2 ranks"});
  o.batch_size = 8;
  o.drop_last = false;
  expect_error_contains([&] { make(o); }, {"drop_last = true"});
  o.drop_last = true;
  f.stage(std::make_shared<daug::testing::FakeBackbone>(), o);  // one process: no constraint
}
