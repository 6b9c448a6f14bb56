// One classifier-guided DDIM denoising step = ADM UNet forward (no grad) + noise-aware classifier forward/backward
// w.r.t. x_t (softmax guidance, torch::autograd::grad) + the condition_score update, with untrained weights (the
// cost does not depend on them). Presets: tiny (32², UNet 32 ch / encoder width 32) and wolleb256 (the released
// Wolleb/DAug layouts at 256²: UNet 113.7M params, classifier 5.45M), batch 1 and 8. Variants:
//   guided_step/<preset>/<batch>            fp32, sequential (what the heatmaps stage does by default)
//   guided_step/<preset>_concurrent/<batch> fp32, UNet forward and classifier gradient on two threads
//                                                 (adm::ConcurrentGuidance, the ddpm option concurrent_guidance)
//   guided_step/<preset>_channels_last/<batch>  fp32, channels-last torso of both nets
//   guided_step/<preset>_bf16/<batch>       bf16 torso of both nets; skipped ("not supported here") on a CPU
//                                                 without AVX512-BF16/AMX
// Each reports ratio_vs_eager = eager seconds / daug seconds against tests/bench/eager_baseline.py run in the same
// session with the same shapes and threads (tests/bench/eager.h: DAUG_BENCH_DEVICE, DAUG_BENCH_THREADS,
// DAUG_BENCH_EAGER=0 to skip it).
//   DAUG_BENCH_THREADS=2 build/bench/diffusion_bench [--benchmark_filter=tiny]
// wolleb256 batch 8 runs a single iteration (tens of seconds per step on 2 CPU cores).
// Linked against daug_adm by tests/bench/CMakeLists.txt.
#include <daug/adm/diffusion.h>
#include <daug/adm/translate.h>
#include <daug/adm/unet.h>

#include "eager.h"

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
  m.unet = std::make_unique<daug::adm::UNetModel>(daug::adm::unet_preset(preset), daug::bench::device());
  auto c = daug::adm::encoder_preset(preset);
  c.out_channels = 7;
  m.clf = std::make_unique<daug::adm::EncoderUNetModel>(c, daug::bench::device());
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

enum class Mode { sequential, concurrent, bf16, channels_last };

void guided_step(benchmark::State& state, const std::string& preset, Mode mode) {
  if (mode == Mode::bf16 && daug::bench::device().is_cpu() && !daug::bench::cpu_has_bf16()) {
    state.SkipWithError("bf16: not supported here (this CPU has no AVX512-BF16/AMX-BF16; the bf16 target applies "
                        "only where it has)");
    return;
  }
  at::set_num_threads(daug::bench::threads());
  Models& m = models(preset);
  const auto dev = daug::bench::device();
  const auto dtype = mode == Mode::bf16 ? at::kBFloat16 : at::kFloat;
  m.unet->set_compute_dtype(dtype);
  m.clf->set_compute_dtype(dtype);
  const auto format = mode == Mode::channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  m.unet->set_memory_format(format);
  m.clf->set_memory_format(format);
  const int64_t n = state.range(0);
  const int64_t s = m.unet->config().image_size;
  at::Tensor x = at::randn({n, 1, s, s}).to(dev);
  at::Tensor y = at::ones({n}, at::kLong).to(dev);
  at::Tensor target = at::zeros({n}, at::kLong).to(dev);
  at::Tensor t = at::full({n}, 50, at::kLong).to(dev);  // respaced index 50 = original timestep 500
  daug::adm::ModelFn model = [&](const at::Tensor& xx, const at::Tensor& tt) { return m.unet->forward(xx, tt, y); };
  daug::adm::GradFn grad = [&](const at::Tensor& xx, const at::Tensor& tt) {
    at::AutoGradMode on(true);
    at::Tensor xi = xx.detach().requires_grad_(true);
    at::Tensor lp = at::log_softmax(m.clf->forward(xi, tt).to(at::kFloat), 1).gather(1, target.view({-1, 1})).sum();
    return torch::autograd::grad({lp}, {xi})[0] * 100.0;
  };
  at::NoGradGuard no_grad;
  std::unique_ptr<daug::adm::ConcurrentGuidance> cg;
  if (mode == Mode::concurrent) cg = std::make_unique<daug::adm::ConcurrentGuidance>(model, grad, 1);
  const daug::adm::ModelFn& model_fn = cg ? cg->model() : model;
  const daug::adm::GradFn& grad_fn = cg ? cg->grad() : grad;
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    at::Tensor out = m.diffusion->ddim_sample(model_fn, x, t, true, &grad_fn, 0.0, {});
    daug::bench::sync(out);
    timer.lap();
  }
  cg.reset();
  m.unet->set_compute_dtype(at::kFloat);
  m.clf->set_compute_dtype(at::kFloat);
  m.unet->set_memory_format(at::MemoryFormat::Contiguous);
  m.clf->set_memory_format(at::MemoryFormat::Contiguous);
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(n * state.iterations()), benchmark::Counter::kIsRate);
  state.counters["unet_params"] = static_cast<double>(m.unet->num_parameters());
  state.counters["clf_params"] = static_cast<double>(m.clf->num_parameters());
  state.counters["threads"] = daug::bench::threads();
  // The baseline is eager fp32 in every variant (the targets are ratios to eager fp32).
  daug::bench::report_vs_eager(state, timer,
                               "guided --preset " + preset + " --batch " + std::to_string(n) +
                                   (preset == "tiny" ? " --iters 5" : n > 1 ? " --iters 1 --warmup 1" : " --iters 2"));
  state.SetLabel(preset + (mode == Mode::concurrent      ? " concurrent"
                          : mode == Mode::bf16          ? " bf16"
                          : mode == Mode::channels_last ? " channels_last"
                                                        : " fp32") +
                 " on " + dev.str());
}

}  // namespace

BENCHMARK_CAPTURE(guided_step, tiny, std::string("tiny"), Mode::sequential)
    ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(guided_step, tiny_concurrent, std::string("tiny"), Mode::concurrent)
    ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(guided_step, tiny_channels_last, std::string("tiny"), Mode::channels_last)
    ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(guided_step, tiny_bf16, std::string("tiny"), Mode::bf16)
    ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(guided_step, wolleb256, std::string("wolleb256"), Mode::sequential)
    ->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK_CAPTURE(guided_step, wolleb256, std::string("wolleb256"), Mode::sequential)
    ->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(guided_step, wolleb256_concurrent, std::string("wolleb256"), Mode::concurrent)
    ->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK_CAPTURE(guided_step, wolleb256_concurrent, std::string("wolleb256"), Mode::concurrent)
    ->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(guided_step, wolleb256_channels_last, std::string("wolleb256"), Mode::channels_last)
    ->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK_CAPTURE(guided_step, wolleb256_bf16, std::string("wolleb256"), Mode::bf16)
    ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
