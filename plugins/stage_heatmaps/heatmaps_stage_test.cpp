// heatmaps stage: file naming, values against an independent recomputation, resume, shards, target errors,
// weight loading from upstream stage directories.
#include "heatmaps_stage.h"

#include "fakes/sequential_ranks.h"
#include "fakes/stage_fakes.h"

#include <daug/data/npy.h>
#include <daug/stages/common.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

using namespace daug;
using namespace daug::plugins;
using daug::stages::fakes::labels_with;

namespace {

struct Fixture : stages::fakes::StageFixture<HeatmapsStage> {
  daug::testing::TempDir upstream;
  std::shared_ptr<stages::fakes::FakeClassifier> clf = std::make_shared<stages::fakes::FakeClassifier>();
  std::shared_ptr<stages::fakes::FakeGuidance> guid = std::make_shared<stages::fakes::FakeGuidance>(clf);

  explicit Fixture(int n = 5) {
    upstream_root = upstream.path();
    stages::fakes::FakeItems items;
    const char* splits[] = {"train", "train", "val", "test", "test", "train", "test"};
    for (int i = 0; i < n; ++i)
      items.emplace_back("img" + std::to_string(i), splits[i % 7],
                         i % 2 ? labels_with({"Cardiomegaly"}) : labels_with({"No Finding"}));
    add_data(items);
    build.add("classifier", clf);
    build.add("guidance", guid);
    build.add("composer", std::make_shared<stages::fakes::FakeComposer>());
    // Upstream training stages: only their declared artifacts matter here (files under `upstream`).
    build.add("train_diffusion", std::make_shared<daug::testing::StubStage>(std::vector<Artifact>{
                                     {artifacts::kWeights, "model.safetensors", ""},
                                     {artifacts::kWeightsEma, "ema.safetensors", ""}}));
    build.add("train_classifier", std::make_shared<daug::testing::StubStage>(
                                      std::vector<Artifact>{{artifacts::kWeights, "model.safetensors", ""}}));
  }
};

HeatmapsOptions base_options() {
  HeatmapsOptions o;
  o.diffusion_stage = "";
  o.classifier_stage = "";
  o.batch_size = 2;
  o.overlays = 2;
  o.log_every_s = 1e9;
  o.noise_level = 50;  // the fake generator has T = 100
  return o;
}

}  // namespace

TEST(HeatmapsStage, WritesAuthorsNamingWithIndependentlyRecomputedValues) {
  Fixture f;
  auto stage_ptr = f.run(base_options());
  auto& stage = *stage_ptr;
  stages::ImagePrep prep{{1, 8, 8}, data::Filter::bilinear, stages::Normalize::minmax};
  for (const auto& s : f.src->samples()) {
    auto file = f.out / (s.id + "_+nof.npy");
    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    at::Tensor h = data::load_npy(file);
    ASSERT_EQ(h.sizes(), (at::IntArrayRef{8, 8}));
    EXPECT_EQ(h.scalar_type(), at::kFloat);
    // x̂ = 1 − x + 0.1·∇log softmax[0]; heat = |minmax(x) − minmax(x̂)|, recomputed here without the stage.
    at::Tensor x = stages::load_image(s, prep).unsqueeze(0);
    at::Tensor t = at::full({1}, int64_t{50}, at::kLong);
    at::Tensor g;
    {
      at::AutoGradMode on(true);
      at::Tensor xv = x.detach().requires_grad_(true);
      at::Tensor lp = at::log_softmax(f.clf->logits(xv, t), 1).select(1, 0).sum();
      g = torch::autograd::grad({lp}, {xv})[0];
    }
    at::Tensor xhat = 1.0 - x + 0.1 * g;
    at::Tensor expect = (data::minmax(x) - data::minmax(xhat)).abs()[0][0];
    EXPECT_LT(daug::testing::max_abs_diff(h, expect), 1e-5) << s.id;
  }
  // Every request: target index 0 (No Finding), direction +1, label 1 (healthy), L = 50, DDIM inversion.
  ASSERT_EQ(f.gen->requests.size(), 3u);  // 5 images in batches of 2
  for (const auto& r : f.gen->requests) {
    EXPECT_EQ(r.target.max().item<int64_t>(), 0);
    EXPECT_EQ(r.direction, 1);
    EXPECT_EQ(r.label.min().item<int64_t>(), 1);
    EXPECT_EQ(r.noise_level, 50);
    EXPECT_EQ(r.encode, EncodeMode::ddim_inversion);
  }
  EXPECT_FALSE(f.gen->training);
  EXPECT_TRUE(std::filesystem::exists(f.out / "overlays" / "img0_+nof.png"));
  EXPECT_TRUE(std::filesystem::exists(f.out / "overlays" / "img1_+nof.png"));
  // input | translated | heatmap, 8×8 each, enlarged ×32 to the default overlay_size of 256 pixels.
  EXPECT_EQ(data::load_gray(f.out / "overlays" / "img0_+nof.png").sizes(), (at::IntArrayRef{1, 256, 768}));
  EXPECT_FALSE(std::filesystem::exists(f.out / "overlays" / "img2_+nof.png"));
  EXPECT_NE(stage.summary(f.out.path()).find("5 heatmaps"), std::string::npos) << stage.summary(f.out.path());
  EXPECT_NE(stages::read_text_if_exists(f.out / "index.csv").find("img3,test,img3_+nof.npy"), std::string::npos);
}

