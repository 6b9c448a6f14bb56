// `daug embed` end to end: runs the real CLI binary (dispatching to this Command plugin) on a config that loads a
// tiny clip_vit from a daug checkpoint, and compares its .npy outputs with the same model in-process (the real
// clip_vit plugin, loaded through the core's plugin loader). Preprocessing is checked with constant-colour images,
// whose CLIP-normalised pixels are known in closed form ((v/255 − mean)/std).
#include "embed_command.h"
#include "fakes/sequential_ranks.h"

#include <daug/backbone.h>
#include <daug/checkpoint.h>
#include <daug/core/config_loader.h>
#include <daug/core/plugin_loader.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/train/checkpoint.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <test_support.h>
#include <torch/utils.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>

namespace daug::plugins {
namespace {

constexpr const char* kTinyClip = "[backbone]\nplugin = \"clip_vit\"\npreset = \"tiny\"\nimage_size = 32\ncontext_length = 16\n";

/// A tiny clip_vit built by the real plugin library (random weights from the current torch seed).
std::shared_ptr<Backbone> tiny_clip(testing::TestContext& ctx) {
  static auto* loader = new core::PluginLoader(std::vector<std::filesystem::path>{});  // libraries are never unloaded
  const auto& info = loader->load_library(std::filesystem::path(DAUG_TEST_PLUGIN_DIR) /
                                          "libdaug-plugin-backbone_clip_vit.so");
  auto doc = core::parse_config(kTinyClip, "tiny_clip.toml");
  return std::dynamic_pointer_cast<Backbone>(info.manifest->create(ConfigView(doc, "backbone"), ctx));
}

struct CliResult {
  int code = -1;
  std::string output;
};

CliResult run_cli(const std::string& args) {
  const std::string cmd = std::string("OMP_NUM_THREADS=1 '") + DAUG_CLI_BINARY + "' --plugin-path '" +
                          DAUG_TEST_PLUGIN_DIR + "' " + args + " 2>&1";
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Expects exit status `code` and every needle in the output.
void expect_result(const CliResult& r, int code, std::initializer_list<std::string> needles) {
  EXPECT_EQ(r.code, code) << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << r.output;
}

class ClipEmbedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    torch::manual_seed(3);
    source_ = tiny_clip(ctx_);
    ASSERT_TRUE(source_);
    source_->set_training(false);
    save_safetensors(dir_ / "tiny.safetensors", source_->state());
    testing::write_text(dir_ / "embed.toml", std::string("[run]\ndevice = \"cpu\"\n\n") + kTinyClip +
                                                 "weights = \"" + (dir_ / "tiny.safetensors").string() + "\"\n");
  }
  std::string cfg() const { return "'" + (dir_ / "embed.toml").string() + "'"; }

  testing::TempDir dir_;
  testing::TestContext ctx_;
  std::shared_ptr<Backbone> source_;
};

TEST_F(ClipEmbedCli, WritesEmbeddingsEqualToTheModelInProcess) {
  // A 40x50 RGB image of colour (128, 64, 200)/255 and a 20x20 gray image of 51/255.
  at::Tensor rgb = at::empty({3, 40, 50});
  rgb[0].fill_(128 / 255.0);
  rgb[1].fill_(64 / 255.0);
  rgb[2].fill_(200 / 255.0);
  data::save_png(dir_ / "rgb.png", rgb);
  data::save_png(dir_ / "gray.png", at::full({1, 20, 20}, 51 / 255.0));
  const auto out = dir_ / "out";
  CliResult r = run_cli("embed " + cfg() + " --images '" + (dir_ / "rgb.png").string() + "' '" +
                        (dir_ / "gray.png").string() +
                        "' --texts 'a photo of a cat' 'No acute cardiopulmonary process.' --out '" + out.string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;

  const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, stdv[3] = {0.26862954, 0.26130258, 0.27577711};
  at::Tensor px = at::empty({2, 3, 32, 32});
  const double values[2][3] = {{128, 64, 200}, {51, 51, 51}};
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 3; ++c) px[i][c].fill_((values[i][c] / 255.0 - mean[c]) / stdv[c]);
  at::NoGradGuard ng;
  at::Tensor want_img = source_->encode_image(px);
  at::Tensor tokens = source_->tokenize({"a photo of a cat", "No acute cardiopulmonary process."});
  at::Tensor want_txt = source_->encode_text(tokens);

  at::Tensor img = data::load_npy(out / "image_embeds.npy");
  at::Tensor img_n = data::load_npy(out / "image_embeds_norm.npy");
  at::Tensor txt = data::load_npy(out / "text_embeds.npy");
  at::Tensor txt_n = data::load_npy(out / "text_embeds_norm.npy");
  at::Tensor tok = data::load_npy(out / "tokens.npy");
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{2, 32}));
  EXPECT_LT(testing::max_abs_diff(img, want_img), 1e-4);
  EXPECT_LT(testing::max_abs_diff(txt, want_txt), 1e-5);
  EXPECT_TRUE(tok.equal(tokens));
  EXPECT_LT(testing::max_abs_diff(img_n.norm(2, -1), at::ones({2})), 1e-5);
  EXPECT_LT(testing::max_abs_diff(txt_n, want_txt / want_txt.norm(2, -1, true)), 1e-5);

  // --images-npy with the same pixels, --tokens-npy with the same ids.
  data::save_npy(dir_ / "px.npy", px);
  const auto out2 = dir_ / "out2";
  r = run_cli("embed " + cfg() + " --images-npy '" + (dir_ / "px.npy").string() + "' --tokens-npy '" +
              (out / "tokens.npy").string() + "' --batch-size 1 --out '" + out2.string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_LT(testing::max_abs_diff(data::load_npy(out2 / "image_embeds.npy"), want_img), 1e-5);
  EXPECT_LT(testing::max_abs_diff(data::load_npy(out2 / "text_embeds.npy"), want_txt), 1e-5);
}

