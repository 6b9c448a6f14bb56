// The CUDA test path (ctest -L cuda): the real plugins, built from the project's configs through the core, once
// on the CPU and once on CUDA with the same weights, must agree; reduced-precision sampling, training steps and
// checkpoints saved from CUDA tensors work there. Every test starts with DAUG_REQUIRE_CUDA(): on a machine or a
// LibTorch without CUDA they are skipped with the reason. DAUG_TEST_DEVICE=cuda:N picks the GPU.
#include <daug/backbone.h>
#include <daug/checkpoint.h>
#include <daug/classifier.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/precision.h>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "all_plugins.h"
#include "test_support.h"

namespace {

using daug::testing::max_abs_diff;


const daug::core::PluginLoader& loader() { return daug::testing::all_plugins(); }

/// An Experiment over the smoke heatmap config (tiny ADM UNet, classifier, softmax guidance) plus the tiny CLIP,
/// on `device`, with `extra` TOML appended. Components are built on first use.
struct Exp {
  daug::testing::TempDir dir;
  std::unique_ptr<daug::core::Experiment> exp;
  Exp(const std::string& device, const std::string& extra = "") {
    const auto file = dir / "cuda_test.toml";
    daug::testing::write_text(file, "schema_version = 1\nimports = [\"" DAUG_SOURCE_DIR
                                    "/configs/smoke/heatmaps_nih.toml\", \"" DAUG_SOURCE_DIR
                                    "/configs/clip/clip_tiny.toml\"]\n[run]\ndevice = \"" +
                                        device + "\"\n" + extra);
    exp = std::make_unique<daug::core::Experiment>(loader(), daug::core::load_config(file), dir / "run");
  }
  template <class T>
  std::shared_ptr<T> get(const std::string& table) {
    return exp->component<T>(table);
  }
};

/// Gives every parameter a reproducible random value (the zero-initialised output convolutions would otherwise
/// make the outputs trivially equal).
void randomize(daug::Trainable& m, uint64_t seed, double std = 0.02) {
  at::NoGradGuard g;
  at::manual_seed(seed);
  for (const auto& [k, v] : m.state()) {
    at::Tensor t = v;
    t.copy_(at::randn(t.sizes(), at::TensorOptions().dtype(t.scalar_type())) * std);
  }
}

at::Tensor images(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  return at::rand({n, 1, 32, 32}) * 2 - 1;
}

/// max |a - b| relative to max |a| (both moved to the CPU).
double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ac = a.detach().to(at::kCPU, at::kFloat), bc = b.detach().to(at::kCPU, at::kFloat);
  return max_abs_diff(ac, bc) / std::max(ac.abs().max().item<double>(), 1e-12);
}

daug::TranslateRequest request(const at::Tensor& x0, const std::string& device, daug::Guidance* guidance) {
  daug::TranslateRequest r;
  r.x0 = x0.to(device);
  r.label = at::ones({x0.size(0)}, at::kLong).to(device);
  r.target = at::zeros({x0.size(0)}, at::kLong).to(device);
  r.guidance = guidance;
  r.noise_level = 100;  // ddim10 keeps 0, 100, ...: one DDIM inversion step and one guided DDIM step
  return r;
}

}  // namespace

TEST(CudaSupport, UnavailableCudaIsReportedAndTheTestDeviceFallsBackToCpu) {
  // Runs everywhere: on a CPU machine this is the path every other test of this file takes (skip with the reason).
  const std::string why = daug::testing::cuda_unavailable_reason("cuda");
  const bool have_cuda = at::hasCUDA() && at::getNumGPUs() > 0;
  EXPECT_EQ(why.empty(), have_cuda) << why;
  const std::string far = daug::testing::cuda_unavailable_reason("cuda:999999");
  EXPECT_NE(far.find(have_cuda ? "is not among the" : "has no CUDA"), std::string::npos) << far;
  daug::testing::expect_error_contains([] { (void)daug::testing::cuda_unavailable_reason("gpu0"); },
                                       {"DAUG_TEST_DEVICE", "\"gpu0\""});
  // DAUG_TEST_DEVICE=cuda: the device-aware tests' TestContext runs on CUDA when there is one, else on the CPU.
  const char* saved = std::getenv("DAUG_TEST_DEVICE");
  const std::string saved_value = saved ? saved : "";
  setenv("DAUG_TEST_DEVICE", "cuda", 1);
  EXPECT_EQ(daug::testing::test_device(), have_cuda ? "cuda" : "cpu");
  EXPECT_EQ(daug::testing::TestContext().device(), have_cuda ? "cuda" : "cpu");
  EXPECT_EQ(daug::testing::cuda_test_device(), "cuda");
  setenv("DAUG_TEST_DEVICE", "cuda:7x", 1);
  daug::testing::expect_error_contains([] { (void)daug::testing::test_device(); }, {"\"cuda:7x\""});
  unsetenv("DAUG_TEST_DEVICE");
  EXPECT_EQ(daug::testing::test_device(), "cpu");
  EXPECT_EQ(daug::testing::TestContext().device(), "cpu") << "unset: the CPU, as before";
  if (saved) setenv("DAUG_TEST_DEVICE", saved_value.c_str(), 1);
}

