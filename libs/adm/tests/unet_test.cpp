// ADM UNet / EncoderUNet: parameter counts (REFERENCE.md §1.2), guided-diffusion key names, numerics.
#include <daug/adm/unet.h>
#include <daug/error.h>

#include "test_support.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <cmath>
#include <map>
#include <set>

using daug::adm::EncoderUNetModel;
using daug::adm::UNetConfig;
using daug::adm::UNetModel;
using namespace daug::testing;  // expect_error_contains, max_abs_diff

namespace {

std::map<std::string, std::vector<int64_t>> shapes(const daug::NamedTensors& nt) {
  std::map<std::string, std::vector<int64_t>> m;
  for (const auto& [k, v] : nt) m[k] = v.sizes().vec();
  return m;
}

void randomize(const daug::NamedTensors& nt, double std = 0.05) {
  at::NoGradGuard g;
  for (const auto& [k, v] : nt) {
    at::Tensor t = v;
    t.normal_(0, std);
  }
}

}  // namespace

TEST(UNet, ReleasedParameterCounts) {
  // REFERENCE.md §1.2: 113,670,786 at the released settings, identical at 256 and 512.
  for (const char* p : {"wolleb256", "daug512"}) {
    UNetModel m(daug::adm::unet_preset(p), at::kCPU);
    EXPECT_EQ(m.num_parameters(), 113670786) << p;
  }
}

TEST(EncoderUNet, ReleasedParameterCounts) {
  auto c = daug::adm::encoder_preset("daug512");
  c.out_channels = 7;
  EXPECT_EQ(EncoderUNetModel(c, at::kCPU).num_parameters(), 5410247);
  auto w = daug::adm::encoder_preset("wolleb256");
  w.out_channels = 2;
  EXPECT_EQ(EncoderUNetModel(w, at::kCPU).num_parameters(), 5452098);
  w.out_channels = 7;
  EXPECT_EQ(EncoderUNetModel(w, at::kCPU).num_parameters(), 5452743);
}

TEST(UNet, GuidedDiffusionKeyNamesAndShapes) {
  UNetModel m(daug::adm::unet_preset("wolleb256"), at::kCPU);
  auto s = shapes(m.named_parameters());
  using V = std::vector<int64_t>;
  EXPECT_EQ(s.at("time_embed.0.weight"), (V{512, 128}));
  EXPECT_EQ(s.at("time_embed.2.weight"), (V{512, 512}));
  EXPECT_EQ(s.at("label_emb.weight"), (V{2, 512}));
  EXPECT_EQ(s.at("input_blocks.0.0.weight"), (V{128, 1, 3, 3}));
  EXPECT_EQ(s.at("input_blocks.3.0.op.weight"), (V{128, 128, 3, 3}));      // Downsample conv after level 0
  EXPECT_EQ(s.at("input_blocks.7.0.skip_connection.weight"), (V{256, 128, 1, 1}));
  EXPECT_EQ(s.at("input_blocks.13.1.qkv.weight"), (V{1536, 512, 1}));      // attention at 16² (ds 16)
  EXPECT_EQ(s.at("middle_block.1.proj_out.weight"), (V{512, 512, 1}));
  EXPECT_EQ(s.at("middle_block.0.emb_layers.1.weight"), (V{512, 512}));    // no scale-shift: out channels
  EXPECT_EQ(s.at("output_blocks.0.0.in_layers.2.weight"), (V{512, 1024, 3, 3}));
  EXPECT_EQ(s.at("output_blocks.2.1.conv.weight"), (V{512, 512, 3, 3}));   // Upsample conv, level 5
  EXPECT_EQ(s.at("output_blocks.5.2.conv.weight"), (V{512, 512, 3, 3}));   // after attention at level 4
  EXPECT_EQ(s.at("output_blocks.17.0.skip_connection.weight"), (V{128, 256, 1, 1}));
  EXPECT_EQ(s.at("out.0.weight"), (V{128}));
  EXPECT_EQ(s.at("out.2.weight"), (V{2, 128, 3, 3}));
  EXPECT_EQ(s.count("output_blocks.18.0.in_layers.0.weight"), 0u);  // 6 levels × 3 blocks = 18
}

