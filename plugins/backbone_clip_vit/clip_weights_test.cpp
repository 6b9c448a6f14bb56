// clip_vit weight loading: daug safetensors, Hugging Face CLIPModel safetensors and OpenAI TorchScript archives
// written from a tiny source model must give the source's embeddings; positions are resampled on size changes;
// broken files give DataErrors naming the file and key.
#include "clip_vit.h"
#include "clip_weights.h"

#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <test_support.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace daug::plugins::clip {
namespace {

ClipVitOptions tiny(int64_t image = 32, int64_t ctx = 16) {
  ClipVitOptions o;
  o.preset = "tiny";
  o.image_size = image;
  o.context_length = ctx;
  o.vocab = DAUG_CLIP_VOCAB_FILE;
  return o;
}

ClipVitOptions tiny_from(const std::filesystem::path& weights, int64_t image = 32, int64_t ctx = 16) {
  ClipVitOptions o = tiny(image, ctx);
  o.weights = weights.string();
  return o;
}

struct Embeds {
  at::Tensor img, txt;
};

class ClipWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);
    torch::manual_seed(1);
    source_ = std::make_unique<ClipVit>(tiny(), "cpu");
    {
      at::NoGradGuard ng;
      source_->model()->logit_scale.fill_(3.25);
      // Non-trivial LayerNorm affine parameters and biases, so that a mis-mapped LN or bias is visible.
      for (auto& [k, t] : source_->state())
        if (k.find("ln_") != std::string::npos || k.find("bias") != std::string::npos) t.normal_(0.5, 0.2);
    }
    pixels_ = at::randn({2, 3, 32, 32});
    tokens_ = at::tensor({49406L, 320L, 1125L, 539L, 320L, 2368L, 49407L, 49406L, 2368L, 49407L, 49407L, 49407L,
                          49407L, 49407L})
                  .reshape({2, 7});
  }
  Embeds embed(ClipVit& m) {
    at::NoGradGuard ng;
    return {m.encode_image(pixels_), m.encode_text(tokens_)};
  }
  void expect_same(ClipVit& m, double tol = 0.0) {
    Embeds a = embed(*source_), b = embed(m);
    EXPECT_LE(testing::max_abs_diff(a.img, b.img), tol);
    EXPECT_LE(testing::max_abs_diff(a.txt, b.txt), tol);
  }
  // `path` is detected as `format` and loads into a differently seeded model with the source's embeddings and
  // logit scale.
  void expect_exact_load(const std::filesystem::path& path, WeightsFormat format) {
    EXPECT_EQ(detect_weights_format(path.string()), format);
    torch::manual_seed(99);
    ClipVit loaded(tiny_from(path), "cpu");
    expect_same(loaded);
    EXPECT_DOUBLE_EQ(loaded.logit_scale().item<double>(), 3.25);
  }
  // Rounds every source weight to fp16, as a half-precision file holds them.
  void round_source_to_fp16() {
    at::NoGradGuard ng;
    for (auto& [k, t] : source_->state()) t.copy_(t.to(at::kHalf).to(at::kFloat));
  }
  std::map<std::string, at::Tensor> source_state() {
    std::map<std::string, at::Tensor> m;
    for (auto& [k, t] : source_->state()) m[k] = t.detach();
    return m;
  }

  testing::TempDir dir_;
  std::unique_ptr<ClipVit> source_;
  at::Tensor pixels_, tokens_;
};