TEST(HeatmapsStage, ResumeSkipsFinishedImages) {
  Fixture f;
  at::Tensor sentinel = at::full({8, 8}, 42.0f);  // a valid finished heatmap: float32, the generator's 8×8
  // img2 and img3 form the second batch of 2 (batches are fixed groups of the selection).
  data::save_npy(f.out / "img2_+nof.npy", sentinel);
  data::save_npy(f.out / "img3_+nof.npy", sentinel);
  auto stage_ptr = f.make(base_options());
  auto& stage = *stage_ptr;
  auto ctx = f.ctx(stage);
  stage.run(ctx);
  int64_t translated = 0;
  for (int64_t b : f.gen->batch_sizes) translated += b;
  EXPECT_EQ(translated, 3);  // img0, img1, img4
  EXPECT_EQ(daug::testing::max_abs_diff(data::load_npy(f.out / "img2_+nof.npy"), sentinel), 0.0);
  // A second run has nothing left to do.
  f.gen->batch_sizes.clear();
  stage.run(ctx);
  EXPECT_TRUE(f.gen->batch_sizes.empty());
}

namespace {
std::string bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::filesystem::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << b;
}
}  // namespace

TEST(HeatmapsStage, ResumeRedoesOutputsThatFailVerification) {
  // The uninterrupted run is the reference.
  Fixture f;
  auto stage_ptr = f.make(base_options());
  auto& stage = *stage_ptr;
  auto ctx = f.ctx(stage);
  stage.run(ctx);
  std::map<std::string, std::string> ref;
  for (const auto& e : std::filesystem::recursive_directory_iterator(f.out.path()))
    if (e.path().extension() == ".npy" || e.path().extension() == ".png") ref[e.path().string()] = bytes_of(e.path());
  ASSERT_EQ(ref.size(), 7u);  // 5 heatmaps + 2 overlays
  // What a kill or a full disk leaves: a heatmap cut to 100 bytes (the review's probe; inside the 128-byte header),
  // one cut in its payload, an overlay cut in the middle, and an outside file of the wrong shape under a heatmap's
  // name.
  const auto cut = f.out / "img1_+nof.npy";
  write_bytes(cut, ref[cut.string()].substr(0, 100));
  const auto cut_payload = f.out / "img4_+nof.npy";
  write_bytes(cut_payload, ref[cut_payload.string()].substr(0, 200));
  EXPECT_NE(HeatmapsStage::check_finished_heatmap(cut_payload, {8, 8}).find("truncated .npy payload"),
            std::string::npos);
  const auto png = f.out / "overlays" / "img0_+nof.png";
  write_bytes(png, ref[png.string()].substr(0, ref[png.string()].size() / 2));
  data::save_npy(f.out / "img3_+nof.npy", at::zeros({2, 2}));
  EXPECT_NE(HeatmapsStage::check_finished_heatmap(cut, {8, 8}).find("truncated .npy header"), std::string::npos);
  EXPECT_NE(HeatmapsStage::check_finished_overlay(png).find("not a complete PNG"), std::string::npos);
  EXPECT_NE(HeatmapsStage::check_finished_heatmap(f.out / "img3_+nof.npy", {8, 8}).find("holds Float 2x2"),
            std::string::npos)
      << HeatmapsStage::check_finished_heatmap(f.out / "img3_+nof.npy", {8, 8});
  EXPECT_EQ(HeatmapsStage::check_finished_heatmap(f.out / "img2_+nof.npy", {8, 8}), "");

  f.gen->batch_sizes.clear();
  stage.run(ctx);  // the resume
  int64_t translated = 0;
  for (int64_t b : f.gen->batch_sizes) translated += b;
  // img0 (its overlay), img1, img3, img4 are redone; batches stay the fixed groups {0,1} {2,3} {4} of the
  // uninterrupted run, so img2 is translated again with img3 but its good file is kept untouched.
  EXPECT_EQ(translated, 5);
  for (const auto& [file, bytes] : ref) EXPECT_EQ(bytes_of(file), bytes) << file;
  const std::string metrics = stages::read_text_if_exists(f.out / "metrics.json");
  EXPECT_NE(metrics.find("\"found_done\": 1, \"redone_bad\": 4"), std::string::npos) << metrics;
}