// train_clip's checkpoint.safetensors, written by the training toolkit's save_checkpoint as the stage writes it:
// the weights under "model.", optimizer state, the RNG state and step metadata. The README says embed reads it.
TEST_F(ClipEmbedCli, ReadsTheCheckpointsTrainClipWrites) {
  train::CheckpointInfo info;
  info.step = 2;
  info.total_steps = 2;
  info.stage = "train_clip";
  info.complete = true;
  const NamedTensors optim = {{"optim.step", at::tensor(2L)}, {"optim.exp_avg.0", at::ones({3})}};
  train::save_checkpoint(dir_ / "checkpoint.safetensors", info, source_->state(), optim, {}, train::cpu_rng_state());
  testing::write_text(dir_ / "ckpt.toml", std::string("[run]\ndevice = \"cpu\"\n\n") + kTinyClip + "weights = \"" +
                                              (dir_ / "checkpoint.safetensors").string() + "\"\n");
  const at::Tensor px = at::linspace(-1.5, 1.5, 2 * 3 * 32 * 32).reshape({2, 3, 32, 32});
  data::save_npy(dir_ / "px.npy", px);
  const auto out = dir_ / "ckpt_out";
  CliResult r = run_cli("embed '" + (dir_ / "ckpt.toml").string() + "' --images-npy '" + (dir_ / "px.npy").string() +
                        "' --texts 'No acute cardiopulmonary process.' --out '" + out.string() + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  at::NoGradGuard ng;
  EXPECT_LT(testing::max_abs_diff(data::load_npy(out / "image_embeds.npy"), source_->encode_image(px)), 1e-5);
  const at::Tensor txt = source_->encode_text(source_->tokenize({"No acute cardiopulmonary process."}));
  EXPECT_LT(testing::max_abs_diff(data::load_npy(out / "text_embeds.npy"), txt), 1e-5);
}

TEST_F(ClipEmbedCli, BadInputsGiveClearErrors) {
  data::save_npy(dir_ / "big.npy", at::zeros({2, 3, 64, 64}));
  const std::string out = " --out '" + (dir_ / "o").string() + "'";
  expect_result(run_cli("embed " + cfg() + " --images-npy '" + (dir_ / "big.npy").string() + "'" + out), 1,
                {"big.npy", "[N,3,32,32]", "[2, 3, 64, 64]"});
  expect_result(run_cli("embed " + cfg() + " --images '" + (dir_ / "missing.png").string() + "'" + out), 1,
                {"missing.png"});
  expect_result(run_cli("embed " + cfg() + out), 1, {"nothing to embed"});
  expect_result(run_cli("embed " + cfg() + " --texts hello --tokens-npy x.npy" + out), 1, {"only one of"});
  expect_result(run_cli("embed " + cfg() + " --texts hello --backbone nosuch" + out), 1, {"nosuch"});
}

TEST_F(ClipEmbedCli, IsListedAndHasHelp) {
  expect_result(run_cli("--help"), 0, {"plugin commands", "embed"});
  expect_result(run_cli("embed --help"), 0, {"usage: daug embed CONFIG"});
  const CliResult r = run_cli("plugins list");
  EXPECT_NE(r.output.find("Command"), std::string::npos) << r.output;
  const std::string out = " --out '" + (dir_ / "o").string() + "'";
  expect_result(run_cli("embed " + cfg() + " --texts hi" + out + " --batch-size zero"), 1, {"--batch-size"});
  expect_result(run_cli("embed " + cfg() + " --texts hi --frobnicate 1" + out), 1, {"frobnicate"});
}

TEST_F(ClipEmbedCli, ZeroImagesOrTextsInNpyAreClearErrors) {
  // The review's N_img_zeroN: shape (0,3,S,S) failed inside LibTorch ("torch.cat(): expected a non-empty list").
  data::save_npy(dir_ / "none.npy", at::zeros({0, 3, 32, 32}));
  data::save_npy(dir_ / "notok.npy", at::zeros({0, 16}, at::kLong));
  const std::string out = " --out '" + (dir_ / "o").string() + "'";
  expect_result(run_cli("embed " + cfg() + " --images-npy '" + (dir_ / "none.npy").string() + "'" + out), 1,
                {"none.npy", "holds no images", "[0, 3, 32, 32]"});
  expect_result(run_cli("embed " + cfg() + " --tokens-npy '" + (dir_ / "notok.npy").string() + "'" + out), 1,
                {"notok.npy", "no texts to embed"});
}

// Issue 11: under a distributed launch each rank embeds its shard, rank 0 gathers and writes every file; the
// command runs in-process here with the ranks simulated one after another (the BuildContext lends the tiny clip).
class LendingContext final : public CommandContext {
 public:
  explicit LendingContext(std::shared_ptr<Backbone> bb) { ctx_.add("backbone", std::move(bb)); }
  BuildContext& build(const std::filesystem::path&, const std::vector<std::string>&,
                      const std::filesystem::path&) override {
    return ctx_;
  }
  StageRun run_stages(const std::filesystem::path&, const std::vector<std::string>&,
                      const std::vector<std::string>&) override {
    throw Error("embed must not run stages");
  }

 private:
  testing::TestContext ctx_;
};

TEST_F(ClipEmbedCli, DistributedRanksEmbedTheirShardsAndRankZeroWritesEverything) {
  std::vector<std::string> args = {"unused.toml", "--images"};
  for (int i = 0; i < 5; ++i) {
    const auto png = dir_ / ("img" + std::to_string(i) + ".png");
    data::save_png(png, at::rand({3, 24 + 4 * i, 30}));
    args.push_back(png.string());
  }
  args.insert(args.end(), {"--texts", "one", "two words", "three more words", "no finding", "small effusion",
                           "edema", "--batch-size", "2", "--workers", "0", "--out"});
  auto run = [&](const std::filesystem::path& out) {
    LendingContext ctx(source_);
    auto a = args;
    a.push_back(out.string());
    EXPECT_EQ(EmbedCommand().run(a, ctx), 0);
  };
  run(dir_ / "one");
  for (int world : {2, 3}) {
    testing::SequentialRanks ranks(world);
    const auto out = dir_ / ("ranks" + std::to_string(world));
    for (int r = world - 1; r >= 0; --r) {
      const testing::SequentialRanks::Scope scope(ranks, r);
      run(out / std::to_string(r));
      if (r > 0) EXPECT_TRUE(std::filesystem::is_empty(out / std::to_string(r))) << "rank " << r << " of " << world;
    }
    for (const char* f : {"image_embeds.npy", "image_embeds_norm.npy", "text_embeds.npy", "text_embeds_norm.npy"}) {
      const at::Tensor want = data::load_npy(dir_ / "one" / f), got = data::load_npy(out / "0" / f);
      ASSERT_EQ(got.sizes(), want.sizes()) << f << ", " << world << " ranks";
      // Equal up to the float rounding of other batch compositions.
      EXPECT_LT(testing::max_abs_diff(got, want), 1e-5) << f << ", " << world << " ranks";
    }
    EXPECT_TRUE(data::load_npy(out / "0" / "tokens.npy").equal(data::load_npy(dir_ / "one" / "tokens.npy")));
  }
}

// The same through the real launcher: `daug launch --nproc 2 -- embed ...` (the core joins the ranks for a command as
// for `daug run`, Gloo on localhost) writes the single-process embeddings, once.
TEST_F(ClipEmbedCli, UnderDaugLaunchTwoRanksWriteTheSingleProcessEmbeddings) {
  std::string inputs = " --images";
  for (int i = 0; i < 5; ++i) {
    const auto png = dir_ / ("img" + std::to_string(i) + ".png");
    data::save_png(png, at::rand({3, 24 + 4 * i, 30}));
    inputs += " '" + png.string() + "'";
  }
  inputs += " --texts one 'two words' 'no finding' effusion edema --batch-size 2";
  const CliResult one = run_cli("embed " + cfg() + inputs + " --out '" + (dir_ / "one").string() + "'");
  ASSERT_EQ(one.code, 0) << one.output;
  const CliResult two =
      run_cli("launch --nproc 2 --timeout 60 -- embed " + cfg() + inputs + " --out '" + (dir_ / "two").string() + "'");
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("distributed: rank 0 of 2"), std::string::npos) << two.output;
  const auto first = two.output.find("embedded 5 image(s) and 5 text(s)");
  ASSERT_NE(first, std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("embedded 5 image(s)", first + 1), std::string::npos) << "printed by more than rank 0";
  for (const char* f : {"image_embeds.npy", "image_embeds_norm.npy", "text_embeds.npy", "text_embeds_norm.npy"})
    EXPECT_LT(testing::max_abs_diff(data::load_npy(dir_ / "two" / f), data::load_npy(dir_ / "one" / f)), 1e-5) << f;
  EXPECT_TRUE(data::load_npy(dir_ / "two" / "tokens.npy").equal(data::load_npy(dir_ / "one" / "tokens.npy")));
}

}  // namespace
}  // namespace daug::plugins