// Writes the source model with Hugging Face CLIPModel names, following the table of REFERENCE §4.2 written out
// here independently of the plugin's mapper.
NamedTensors to_hf(std::map<std::string, at::Tensor> s, int64_t layers) {
  NamedTensors hf;
  auto put = [&](const std::string& k, const at::Tensor& t) { hf.emplace_back(k, t.contiguous()); };
  // <hf>.weight and <hf>.bias from <oa>.weight and <oa>.bias.
  auto put_wb = [&](const std::string& hf_key, const std::string& oa_key) {
    put(hf_key + ".weight", s[oa_key + ".weight"]);
    put(hf_key + ".bias", s[oa_key + ".bias"]);
  };
  put("logit_scale", s["logit_scale"]);
  put("visual_projection.weight", s["visual.proj"].t());
  put("text_projection.weight", s["text_projection"].t());
  put("vision_model.embeddings.patch_embedding.weight", s["visual.conv1.weight"]);
  put("vision_model.embeddings.class_embedding", s["visual.class_embedding"]);
  put("vision_model.embeddings.position_embedding.weight", s["visual.positional_embedding"]);
  put("vision_model.embeddings.position_ids", at::arange(17, at::kLong).reshape({1, 17}));
  put_wb("vision_model.pre_layrnorm", "visual.ln_pre");
  put_wb("vision_model.post_layernorm", "visual.ln_post");
  put("text_model.embeddings.token_embedding.weight", s["token_embedding.weight"]);
  put("text_model.embeddings.position_embedding.weight", s["positional_embedding"]);
  put("text_model.embeddings.position_ids", at::arange(16, at::kLong).reshape({1, 16}));
  put_wb("text_model.final_layer_norm", "ln_final");
  for (const auto& [hf_tower, oa_tower] : std::vector<std::pair<std::string, std::string>>{
           {"vision_model", "visual.transformer"}, {"text_model", "transformer"}}) {
    for (int64_t i = 0; i < layers; ++i) {
      const std::string h = hf_tower + ".encoder.layers." + std::to_string(i) + ".";
      const std::string o = oa_tower + ".resblocks." + std::to_string(i) + ".";
      const at::Tensor w = s[o + "attn.in_proj_weight"], b = s[o + "attn.in_proj_bias"];
      const int64_t d = w.size(1);
      put(h + "self_attn.q_proj.weight", w.slice(0, 0, d));
      put(h + "self_attn.k_proj.weight", w.slice(0, d, 2 * d));
      put(h + "self_attn.v_proj.weight", w.slice(0, 2 * d, 3 * d));
      put(h + "self_attn.q_proj.bias", b.slice(0, 0, d));
      put(h + "self_attn.k_proj.bias", b.slice(0, d, 2 * d));
      put(h + "self_attn.v_proj.bias", b.slice(0, 2 * d, 3 * d));
      put_wb(h + "self_attn.out_proj", o + "attn.out_proj");
      put_wb(h + "layer_norm1", o + "ln_1");
      put_wb(h + "layer_norm2", o + "ln_2");
      put_wb(h + "mlp.fc1", o + "mlp.c_fc");
      put_wb(h + "mlp.fc2", o + "mlp.c_proj");
    }
  }
  return hf;
}

// Builds an OpenAI-style TorchScript archive: nested modules holding OpenAI-named fp16 parameters plus the
// scalar entries input_resolution / context_length / vocab_size that clip.load's build_model deletes.
void save_openai_torchscript(const std::map<std::string, at::Tensor>& s, const std::string& path) {
  int counter = 0;
  torch::jit::Module root("__torch__.CLIP_" + std::to_string(counter++));
  std::map<std::string, torch::jit::Module> modules;  // dotted prefix -> module (copies share the object)
  std::function<torch::jit::Module(const std::string&)> get = [&](const std::string& prefix) -> torch::jit::Module {
    if (prefix.empty()) return root;
    auto it = modules.find(prefix);
    if (it != modules.end()) return it->second;
    const auto dot = prefix.rfind('.');
    torch::jit::Module parent = get(dot == std::string::npos ? "" : prefix.substr(0, dot));
    torch::jit::Module child("__torch__.M" + std::to_string(counter++));
    parent.register_module(dot == std::string::npos ? prefix : prefix.substr(dot + 1), child);
    modules.emplace(prefix, child);
    return child;
  };
  for (const auto& [key, t] : s) {
    const auto dot = key.rfind('.');
    torch::jit::Module m = get(dot == std::string::npos ? "" : key.substr(0, dot));
    m.register_parameter(dot == std::string::npos ? key : key.substr(dot + 1), t.to(at::kHalf), false);
  }
  root.register_buffer("input_resolution", at::tensor(32L));
  root.register_buffer("context_length", at::tensor(16L));
  root.register_buffer("vocab_size", at::tensor(49408L));
  root.save(path);
}