TEST(HeatmapsStage, ShardSelectsIndexModN) {
  Fixture f(7);
  f.run(base_options(), 1, 3);
  std::set<std::string> written;
  for (const auto& e : std::filesystem::directory_iterator(f.out.path()))
    if (e.path().extension() == ".npy") written.insert(e.path().filename().string());
  EXPECT_EQ(written, (std::set<std::string>{"img1_+nof.npy", "img4_+nof.npy"}));
  EXPECT_TRUE(std::filesystem::exists(f.out / "summary_shard1of3.md"));
}

TEST(HeatmapsStage, SplitDirectionTagAndUnconditionalLabel) {
  Fixture f;
  auto o = base_options();
  o.split = "test";
  o.direction = Direction::away;
  o.tag = "car";
  o.target = "Enlarged Cardiomediastinum+Cardiomegaly";
  o.label = -1;
  o.encode = EncodeMode::q_sample;
  auto names = f.clf->class_names();
  o.target = names.at(1);
  f.run(o);
  EXPECT_TRUE(std::filesystem::exists(f.out / "img3_-car.npy"));
  EXPECT_TRUE(std::filesystem::exists(f.out / "img4_-car.npy"));
  EXPECT_FALSE(std::filesystem::exists(f.out / "img0_-car.npy"));
  ASSERT_FALSE(f.gen->requests.empty());
  EXPECT_FALSE(f.gen->requests[0].label.defined());
  EXPECT_EQ(f.gen->requests[0].direction, -1);
  EXPECT_EQ(f.gen->requests[0].target[0].item<int64_t>(), 1);
  EXPECT_EQ(f.gen->requests[0].encode, EncodeMode::q_sample);
  EXPECT_EQ(f.guid->directions.at(0), -1);
}

TEST(HeatmapsStage, UnknownTargetListsTheValidSuperClasses) {
  Fixture f;
  auto o = base_options();
  o.target = "Cardiomegally";
  daug::testing::expect_error_contains([&] { f.make(o); },
                                 {"'Cardiomegally'", "valid:", "No Finding", "Support Devices"});
}

TEST(HeatmapsStage, BadTagAndGuidanceWithoutClassifierAreConfigErrors) {
  Fixture f;
  auto o = base_options();
  o.tag = "a/b";
  daug::testing::expect_error_contains([&] { f.make(o); }, {"[heatmaps].tag", "a/b"});
  o = base_options();
  o.classifier = "";
  daug::testing::expect_error_contains([&] { f.make(o); }, {"classifier"});
}

TEST(HeatmapsStage, ChoiceOptionsKeepTheirTomlNames) {
  // The enum options are read by name; a wrong name is rejected by the SDK reader (tests/core/options_test.cpp).
  std::map<std::string, std::pair<std::string, std::string>> want = {
      {"generator_weights", {"'model'", "one of: ema, model"}},  // released: raw weights
      {"encode", {"'ddim'", "one of: ddim, qsample"}},
      {"direction", {"'+'", "one of: +, -"}},
      {"resize_filter", {"'bilinear'", "one of: bilinear, bicubic, area, nearest"}},
      {"normalize", {"'minmax'", "one of: minmax, minmax_pm1, none"}}};
  for (const auto& info : daug::describe_options<HeatmapsOptions>()) {
    auto it = want.find(info.key);
    if (it == want.end()) continue;
    EXPECT_EQ(info.default_value, it->second.first) << info.key;
    EXPECT_EQ(info.constraint, it->second.second) << info.key;
    want.erase(it);
  }
  EXPECT_TRUE(want.empty());
  auto o = base_options();
  o.direction = Direction::away;
  o.encode = EncodeMode::q_sample;
  o.generator_weights = GeneratorWeights::ema;
  const std::string dump = daug::dump_options(o);
  for (const char* line : {"direction = '-'\n", "encode = 'qsample'\n", "generator_weights = 'ema'\n"})
    EXPECT_NE(dump.find(line), std::string::npos) << line << " in\n" << dump;
  Fixture f;
  const auto described = f.make(o)->describe();
  EXPECT_NE(described.find("target=-No Finding"), std::string::npos) << described;
}

