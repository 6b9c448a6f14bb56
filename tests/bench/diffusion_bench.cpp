// One classifier-guided DDIM denoising step = ADM UNet forward (no grad) + noise-aware classifier forward/backward
// w.r.t. x_t (softmax guidance, torch::autograd::grad) + the condition_score update, with untrained weights (the
// cost does not depend on them). Presets: tiny (32², UNet 32 ch / encoder width 32) and wolleb256 (the released
// Wolleb/DAug layouts at 256²: UNet 113.7M params, classifier 5.45M), batch 1 and 8.
//   build/bench/diffusion_bench [--benchmark_filter=tiny]
// wolleb256 batch 8 runs a single iteration (tens of seconds per step on 2 CPU cores).
// Linked against daug_adm by tests/bench/CMakeLists.txt.
#include <daug/adm/diffusion.h>
#include <daug/adm/unet.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

namespace {

struct Models {
  std::unique_ptr<daug::adm::UNetModel> unet;
  std::unique_ptr<daug::adm::EncoderUNetModel> clf;
  std::unique_ptr<daug::adm::GaussianDiffusion> diffusion;
};

Models& models(const std::string& preset) {
  static std::map<std::string, Models> cache;
  auto it = cache.find(preset);
  if (it != cache.end()) return it->second;
  at::manual_seed(0);
  Models m;
  m.unet = std::make_unique<daug::adm::UNetModel>(daug::adm::unet_preset(preset), at::kCPU);
  auto c = daug::adm::encoder_preset(preset);
  c.out_channels = 7;
  m.clf = std::make_unique<daug::adm::EncoderUNetModel>(c, at::kCPU);
  // Non-zero output layers so that the step does real arithmetic everywhere.
  {
    at::NoGradGuard g;
    for (const daug::NamedTensors& list : {m.unet->named_parameters(), m.clf->named_parameters()}) {
      for (const auto& [k, v] : list) {
        at::Tensor t = v;
        if (k.find("out_layers.3") != std::string::npos || k.find("proj_out") != std::string::npos ||
            k.rfind("out.2", 0) == 0)
          t.normal_(0, 0.01);
      }
    }
  }
  m.diffusion = std::make_unique<daug::adm::GaussianDiffusion>(daug::adm::beta_schedule("linear", 1000),
                                                               daug::adm::space_timesteps(1000, "ddim100"),
                                                               daug::adm::VarianceType::learned_range);
  return cache.emplace(preset, std::move(m)).first->second;
}

void guided_step(benchmark::State& state, const std::string& preset) {
  at::set_num_threads(static_cast<int>(std::max<int64_t>(1, std::getenv("DAUG_BENCH_THREADS")
                                                                 ? std::atoi(std::getenv("DAUG_BENCH_THREADS"))
                                                                 : 1)));
  Models& m = models(preset);
  const int64_t n = state.range(0);
  const int64_t s = m.unet->config().image_size;
  at::Tensor x = at::randn({n, 1, s, s});
  at::Tensor y = at::ones({n}, at::kLong);
  at::Tensor target = at::zeros({n}, at::kLong);
  at::Tensor t = at::full({n}, 50, at::kLong);  // respaced index 50 = original timestep 500
  daug::adm::ModelFn model = [&](const at::Tensor& xx, const at::Tensor& tt) { return m.unet->forward(xx, tt, y); };
  daug::adm::GradFn grad = [&](const at::Tensor& xx, const at::Tensor& tt) {
    at::AutoGradMode on(true);
    at::Tensor xi = xx.detach().requires_grad_(true);
    at::Tensor lp = at::log_softmax(m.clf->forward(xi, tt), 1).gather(1, target.view({-1, 1})).sum();
    return torch::autograd::grad({lp}, {xi})[0] * 100.0;
  };
  at::NoGradGuard no_grad;
  for (auto _ : state) {
    at::Tensor out = m.diffusion->ddim_sample(model, x, t, true, &grad, 0.0, {});
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["unet_params"] = static_cast<double>(m.unet->num_parameters());
  state.counters["clf_params"] = static_cast<double>(m.clf->num_parameters());
}

void BM_GuidedDdimStep_tiny(benchmark::State& s) { guided_step(s, "tiny"); }
void BM_GuidedDdimStep_wolleb256(benchmark::State& s) { guided_step(s, "wolleb256"); }

}  // namespace

BENCHMARK(BM_GuidedDdimStep_tiny)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GuidedDdimStep_wolleb256)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_GuidedDdimStep_wolleb256)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