TEST(EncoderUNet, GuidedDiffusionKeyNamesAndShapes) {
  auto c = daug::adm::encoder_preset("daug512");
  c.out_channels = 7;
  EncoderUNetModel m(c, at::kCPU);
  auto s = shapes(m.named_parameters());
  using V = std::vector<int64_t>;
  EXPECT_EQ(s.at("out.2.positional_embedding"), (V{128, 16 * 16 + 1}));
  EXPECT_EQ(s.at("out.2.qkv_proj.weight"), (V{384, 128, 1}));
  EXPECT_EQ(s.at("out.2.c_proj.weight"), (V{7, 128, 1}));
  EXPECT_EQ(s.at("input_blocks.5.0.emb_layers.1.weight"), (V{64, 128}));   // down ResBlock, scale-shift 2·32
  EXPECT_EQ(s.at("middle_block.1.qkv.weight"), (V{384, 128, 1}));
  EXPECT_EQ(s.count("input_blocks.22.1.qkv.weight"), 1u);  // attention at 32² (ds 16)
}

TEST(UNet, TimestepEmbeddingIsCosThenSin) {
  at::Tensor e = daug::adm::timestep_embedding(at::tensor(std::vector<int64_t>{0, 1, 500}), 4);
  ASSERT_EQ(e.sizes(), (at::IntArrayRef{3, 4}));
  // freqs = exp(−ln(10000)·[0, 1]/2) = [1, 0.01]
  EXPECT_NEAR(e[1][0].item<double>(), std::cos(1.0), 1e-6);
  EXPECT_NEAR(e[1][1].item<double>(), std::cos(0.01), 1e-6);
  EXPECT_NEAR(e[1][2].item<double>(), std::sin(1.0), 1e-6);
  EXPECT_NEAR(e[2][3].item<double>(), std::sin(5.0), 1e-5);
  EXPECT_NEAR(e[0][0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(e[0][2].item<double>(), 0.0, 1e-7);
}

TEST(UNet, OutputIsZeroAtInitAndShapesFollowTheConfig) {
  at::manual_seed(0);
  UNetModel m(daug::adm::unet_preset("tiny"), at::kCPU);
  at::NoGradGuard g;
  at::Tensor y = m.forward(at::randn({2, 1, 32, 32}), at::tensor(std::vector<int64_t>{3, 900}),
                           at::tensor(std::vector<int64_t>{0, 1}));
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 2, 32, 32}));
  EXPECT_EQ(y.abs().max().item<double>(), 0.0);  // zero-initialised out.2
  expect_error_contains([&] { m.forward(at::randn({2, 3, 32, 32}), at::zeros({2}, at::kLong), at::zeros({2}, at::kLong)); },
                        {"[N, 1, H, W]", "[2, 3, 32, 32]"});
  expect_error_contains([&] { m.forward(at::randn({2, 1, 32, 32}), at::zeros({2}, at::kLong)); },
                        {"class-conditional", "none"});
}

TEST(UNet, LegacyAndNewAttentionOrderAgreeUnderQkvPermutation) {
  UNetConfig c = daug::adm::unet_preset("tiny");
  c.num_heads = 2;
  c.use_new_attention_order = false;
  at::manual_seed(11);
  UNetModel legacy(c, at::kCPU);
  randomize(legacy.named_parameters());
  c.use_new_attention_order = true;
  UNetModel fresh(c, at::kCPU);
  // Legacy rows: [h0:q,k,v | h1:q,k,v] (ch each); new rows: [q_h0 q_h1 | k_h0 k_h1 | v_h0 v_h1].
  {
    at::NoGradGuard g;
    auto src = legacy.named_parameters();
    auto dst = fresh.named_parameters();
    ASSERT_EQ(src.size(), dst.size());
    for (size_t i = 0; i < src.size(); ++i) {
      at::Tensor d = dst[i].second;
      const auto& name = src[i].first;
      ASSERT_EQ(name, dst[i].first);
      if (name.find(".qkv.") == std::string::npos) {
        d.copy_(src[i].second);
        continue;
      }
      const int64_t width = src[i].second.size(0), heads = 2, ch = width / (3 * heads);
      std::vector<at::Tensor> parts;
      for (int64_t which = 0; which < 3; ++which)
        for (int64_t h = 0; h < heads; ++h) parts.push_back(src[i].second.narrow(0, (h * 3 + which) * ch, ch));
      d.copy_(at::cat(parts, 0));
    }
  }
  at::NoGradGuard g;
  at::Tensor x = at::randn({2, 1, 32, 32});
  at::Tensor t = at::tensor(std::vector<int64_t>{10, 700});
  at::Tensor y = at::tensor(std::vector<int64_t>{1, 0});
  at::Tensor a = legacy.forward(x, t, y), b = fresh.forward(x, t, y);
  EXPECT_GT(a.abs().max().item<double>(), 1e-3);
  EXPECT_LT(max_abs_diff(a, b), 1e-5);
}