TEST(HeatmapsStage, LoadsTrainedWeightsFromUpstreamStages) {
  Fixture f;
  std::filesystem::create_directories(f.upstream / "train_diffusion");
  std::filesystem::create_directories(f.upstream / "train_classifier");
  save_safetensors(f.upstream / "train_diffusion" / "ema.safetensors",
                   {{"a", at::full({2}, 3.0f)}, {"b", at::full({1}, -1.0f)}});
  save_safetensors(f.upstream / "train_diffusion" / "model.safetensors",
                   {{"a", at::full({2}, 5.0f)}, {"b", at::full({1}, -1.0f)}});
  save_safetensors(f.upstream / "train_classifier" / "model.safetensors",
                   {{"w", at::full({7}, 2.0f)}, {"c", at::arange(7, at::kFloat)}});
  auto o = base_options();
  o.diffusion_stage = "train_diffusion";
  o.classifier_stage = "train_classifier";
  o.limit = 1;
  auto stage_ptr = f.make(o);
  auto& stage = *stage_ptr;
  auto ctx = f.ctx(stage);
  stage.run(ctx);
  EXPECT_EQ(f.gen->a_[0].item<float>(), 5.0f);  // the raw weights by default, as the released sampler
  EXPECT_EQ(f.clf->c_[6].item<float>(), 6.0f);
  EXPECT_TRUE(std::filesystem::exists(f.out / "img0_+nof.npy"));
  EXPECT_FALSE(std::filesystem::exists(f.out / "img1_+nof.npy"));  // limit = 1

  // Missing upstream weights: a DataError naming the file.
  Fixture g;
  auto o2 = base_options();
  o2.diffusion_stage = "nowhere";
  g.build.add("nowhere", std::make_shared<daug::testing::StubStage>(
                             std::vector<Artifact>{{artifacts::kWeights, "model.safetensors", ""},
                                                   {artifacts::kWeightsEma, "ema.safetensors", ""}}));
  auto s2_ptr = g.make(o2);
  auto& s2 = *s2_ptr;
  auto ctx2 = g.ctx(s2);
  daug::testing::expect_error_contains([&] { s2.run(ctx2); }, {"nowhere", "model.safetensors", "do not exist"});
}

TEST(HeatmapsStage, CreateRequestsEveryTableThatShapesTheOutput) {
  Fixture f;
  HeatmapsOptions o;
  o.noise_level = 50;
  f.make(o);
  const auto& d = f.build.requests();
  std::set<std::string> got(d.begin(), d.end());
  EXPECT_EQ(got, (std::set<std::string>{"generator", "classifier", "guidance", "composer", "data", "train_diffusion",
                                        "train_classifier"}));
  Fixture g;
  HeatmapsOptions unguided = o;
  unguided.guidance = "";
  g.make(unguided);
  const auto& d2 = g.build.requests();
  EXPECT_EQ(std::count(d2.begin(), d2.end(), "classifier"), 0);
  EXPECT_EQ(std::count(d2.begin(), d2.end(), "train_classifier"), 0);
}

TEST(HeatmapsStage, NoiseLevelMustBeBelowT) {
  Fixture f;
  auto o = base_options();
  o.noise_level = 100;
  daug::testing::expect_error_contains([&] { f.make(o); }, {"noise_level must be < T = 100", "100"});
}