TEST(CudaParity, GuidanceClassifierLogitsMatchCpu) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp cpu("cpu"), gpu(dev);
  auto c_cpu = cpu.get<daug::Classifier>("classifier");
  auto c_gpu = gpu.get<daug::Classifier>("classifier");
  randomize(*c_cpu, 11);
  c_gpu->load_state(c_cpu->state());  // CPU tensors copied into the CUDA parameters
  at::NoGradGuard ng;
  const at::Tensor x = images(3, 4), t = at::tensor(std::vector<int64_t>{10, 400, 900});
  const at::Tensor a = c_cpu->logits(x, t), b = c_gpu->logits(x.to(dev), t.to(dev));
  EXPECT_TRUE(b.is_cuda());
  EXPECT_GT(a.abs().max().item<double>(), 1e-4);
  EXPECT_LT(rel_diff(a, b), 1e-2) << "EncoderUNet logits, CPU vs " << dev;  // TF32 convolutions allowed
}

TEST(CudaParity, UNetTranslateAndOneGuidedDdimStepMatchCpu) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp cpu("cpu"), gpu(dev);
  auto g_cpu = cpu.get<daug::Generator>("generator");
  auto g_gpu = gpu.get<daug::Generator>("generator");
  randomize(*g_cpu, 12);
  g_gpu->load_state(g_cpu->state());
  auto c_cpu = cpu.get<daug::Classifier>("classifier");
  auto c_gpu = gpu.get<daug::Classifier>("classifier");
  randomize(*c_cpu, 13);
  c_gpu->load_state(c_cpu->state());
  auto guide_cpu = cpu.get<daug::Guidance>("guidance");
  auto guide_gpu = gpu.get<daug::Guidance>("guidance");
  const at::Tensor x0 = images(2, 5);
  at::NoGradGuard ng;
  // Unguided: the UNet alone (one inversion + one decode step).
  const at::Tensor u_cpu = g_cpu->translate(request(x0, "cpu", nullptr));
  const at::Tensor u_gpu = g_gpu->translate(request(x0, dev, nullptr));
  EXPECT_TRUE(u_gpu.is_cuda());
  EXPECT_LT(rel_diff(u_cpu, u_gpu), 1e-2);
  // Guided: UNet + classifier gradient through the softmax guidance plugin.
  const at::Tensor a = g_cpu->translate(request(x0, "cpu", guide_cpu.get()));
  const at::Tensor b = g_gpu->translate(request(x0, dev, guide_gpu.get()));
  EXPECT_GT(max_abs_diff(a, u_cpu), 1e-4) << "the guidance acted on the CPU";
  EXPECT_LT(rel_diff(a, b), 1e-2) << "guided DDIM step, CPU vs " << dev;
}

TEST(CudaParity, ClipEmbeddingsMatchCpu) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp cpu("cpu"), gpu(dev);
  auto b_cpu = cpu.get<daug::Backbone>("backbone");
  auto b_gpu = gpu.get<daug::Backbone>("backbone");
  b_gpu->load_state(b_cpu->state());
  at::NoGradGuard ng;
  at::manual_seed(6);
  const at::Tensor pixels = at::rand({2, 3, b_cpu->image_size(), b_cpu->image_size()});
  const at::Tensor tokens = b_cpu->tokenize({"no finding", "left pleural effusion"});
  EXPECT_LT(rel_diff(b_cpu->encode_image(pixels), b_gpu->encode_image(pixels.to(dev))), 1e-3);
  EXPECT_LT(rel_diff(b_cpu->encode_text(tokens), b_gpu->encode_text(tokens)), 1e-3);
}