TEST_F(ClipWeightsTest, DaugSafetensorsRoundTripIsExact) {
  const auto path = dir_ / "clip.safetensors";
  save_safetensors(path, source_->state());
  expect_exact_load(path, WeightsFormat::daug);
  // Trainable::load_state round trip too.
  torch::manual_seed(7);
  ClipVit other(tiny(), "cpu");
  other.load_state(source_->state());
  expect_same(other);
}

TEST_F(ClipWeightsTest, HuggingFaceSafetensorsGiveIdenticalEmbeddings) {
  const auto path = dir_ / "model.safetensors";
  save_safetensors(path, to_hf(source_state(), 2));
  expect_exact_load(path, WeightsFormat::hf);
}

TEST_F(ClipWeightsTest, OpenAITorchScriptArchiveGivesFp16RoundedSourceEmbeddings) {
  const auto path = dir_ / "ViT-tiny.pt";
  save_openai_torchscript(source_state(), path.string());
  EXPECT_EQ(detect_weights_format(path.string()), WeightsFormat::openai);
  ClipVit loaded(tiny_from(path), "cpu");
  // The archive holds fp16 weights: the loaded model equals the source with every weight rounded to fp16.
  round_source_to_fp16();
  expect_same(loaded);
  for (auto& [k, t] : loaded.state()) EXPECT_EQ(t.scalar_type(), at::kFloat) << k;
}

// A torch.save'd state dict (zip + pickle), as open_clip's state_dict() or HF's pytorch_model.bin.
void save_torch_state_dict(const NamedTensors& tensors, const std::string& path, bool half) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, t] : tensors) d.insert(k, half && t.is_floating_point() ? t.to(at::kHalf) : t);
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(d));
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST_F(ClipWeightsTest, TorchSaveStateDictsWithOpenAIOrHFNames) {
  const auto hf_bin = dir_ / "pytorch_model.bin";
  save_torch_state_dict(to_hf(source_state(), 2), hf_bin.string(), /*half=*/false);
  EXPECT_EQ(detect_weights_format(hf_bin.string()), WeightsFormat::openai);
  ClipVit from_hf(tiny_from(hf_bin), "cpu");
  expect_same(from_hf);
  const auto oa_pt = dir_ / "state_dict.pt";
  save_torch_state_dict(source_->state(), oa_pt.string(), /*half=*/true);
  ClipVit from_oa(tiny_from(oa_pt), "cpu");
  round_source_to_fp16();
  expect_same(from_oa);
}

TEST_F(ClipWeightsTest, PositionsAreResampledWhenSizesDiffer) {
  const auto path = dir_ / "model.safetensors";
  save_safetensors(path, to_hf(source_state(), 2));
  ClipVit loaded(tiny_from(path, 48, 32), "cpu");  // grid 4x4 -> 6x6, text 16 -> 32
  auto src = source_state();
  std::map<std::string, at::Tensor> got;
  for (auto& [k, t] : loaded.state()) got[k] = t;
  EXPECT_TRUE(got["visual.positional_embedding"].equal(
      resample_positions(src["visual.positional_embedding"], 1, 4, 4, 6, 6, PosInterp::bicubic_aa)));
  EXPECT_TRUE(got["positional_embedding"].equal(
      resample_positions(src["positional_embedding"], 0, 1, 16, 1, 32, PosInterp::bicubic_aa)));
  EXPECT_EQ(got["visual.positional_embedding"].size(0), 37);
  EXPECT_TRUE(got["visual.conv1.weight"].equal(src["visual.conv1.weight"]));
  at::NoGradGuard ng;
  EXPECT_EQ(loaded.encode_image(at::randn({1, 3, 48, 48})).sizes(), (std::vector<int64_t>{1, 32}));
}

TEST_F(ClipWeightsTest, LogitScaleFromWeightsCanBeDisabled) {
  const auto path = dir_ / "clip.safetensors";
  save_safetensors(path, source_->state());
  ClipVitOptions o = tiny_from(path);
  o.logit_scale = 4.602;
  o.logit_scale_from_weights = false;
  ClipVit loaded(o, "cpu");
  EXPECT_NEAR(loaded.logit_scale().item<double>(), 4.602, 1e-6);
  expect_same(loaded);
}