namespace {

std::map<std::string, std::string> output_bytes(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const auto ext = e.path().extension();
    if (!e.is_regular_file() || (ext != ".npy" && ext != ".png" && ext != ".csv")) continue;
    std::ifstream f(e.path(), std::ios::binary);
    out[std::filesystem::relative(e.path(), dir).string()] =
        std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

}  // namespace

// Issue 10: loader workers decode the next groups while one is translated; the files must not change.
TEST(HeatmapsStage, LoaderWorkersWriteByteIdenticalHeatmaps) {
  std::map<int64_t, std::map<std::string, std::string>> got;
  for (int64_t workers : {0, 2}) {
    Fixture f(9);  // 5 groups of batch 2
    auto o = base_options();
    o.loader = {workers, 3};
    f.run(o);
    got[workers] = output_bytes(f.out.path());
    // Resume with one heatmap removed: only its group is redone, still the same bytes.
    std::filesystem::remove(f.out / "img4_+nof.npy");
    f.run(o);
    EXPECT_EQ(output_bytes(f.out.path()), got[workers]) << "workers " << workers;
  }
  EXPECT_EQ(std::count_if(got[0].begin(), got[0].end(),
                          [](const auto& kv) { return kv.first.find(".npy") != std::string::npos; }),
            9);
  EXPECT_EQ(got[0], got[2]);
}

TEST(HeatmapsStage, LoaderWorkersReportAnUnreadableImageAsTheSynchronousPathDoes) {
  std::map<int64_t, std::string> msg;
  for (int64_t workers : {0, 2}) {
    Fixture f(9);
    daug::testing::write_text(f.images / "img6.png", "not a png");
    auto o = base_options();
    o.loader = {workers, 3};
    try {
      f.run(o);
      ADD_FAILURE() << "a broken image must fail the stage";
    } catch (const DataError& e) {
      msg[workers] = e.what();
      const std::string dir = f.images.path().string();  // each fixture has its own directory
      if (auto at = msg[workers].find(dir); at != std::string::npos) msg[workers].replace(at, dir.size(), "<dir>");
    }
    // The groups before the broken one were written.
    EXPECT_TRUE(std::filesystem::exists(f.out / "img5_+nof.npy")) << "workers " << workers;
  }
  EXPECT_NE(msg[0].find("<dir>/img6.png"), std::string::npos) << msg[0];
  EXPECT_EQ(msg[0], msg[2]);
}

// Issue 11: under a distributed launch rank r takes the groups g % world == r of the single-process batches.
namespace {

/// The fake generator plus seeded noise: a file is right only if its group got the batch and per-batch seed of the
/// single-process run.
struct NoisyGenerator : stages::fakes::FakeGenerator {
  at::Tensor translate(const TranslateRequest& r) override {
    return FakeGenerator::translate(r) + 0.01 * at::randn_like(r.x0);
  }
};

struct DistFixture : Fixture {
  explicit DistFixture(int n) : Fixture(n) {
    gen = std::make_shared<NoisyGenerator>();
    build.add("generator", gen);
  }
  /// Runs the stage as rank `rank` of `ranks` (a fresh stage object, as each process builds its own).
  void run_rank(const daug::testing::SequentialRanks& ranks, int rank, const HeatmapsOptions& o) {
    const daug::testing::SequentialRanks::Scope scope(ranks, rank);
    gen->batch_sizes.clear();
    run(o);
  }
  std::set<std::string> heatmaps() const {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(this->out.path()))
      if (e.path().extension() == ".npy") out.insert(e.path().filename().string());
    return out;
  }
};

}  // namespace

