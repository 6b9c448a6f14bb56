// Gradient checkpointing of the ADM UNet blocks (UNetModel::set_gradient_checkpointing, the ddpm option
// gradient_checkpointing): time and peak tensor memory of one training step (guided-diffusion training_losses with
// learned Σ at random t + backward), with and without checkpointing.
//   BM_TrainStep/<preset>/<size>/<batch>/<checkpoint>
//     tiny 32² batch 8; wolleb256 (the released 113.7M UNet) at 64² batch 2; daug512's UNet at 128² batch 1
// Counters: peak_act_MB = the peak of live CPU tensor bytes during the step minus what was live before it (the
// weights), from a counting wrapper around LibTorch's CPU allocator (oneDNN's internal scratch buffers are not
// counted); est_512_b16_GB (daug512 rows) = peak_act_MB scaled to 512² batch 16 (activations grow with batch ×
// pixels; the attention maps at ds 32 are 16×16 at 512² and negligible) + weights, gradients and AdamW state
// (4 × 113.7M fp32).
//   DAUG_BENCH_THREADS=1 build/bench/checkpoint_bench                      CPU only (the allocator hook is CPU's)
#include <daug/adm/diffusion.h>
#include <daug/adm/unet.h>

#include "eager.h"

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <atomic>
#include <memory>
#include <string>

namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define DAUG_ALLOC_CONST
#else
#define DAUG_ALLOC_CONST const
#endif

/// Wraps the CPU allocator and tracks live and peak bytes.
struct CountingAllocator final : c10::Allocator {
  c10::Allocator* base = nullptr;
  mutable std::atomic<int64_t> live{0}, peak{0};
  struct Ctx {
    c10::DataPtr inner;
    int64_t n;
    const CountingAllocator* self;
  };
  static void release(void* p) {
    auto* c = static_cast<Ctx*>(p);
    c->self->live -= c->n;
    delete c;
  }
  c10::DataPtr allocate(size_t n) DAUG_ALLOC_CONST override {
    c10::DataPtr inner = base->allocate(n);
    void* data = inner.get();
    const auto dev = inner.device();
    const int64_t v = live += static_cast<int64_t>(n);
    int64_t p = peak.load();
    while (v > p && !peak.compare_exchange_weak(p, v)) {
    }
    return {data, new Ctx{std::move(inner), static_cast<int64_t>(n), this}, &release, dev};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
};

CountingAllocator& counting() {
  static CountingAllocator* a = [] {
    auto* c = new CountingAllocator;  // leaked: tensors may outlive static destruction
    c->base = c10::GetCPUAllocator();
    c10::SetCPUAllocator(c, /*priority=*/100);
    return c;
  }();
  return *a;
}

void train_step(benchmark::State& state, const std::string& preset) {
  if (!daug::bench::device().is_cpu()) {
    state.SkipWithError("checkpoint_bench measures CPU allocations only");
    return;
  }
  at::set_num_threads(daug::bench::threads());
  CountingAllocator& alloc = counting();
  const int64_t size = state.range(0), batch = state.range(1);
  const bool ckpt = state.range(2) != 0;
  at::manual_seed(0);
  daug::adm::UNetModel unet(daug::adm::unet_preset(preset), at::kCPU);
  unet.set_training(true);
  unet.set_gradient_checkpointing(ckpt);
  daug::adm::GaussianDiffusion diffusion(daug::adm::beta_schedule("linear", 1000), {},
                                         daug::adm::VarianceType::learned_range);
  at::Tensor x0 = at::rand({batch, 1, size, size}) * 2 - 1;
  at::Tensor y = at::ones({batch}, at::kLong);
  daug::adm::ModelFn model = [&](const at::Tensor& x, const at::Tensor& t) { return unet.forward(x, t, y); };
  double peak_act = 0;
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    for (const auto& p : unet.parameters()) {
      at::Tensor q = p;
      q.mutable_grad() = at::Tensor();
    }
    at::manual_seed(1);
    at::Tensor t = at::randint(0, 1000, {batch}, at::kLong);
    at::Tensor noise = at::randn_like(x0);
    const int64_t before = alloc.live.load();
    alloc.peak = before;
    diffusion.training_losses(model, x0, t, noise).loss.mean().backward();
    peak_act = static_cast<double>(alloc.peak.load() - before);
    timer.lap();
  }
  state.counters["peak_act_MB"] = peak_act / 1e6;
  state.counters["step_s"] = timer.best();
  if (preset == "daug512") {
    const double scale = (512.0 * 512.0 * 16.0) / static_cast<double>(size * size * batch);
    state.counters["est_512_b16_GB"] = (peak_act * scale + 4.0 * 4.0 * static_cast<double>(unet.num_parameters())) / 1e9;
  }
  state.SetLabel(preset + (ckpt ? " checkpointed" : " plain"));
}

}  // namespace

BENCHMARK_CAPTURE(train_step, tiny, std::string("tiny"))
    ->Args({32, 8, 0})->Args({32, 8, 1})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK_CAPTURE(train_step, wolleb256, std::string("wolleb256"))
    ->Args({64, 2, 0})->Args({64, 2, 1})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK_CAPTURE(train_step, daug512, std::string("daug512"))
    ->Args({128, 1, 0})->Args({128, 1, 1})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