TEST(Attention, QkvAttentionEqualsHandComputedSoftmax) {
  // Two heads, ch = 3 per head, T = 4 positions, batch 1: out[h][:, t] = Σ_s softmax_s(q_t·k_s/√ch) v_s.
  at::manual_seed(4);
  const int64_t heads = 2, ch = 3, T = 4;
  at::Tensor qkv = at::randn({1, 3 * heads * ch, T}, at::kDouble);
  for (bool new_order : {false, true}) {
    at::Tensor out = daug::adm::qkv_attention(qkv, heads, new_order);
    ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, heads * ch, T}));
    for (int64_t h = 0; h < heads; ++h) {
      auto rows = [&](int64_t which) {  // which: 0 q, 1 k, 2 v
        const int64_t start = new_order ? (which * heads + h) * ch : (h * 3 + which) * ch;
        return qkv[0].narrow(0, start, ch);
      };
      at::Tensor q = rows(0), k = rows(1), v = rows(2);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> w(T);
        double z = 0;
        for (int64_t s2 = 0; s2 < T; ++s2) {
          w[s2] = std::exp((q.select(1, t) * k.select(1, s2)).sum().item<double>() / std::sqrt(double(ch)));
          z += w[s2];
        }
        for (int64_t c2 = 0; c2 < ch; ++c2) {
          double expect = 0;
          for (int64_t s2 = 0; s2 < T; ++s2) expect += w[s2] / z * v[c2][s2].item<double>();
          // softmax runs in float32 as in guided-diffusion, hence the tolerance
          EXPECT_NEAR(out[0][h * ch + c2][t].item<double>(), expect, 1e-6) << "new_order=" << new_order;
        }
      }
    }
  }
}