TEST_F(ClipWeightsTest, BrokenFilesGiveDataErrorsNamingFileAndKey) {
  ClipVitOptions o = tiny();
  // Missing file.
  o.weights = (dir_ / "nope.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"nope.safetensors", "not found"});
  // Truncated safetensors.
  const auto good = dir_ / "clip.safetensors";
  save_safetensors(good, source_->state());
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, dir_ / "cut.safetensors");
  std::filesystem::resize_file(dir_ / "cut.safetensors", size / 2);
  o.weights = (dir_ / "cut.safetensors").string();
  EXPECT_THROW(ClipVit(o, "cpu"), DataError);
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"cut.safetensors"});
  // Wrong shape (a different width) names the key and both shapes.
  NamedTensors bad = source_->state();
  for (auto& [k, t] : bad)
    if (k == "visual.proj") t = at::zeros({64, 16});
  save_safetensors(dir_ / "shape.safetensors", bad);
  o.weights = (dir_ / "shape.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"shape.safetensors", "visual.proj", "[64, 16]", "[64, 32]"});
  // Missing and unexpected keys.
  const NamedTensors full = source_->state();
  NamedTensors missing(full.begin() + 1, full.end());
  const std::string dropped = full.front().first;
  save_safetensors(dir_ / "missing.safetensors", missing);
  o.weights = (dir_ / "missing.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"missing.safetensors", "missing", dropped});
  NamedTensors extra = source_->state();
  extra.emplace_back("visual.extra_head.weight", at::zeros({2}));
  save_safetensors(dir_ / "extra.safetensors", extra);
  o.weights = (dir_ / "extra.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"extra.safetensors", "visual.extra_head.weight"});
  // HF file without a k projection; HF file with an unknown key.
  NamedTensors hf = to_hf(source_state(), 2), no_k, unknown = to_hf(source_state(), 2);
  for (auto& [k, t] : hf)
    if (k != "text_model.encoder.layers.1.self_attn.k_proj.weight") no_k.emplace_back(k, t);
  save_safetensors(dir_ / "no_k.safetensors", no_k);
  o.weights = (dir_ / "no_k.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); },
                                 {"no_k.safetensors", "text_model.encoder.layers.1.self_attn.k_proj.weight"});
  unknown.emplace_back("vision_model.encoder.layers.0.self_attn.rotary.weight", at::zeros({2}));
  save_safetensors(dir_ / "unknown.safetensors", unknown);
  o.weights = (dir_ / "unknown.safetensors").string();
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); },
                                 {"unknown.safetensors", "vision_model.encoder.layers.0.self_attn.rotary.weight"});
  // A file that is neither format.
  testing::write_text(dir_ / "junk.pt", "this is not a checkpoint at all");
  o.weights = (dir_ / "junk.pt").string();
  EXPECT_THROW(ClipVit(o, "cpu"), DataError);
  // Forcing openai on a safetensors file.
  o.weights = good.string();
  o.weights_format = "openai";
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"clip.safetensors", "TorchScript", "state dict"});
}

}  // namespace
}  // namespace daug::plugins::clip

namespace daug::plugins::clip {
namespace {

// Files written by Python PyTorch (tools/write_torch_fixtures.py): OpenAI's clip/model.py CLIP with the tiny
// preset's dimensions, saved as torch.save(model.state_dict()) (an OrderedDict with `_metadata`) and as a DDP-style
// training checkpoint {"epoch", "state_dict": {"module.*"}, "optimizer"} with "cuda:0" storages. The expected
// embeddings are the Python model's, on the inputs the file's header describes.
const std::string kTestdata = DAUG_CLIP_TESTDATA_DIR;

std::map<std::string, at::Tensor> python_embeddings() {
  std::ifstream f(kTestdata + "/tiny_clip_embeddings.txt");
  EXPECT_TRUE(f.good());
  std::map<std::string, std::vector<std::vector<double>>> rows;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string name;
    size_t index = 0;
    in >> name >> index;
    std::vector<double> v;
    double x;
    while (in >> x) v.push_back(x);
    EXPECT_EQ(v.size(), 32u) << line.substr(0, 40);
    EXPECT_EQ(index, rows[name].size());
    rows[name].push_back(v);
  }
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, r] : rows) {
    at::Tensor t = at::empty({static_cast<int64_t>(r.size()), 32}, at::kDouble);
    for (size_t i = 0; i < r.size(); ++i)
      for (size_t j = 0; j < 32; ++j) t[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = r[i][j];
    out[name] = t.to(at::kFloat);
  }
  return out;
}