TEST(HeatmapsStage, DistributedRanksTakeWholeGroupsAndMatchOneProcessByteForByte) {
  DistFixture one(9);  // groups of 2: {0,1} {2,3} {4,5} {6,7} {8}
  one.run(base_options());
  const auto ref = output_bytes(one.out.path());
  ASSERT_EQ(ref.size(), 12u);  // 9 heatmaps, 2 overlays, index.csv
  for (int world : {2, 3, 7}) {  // 7 ranks for 5 groups: ranks 5 and 6 have nothing to do but meet the others
    DistFixture f(9);
    daug::testing::SequentialRanks ranks(world);
    std::vector<std::set<std::string>> slices;
    for (int r = world - 1; r >= 0; --r) {
      const auto before = f.heatmaps();
      f.run_rank(ranks, r, base_options());
      std::set<std::string> made;
      for (const auto& h : f.heatmaps())
        if (!before.count(h)) made.insert(h);
      slices.push_back(made);
      if (r > 0) {  // only its own files: rank 0 writes the index, the summary and the metrics
        EXPECT_FALSE(std::filesystem::exists(f.out / "index.csv")) << "rank " << r;
        EXPECT_FALSE(std::filesystem::exists(f.out / "summary.md")) << "rank " << r;
        EXPECT_FALSE(std::filesystem::exists(f.out / "metrics.json")) << "rank " << r;
      }
      EXPECT_EQ(ranks.barriers(r), std::vector<std::string>{"heatmaps: every rank's slice written"});
    }
    if (world == 2) {  // rank 1 (run first) took groups 1 and 3; rank 0 groups 0, 2, 4
      EXPECT_EQ(slices[0], (std::set<std::string>{"img2_+nof.npy", "img3_+nof.npy", "img6_+nof.npy", "img7_+nof.npy"}));
      EXPECT_EQ(slices[1], (std::set<std::string>{"img0_+nof.npy", "img1_+nof.npy", "img4_+nof.npy", "img5_+nof.npy",
                                                  "img8_+nof.npy"}));
    } else if (world == 3) {  // rank 2: group 2; rank 1: groups 1 and 4; rank 0: groups 0 and 3
      EXPECT_EQ(slices[0], (std::set<std::string>{"img4_+nof.npy", "img5_+nof.npy"}));
      EXPECT_EQ(slices[1], (std::set<std::string>{"img2_+nof.npy", "img3_+nof.npy", "img8_+nof.npy"}));
      EXPECT_EQ(slices[2], (std::set<std::string>{"img0_+nof.npy", "img1_+nof.npy", "img6_+nof.npy", "img7_+nof.npy"}));
    }
    EXPECT_EQ(output_bytes(f.out.path()), ref) << world << " ranks";
    const std::string metrics = stages::read_text_if_exists(f.out / "metrics.json");
    EXPECT_NE(metrics.find("\"images\": 9, \"made\": 9, \"found_done\": 0"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find(
                  fmt::format("\"ranks\": {}, \"per_rank\": [{{\"rank\": 0, \"made\": {}", world, world == 2 ? 5 : world == 3 ? 4 : 2)),
              std::string::npos)
        << metrics;
    EXPECT_NE(stages::read_text_if_exists(f.out / "summary.md").find(fmt::format("Over {} ranks (rank 0:", world)),
              std::string::npos);
  }
}

TEST(HeatmapsStage, DistributedRankZeroNamesTheRankOfAMissingOrBadHeatmap) {
  DistFixture f(9);
  daug::testing::SequentialRanks ranks(2);
  f.run_rank(ranks, 1, base_options());
  std::filesystem::remove(f.out / "img6_+nof.npy");  // rank 1's group 3, gone before rank 0 checks
  try {
    f.run_rank(ranks, 0, base_options());
    ADD_FAILURE() << "rank 0 must refuse to finish the stage with a missing heatmap";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    for (const char* part : {"1 of 9 selected images", "img6_+nof.npy' is missing", "slice of rank 1", "redoes"})
      EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
  }
  EXPECT_FALSE(std::filesystem::exists(f.out / "index.csv"));
  // A heatmap of the wrong shape is named with its reason.
  f.run_rank(ranks, 1, base_options());
  data::save_npy(f.out / "img3_+nof.npy", at::zeros({2, 2}));
  daug::testing::expect_error_contains([&] { f.run_rank(ranks, 0, base_options()); },
                                       {"img3_+nof.npy", "holds Float 2x2", "slice of rank 1"});
}

TEST(HeatmapsStage, DistributedResumeRedoesOnlyTheRanksDeletedOrCorruptedFiles) {
  DistFixture one(9);
  one.run(base_options());
  const auto ref = output_bytes(one.out.path());
  DistFixture f(9);
  daug::testing::SequentialRanks ranks(2);
  f.run_rank(ranks, 1, base_options());
  f.run_rank(ranks, 0, base_options());
  ASSERT_EQ(output_bytes(f.out.path()), ref);
  // Rank 1's img6 deleted, its img2 cut short, rank 0's img1 overlay cut.
  std::filesystem::remove(f.out / "img6_+nof.npy");
  write_bytes(f.out / "img2_+nof.npy", ref.at("img2_+nof.npy").substr(0, 100));
  write_bytes(f.out / "overlays" / "img1_+nof.png", ref.at("overlays/img1_+nof.png").substr(0, 50));
  f.run_rank(ranks, 1, base_options());
  EXPECT_EQ(f.gen->batch_sizes, (std::vector<int64_t>{2, 2}));  // its groups {2,3} and {6,7}, whole
  f.run_rank(ranks, 0, base_options());
  EXPECT_EQ(f.gen->batch_sizes, (std::vector<int64_t>{2}));  // group {0,1}
  EXPECT_EQ(output_bytes(f.out.path()), ref);
  const std::string metrics = stages::read_text_if_exists(f.out / "metrics.json");
  EXPECT_NE(metrics.find("\"made\": 3, \"found_done\": 6, \"redone_bad\": 2"), std::string::npos) << metrics;
}