TEST(EncoderUNet, PoolsGiveLogitsOfTheConfiguredWidth) {
  UNetConfig c = daug::adm::encoder_preset("tiny");
  c.out_channels = 3;
  at::manual_seed(2);
  EncoderUNetModel m(c, at::kCPU);
  UNetConfig ca = c;
  ca.pool = "adaptive";
  EncoderUNetModel twin(ca, at::kCPU);
  at::NoGradGuard g;
  at::Tensor x = at::randn({2, 1, 32, 32});
  at::Tensor t = at::tensor(std::vector<int64_t>{42, 7});
  at::Tensor logits = m.forward(x, t);
  ASSERT_EQ(logits.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_GT(logits.abs().max().item<double>(), 0.0);  // the attention pool is not zero-initialised
  EXPECT_EQ(twin.forward(x, t).sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(twin.forward(x, t).abs().max().item<double>(), 0.0);  // adaptive head: zero-init 1x1 conv
  expect_error_contains([&] { m.forward(at::randn({2, 1, 64, 64}), t); }, {"positional embedding", "32x32"});
}

TEST(UNet, ReducedPrecisionTorsoStaysCloseToFloat32) {
  at::manual_seed(8);
  UNetModel m(daug::adm::unet_preset("tiny"), at::kCPU);
  randomize(m.named_parameters(), 0.05);
  at::NoGradGuard g;
  at::Tensor x = at::randn({2, 1, 32, 32}), t = at::tensor(std::vector<int64_t>{10, 600});
  at::Tensor y = at::tensor(std::vector<int64_t>{0, 1});
  at::Tensor ref = m.forward(x, t, y);
  m.set_compute_dtype(at::kBFloat16);
  at::Tensor low;
  try {
    low = m.forward(x, t, y);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "bfloat16 convolution unavailable on this CPU build: " << e.what();
  }
  EXPECT_EQ(low.scalar_type(), at::kFloat);  // the head runs in float32
  EXPECT_LT(max_abs_diff(low, ref), 0.05 * ref.abs().max().item<double>());
  EXPECT_GT(max_abs_diff(low, ref), 0.0);  // it really ran in reduced precision
  m.set_compute_dtype(at::kFloat);
  EXPECT_EQ(max_abs_diff(m.forward(x, t, y), ref), 0.0);
}

TEST(UNetConfig, ValidationNamesTheProblem) {
  UNetConfig c = daug::adm::unet_preset("tiny");
  c.model_channels = 48;
  expect_error_contains([&] { c.validate("[generator]", false); }, {"[generator]", "GroupNorm32", "48"});
  c = daug::adm::unet_preset("tiny");
  c.image_size = 31;
  expect_error_contains([&] { c.validate("[generator]", false); }, {"image_size 31", "divisible"});
  auto e = daug::adm::encoder_preset("tiny");
  e.num_head_channels = -1;
  expect_error_contains([&] { e.validate("[classifier]", true); }, {"num_head_channels"});
  EXPECT_THROW(daug::adm::unet_preset("huge"), daug::ConfigError);
}

namespace {
/// Builds `M` with `seed` on `device` and returns the CPU generator's next draw afterwards.
template <class M>
double build_and_next_draw(const UNetConfig& cfg, const at::Device& device, std::unique_ptr<M>* out) {
  at::manual_seed(123);
  *out = std::make_unique<M>(cfg, device);
  return at::rand({1}).item<double>();
}
}  // namespace

TEST(UNetInit, WeightsAreDrawnFromTheCpuGeneratorThenMovedToTheDevice) {
  // Built on "meta" (shapes only, no generator of its own): the parameters end up on the device, and the CPU
  // generator advanced exactly as for a CPU build, so every initial value was drawn on the CPU. Hence a CUDA run
  // starts from the weights of a CPU run with the same seed (checked directly when CUDA is present).
  const UNetConfig ucfg = daug::adm::unet_preset("tiny");
  UNetConfig ecfg = daug::adm::encoder_preset("tiny");
  std::unique_ptr<UNetModel> u_cpu, u_meta, u_cpu2;
  std::unique_ptr<EncoderUNetModel> e_cpu, e_meta;
  const double after_cpu = build_and_next_draw(ucfg, at::kCPU, &u_cpu);
  const double after_meta = build_and_next_draw(ucfg, at::Device(at::kMeta), &u_meta);
  EXPECT_EQ(after_meta, after_cpu) << "the meta build did not draw its weights from the CPU generator";
  EXPECT_EQ(build_and_next_draw(ecfg, at::Device(at::kMeta), &e_meta), build_and_next_draw(ecfg, at::kCPU, &e_cpu));
  for (const auto& [k, v] : u_meta->named_parameters()) EXPECT_TRUE(v.is_meta() && v.is_leaf() && v.requires_grad()) << k;
  for (const auto& [k, v] : e_meta->named_parameters()) EXPECT_TRUE(v.is_meta()) << k;
  EXPECT_EQ(shapes(u_meta->named_parameters()), shapes(u_cpu->named_parameters()));
  // Same seed, same device: the same bytes.
  build_and_next_draw(ucfg, at::kCPU, &u_cpu2);
  const auto a = u_cpu->named_parameters(), b = u_cpu2->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  if (at::hasCUDA()) {
    std::unique_ptr<UNetModel> u_cuda;
    build_and_next_draw(ucfg, at::Device(at::kCUDA), &u_cuda);
    const auto c = u_cuda->named_parameters();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, c[i].second.cpu())) << a[i].first;
  }
}