TEST(ClipPythonTorchSave, StateDictAndDdpCudaCheckpointGiveThePythonModelsEmbeddings) {
  at::set_num_threads(1);
  const auto want = python_embeddings();
  ASSERT_EQ(want.at("image").sizes(), (std::vector<int64_t>{2, 32}));
  ASSERT_EQ(want.at("text").sizes(), (std::vector<int64_t>{2, 32}));
  // pixels[i] = ((i * 37) % 101 - 50) / 32, exact in float32; tokens zero-padded as clip.tokenize pads.
  const at::Tensor pixels = (at::arange(2 * 3 * 32 * 32, at::kLong) * 37)
                                .remainder(101)
                                .sub(50)
                                .to(at::kFloat)
                                .div(32.0)
                                .reshape({2, 3, 32, 32});
  at::Tensor tokens = at::zeros({2, 16}, at::kLong);
  const std::vector<std::vector<int64_t>> ids = {{49406, 320, 1125, 539, 320, 2368, 49407},
                                                 {49406, 320, 10563, 268, 87, 3077, 2867, 539, 49407}};
  for (size_t r = 0; r < ids.size(); ++r)
    for (size_t c = 0; c < ids[r].size(); ++c) tokens[static_cast<int64_t>(r)][static_cast<int64_t>(c)] = ids[r][c];
  for (const char* file : {"tiny_clip_state_dict.pt", "tiny_clip_ddp_cuda.pt"}) {
    SCOPED_TRACE(file);
    const std::string path = kTestdata + "/" + file;
    EXPECT_EQ(detect_weights_format(path), WeightsFormat::openai);
    torch::manual_seed(5);
    ClipVit m(tiny_from(path), "cpu");
    at::NoGradGuard ng;
    const at::Tensor img = m.encode_image(pixels), txt = m.encode_text(tokens);
    // float32 with different summation orders than the Python build: 9.5e-7 (image) and 2.4e-6 (text) measured
    // for values up to 4.6.
    EXPECT_LT(testing::max_abs_diff(img, want.at("image")), 1e-5 * std::max(1.0, img.abs().max().item<double>()));
    EXPECT_LT(testing::max_abs_diff(txt, want.at("text")), 1e-5 * std::max(1.0, txt.abs().max().item<double>()));
    EXPECT_DOUBLE_EQ(m.logit_scale().item<double>(), 3.25);
  }
}

// A file that is not a zip, with a .pt name, is not misreported as a bad safetensors header.
TEST(ClipPythonTorchSave, NonZipPtFilesAreExplained) {
  testing::TempDir dir;
  testing::write_text(dir / "random.pt", std::string("\x12\x34\x56\x78\x9a\xbc\xde\xf0garbage bytes", 21));
  ClipVitOptions o = tiny_from(dir / "random.pt");
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); },
                                 {"random.pt", "neither a zip archive", "nor a safetensors file", "12 34 56 78"});
  // The pre-1.6 torch.save format, written by Python (tests/sdk/fixtures/torch_save/legacy.pt).
  o.weights = std::string(DAUG_SOURCE_DIR) + "/tests/sdk/fixtures/torch_save/legacy.pt";
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); }, {"legacy.pt", "legacy (pre-1.6, non-zip) torch.save"});
  o.weights_format = "openai";
  testing::expect_error_contains([&] { ClipVit m(o, "cpu"); },
                                 {"legacy.pt", "legacy (pre-1.6, non-zip) torch.save", "TorchScript"});
}

}  // namespace
}  // namespace daug::plugins::clip