TEST(CudaPrecision, Bf16AndFp16TranslateStayCloseToFp32) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp f32(dev);
  auto g32 = f32.get<daug::Generator>("generator");
  randomize(*g32, 14);
  const at::Tensor x0 = images(2, 7);
  at::NoGradGuard ng;
  const at::Tensor ref = g32->translate(request(x0, dev, nullptr));
  // Reduced precision is the heatmaps stage's autocast around translate (run.precision / heatmaps.precision).
  for (const daug::Precision dtype : {daug::Precision::bf16, daug::Precision::fp16}) {
    at::Tensor out;
    {
      daug::AutocastGuard autocast(dtype, dev);
      out = g32->translate(request(x0, dev, nullptr));
    }
    EXPECT_EQ(out.scalar_type(), at::kFloat) << daug::precision_name(dtype) << ": the sampler state stays float32";
    EXPECT_TRUE(out.is_cuda());
    EXPECT_LT(max_abs_diff(out.cpu(), ref.cpu()), 0.05) << daug::precision_name(dtype);  // the CPU bf16 test's bound
    EXPECT_GT(max_abs_diff(out.cpu(), ref.cpu()), 0.0) << daug::precision_name(dtype) << ": the reduced precision was used";
  }
}

TEST(CudaTraining, TwoAdamStepsOnTheDiffusionLossRunOnTheGpu) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp gpu(dev);
  auto g = gpu.get<daug::Generator>("generator");
  g->set_training(true);
  const at::Tensor before = g->state().back().second.detach().cpu().clone();
  torch::optim::Adam opt(g->parameters(), torch::optim::AdamOptions(1e-3));
  const at::Tensor x0 = images(4, 8).to(dev), y = at::tensor(std::vector<int64_t>{0, 1, 0, 1}).to(dev);
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    at::Tensor loss = g->training_loss(x0, y);
    ASSERT_TRUE(loss.is_cuda());
    loss.backward();
    opt.step();
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << "step " << step;
  }
  for (const auto& p : g->parameters()) ASSERT_TRUE(p.is_cuda());
  EXPECT_GT(max_abs_diff(before, g->state().back().second.detach().cpu()), 0.0) << "the weights moved";
}

TEST(CudaCheckpoints, SafetensorsSavedFromCudaTensorsLoadOnCpuAndCuda) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  Exp gpu(dev), cpu("cpu");
  auto g_gpu = gpu.get<daug::Generator>("generator");
  randomize(*g_gpu, 15);  // drawn on the CPU, copied into CUDA parameters
  const auto file = gpu.dir / "from_cuda.safetensors";
  const auto state = g_gpu->state();
  ASSERT_TRUE(state.front().second.is_cuda());
  daug::save_safetensors(file, state, {{"saved_on", dev}});
  auto g_cpu = cpu.get<daug::Generator>("generator");
  g_cpu->load_state(daug::load_safetensors(file).tensors);
  Exp gpu2(dev);
  auto g_gpu2 = gpu2.get<daug::Generator>("generator");
  g_gpu2->load_state(daug::load_safetensors(file).tensors);
  const auto s_cpu = g_cpu->state(), s_gpu2 = g_gpu2->state();
  ASSERT_EQ(s_cpu.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(max_abs_diff(state[i].second.cpu(), s_cpu[i].second), 0.0) << state[i].first;
    EXPECT_EQ(max_abs_diff(state[i].second.cpu(), s_gpu2[i].second.cpu()), 0.0) << state[i].first;
    EXPECT_TRUE(s_gpu2[i].second.is_cuda());
  }
}

TEST(CudaCheckpoints, TorchSaveCheckpointWithCudaStoragesLoadsOntoTheGpu) {
  DAUG_REQUIRE_CUDA();
  const std::string dev = daug::testing::cuda_test_device();
  // tiny_clip_ddp_cuda.pt: a DDP training checkpoint whose storages say "cuda:0" (plugins/backbone_clip_vit/tools/
  // write_torch_fixtures.py); the CPU path is checked against Python's embeddings by backbone_clip_vit_test.
  const std::string extra = "[backbone]\nweights = \"" DAUG_SOURCE_DIR
                            "/plugins/backbone_clip_vit/testdata/tiny_clip_ddp_cuda.pt\"\n";
  Exp cpu("cpu", extra), gpu(dev, extra);
  auto b_cpu = cpu.get<daug::Backbone>("backbone");
  auto b_gpu = gpu.get<daug::Backbone>("backbone");
  for (const auto& [k, v] : b_gpu->state()) ASSERT_TRUE(v.is_cuda()) << k;
  at::NoGradGuard ng;
  at::manual_seed(9);
  const at::Tensor pixels = at::rand({2, 3, b_cpu->image_size(), b_cpu->image_size()});
  EXPECT_LT(rel_diff(b_cpu->encode_image(pixels), b_gpu->encode_image(pixels.to(dev))), 1e-3);
}