namespace {
/// Gradients of a scalar loss of the model output w.r.t. the input and every parameter, with or without
/// checkpointing. The loss weights the output by a fixed random tensor so that every element matters.
template <class Model, class Forward>
std::vector<at::Tensor> all_grads(Model& m, bool checkpoint, const at::Tensor& x, Forward forward, uint64_t rng_seed) {
  m.set_gradient_checkpointing(checkpoint);
  for (const auto& p : m.parameters()) {
    at::Tensor t = p;
    t.mutable_grad() = at::Tensor();
  }
  at::Tensor xi = x.detach().requires_grad_(true);
  at::manual_seed(rng_seed);  // dropout draws
  at::Tensor out = forward(xi);
  at::manual_seed(99);
  at::Tensor w = at::randn(out.sizes());
  (out * w).sum().backward();
  std::vector<at::Tensor> g = {xi.grad().clone(), out.detach().clone()};
  for (const auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  m.set_gradient_checkpointing(false);
  return g;
}

/// Relative error per tensor ≤ 1e-5 (float32: the engine sums the gradient of a tensor used twice — a block output
/// also kept as a skip — in another order when the blocks are separate nodes). The scale has a floor of 1e-3 of the
/// largest parameter gradient: gradients that are 0 in exact arithmetic (a per-channel shift just before a
/// GroupNorm with one channel per group, as in the tiny preset's in_layers.2.bias) are rounding noise.
void expect_same_grads(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  double top = 0;
  for (size_t i = 2; i < a.size(); ++i) top = std::max(top, a[i].abs().max().item<double>());
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max(1e-3 * top, a[i].abs().max().item<double>());
    EXPECT_LE(max_abs_diff(a[i], b[i]) / scale, 1e-5) << "tensor " << i << " (0 = input grad, 1 = output) rel " << max_abs_diff(a[i], b[i]) / scale;
  }
}
}  // namespace

TEST(UNet, GradientCheckpointingGivesTheSameGradientsWithDropoutAndLeavesSamplingAlone) {
  UNetConfig c = daug::adm::unet_preset("tiny");
  c.dropout = 0.3;        // the recomputation must replay the forward's dropout masks
  c.model_channels = 64;  // 2 channels per GroupNorm group: no gradient is 0 in exact arithmetic
  at::manual_seed(1);
  UNetModel m(c, at::kCPU);
  randomize(m.named_parameters());
  m.set_training(true);
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 1, 32, 32});
  const at::Tensor t = at::tensor(std::vector<int64_t>{10, 700});
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1});
  auto fwd = [&](const at::Tensor& xi) { return m.forward(xi, t, y); };
  const auto plain = all_grads(m, false, x, fwd, 5);
  const auto ckpt = all_grads(m, true, x, fwd, 5);
  expect_same_grads(plain, ckpt);
  // The RNG stream after the step is the same as without checkpointing (the replay restores the generator).
  at::manual_seed(5);
  { auto o = m.forward(x.requires_grad_(false), t, y); }
  const at::Tensor next_plain = at::randn({4});
  m.set_gradient_checkpointing(true);
  at::manual_seed(5);
  {
    at::Tensor xi = x.detach().requires_grad_(true);
    m.forward(xi, t, y).sum().backward();
  }
  const at::Tensor next_ckpt = at::randn({4});
  EXPECT_TRUE(at::equal(next_plain, next_ckpt));
  // Under no-grad (sampling) the option changes nothing.
  m.set_training(false);
  at::NoGradGuard ng;
  at::Tensor a = m.forward(x, t, y);
  m.set_gradient_checkpointing(false);
  EXPECT_TRUE(at::equal(a, m.forward(x, t, y)));
}

TEST(UNet, GradientCheckpointingKeepsFewerActivations) {
  // The graph of a checkpointed forward holds the block inputs only: count the bytes its saved tensors keep alive
  // via the allocator-independent proxy of the autograd graph size (number of nodes reachable from the output).
  UNetConfig c = daug::adm::unet_preset("tiny");
  at::manual_seed(1);
  UNetModel m(c, at::kCPU);
  const at::Tensor x = at::randn({1, 1, 32, 32}).requires_grad_(true);
  const at::Tensor t = at::tensor(std::vector<int64_t>{10});
  const at::Tensor y = at::tensor(std::vector<int64_t>{1});
  auto count_nodes = [](const at::Tensor& out) {
    std::vector<torch::autograd::Node*> todo = {out.grad_fn().get()};
    std::set<torch::autograd::Node*> seen;
    while (!todo.empty()) {
      auto* n = todo.back();
      todo.pop_back();
      if (!n || !seen.insert(n).second) continue;
      for (const auto& e : n->next_edges()) todo.push_back(e.function.get());
    }
    return seen.size();
  };
  const size_t plain = count_nodes(m.forward(x, t, y));
  m.set_gradient_checkpointing(true);
  const size_t ckpt = count_nodes(m.forward(x, t, y));
  EXPECT_LT(ckpt * 2, plain) << "plain graph " << plain << " nodes, checkpointed " << ckpt;
}

TEST(EncoderUNet, GradientCheckpointingGivesTheSameGradients) {
  UNetConfig c = daug::adm::encoder_preset("tiny");
  c.out_channels = 5;
  at::manual_seed(3);
  EncoderUNetModel m(c, at::kCPU);
  randomize(m.named_parameters());
  at::manual_seed(4);
  const at::Tensor x = at::randn({3, 1, 32, 32});
  const at::Tensor t = at::tensor(std::vector<int64_t>{1, 300, 999});
  auto fwd = [&](const at::Tensor& xi) { return m.forward(xi, t); };
  expect_same_grads(all_grads(m, false, x, fwd, 6), all_grads(m, true, x, fwd, 6));
  // autograd::grad w.r.t. the input only (the guidance's use) works through checkpointed blocks too.
  for (const auto& p : m.parameters()) {
    at::Tensor q = p;
    q.mutable_grad() = at::Tensor();
  }
  m.set_gradient_checkpointing(true);
  at::Tensor xi = x.detach().requires_grad_(true);
  at::Tensor g = torch::autograd::grad({m.forward(xi, t).sum()}, {xi})[0];
  m.set_gradient_checkpointing(false);
  at::Tensor xj = x.detach().requires_grad_(true);
  at::Tensor g0 = torch::autograd::grad({m.forward(xj, t).sum()}, {xj})[0];
  EXPECT_LE(max_abs_diff(g, g0), 1e-6 * g0.abs().max().item<double>());
  for (const auto& p : m.parameters()) EXPECT_FALSE(p.grad().defined());  // grad() accumulates nothing
}

TEST(UNet, ChannelsLastTorsoMatchesNchwClosely) {
  at::manual_seed(1);
  UNetModel m(daug::adm::unet_preset("tiny"), at::kCPU);
  randomize(m.named_parameters());
  UNetConfig ec = daug::adm::encoder_preset("tiny");
  EncoderUNetModel e(ec, at::kCPU);
  randomize(e.named_parameters());
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 1, 32, 32});
  const at::Tensor t = at::tensor(std::vector<int64_t>{10, 700});
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1});
  at::NoGradGuard ng;
  const at::Tensor a = m.forward(x, t, y), ea = e.forward(x, t);
  m.set_memory_format(at::MemoryFormat::ChannelsLast);
  e.set_memory_format(at::MemoryFormat::ChannelsLast);
  EXPECT_EQ(m.memory_format(), at::MemoryFormat::ChannelsLast);
  const at::Tensor b = m.forward(x, t, y), eb = e.forward(x, t);
  EXPECT_TRUE(b.is_contiguous());
  EXPECT_LE(max_abs_diff(a, b), 1e-4 * a.abs().max().item<double>());
  EXPECT_LE(max_abs_diff(ea, eb), 1e-4 * ea.abs().max().item<double>());
  m.set_memory_format(at::MemoryFormat::Contiguous);
  EXPECT_TRUE(at::equal(a, m.forward(x, t, y)));  // back to NCHW: bit-identical again
}
