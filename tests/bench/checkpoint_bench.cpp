// Gradient checkpointing of the ADM UNet blocks (UNetModel::set_gradient_checkpointing, the ddpm option
// gradient_checkpointing): time and peak tensor memory of one training step (guided-diffusion training_losses with
// learned Σ at random t + backward), with and without checkpointing.
//   BM_TrainStep/<preset>/<size>/<batch>/<checkpoint>
//     tiny 32² batch 8; wolleb256 (the released 113.7M UNet) at 64² batch 2; daug512's UNet at 128² batch 1
// Counters: peak_MB = the peak of live CPU tensor bytes during the step minus what was live before it (the
// weights), from a counting CPU allocator installed with c10::SetCPUAllocator (every ATen/oneDNN buffer that goes
// through it); peak_act_MB = peak_MB minus the parameter gradients (4 bytes × parameters; a lower bound of the
// activations at the peak); est_512_b16_GB (daug512 rows) = peak_act_MB scaled to 512² batch 16 (activations grow
// with batch × pixels; the attention maps at ds 32 are 16×16 at 512², negligible) + weights, gradients and AdamW
// state (4 × 113.7M × 4 bytes), fp32.
//   DAUG_BENCH_THREADS=1 build/bench/checkpoint_bench                      CPU only (the allocator hook is CPU's)
#include <daug/adm/diffusion.h>
#include <daug/adm/unet.h>

#include "eager.h"

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/version.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define DAUG_ALLOC_CONST
#else
#define DAUG_ALLOC_CONST const
#endif

/// A CPU allocator (c10::alloc_cpu/free_cpu, as the default one) that tracks live and peak bytes. The context of
/// each DataPtr is the data pointer itself (raw_allocate users such as oneDNN require it), sizes live in a map.
struct CountingAllocator final : c10::Allocator {
  static CountingAllocator* self;
  mutable std::mutex mu;
  mutable std::unordered_map<void*, int64_t> sizes;
  mutable std::atomic<int64_t> live{0}, peak{0};
  static void release(void* p) {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lk(self->mu);
      auto it = self->sizes.find(p);
      if (it != self->sizes.end()) {
        self->live -= it->second;
        self->sizes.erase(it);
      }
    }
    c10::free_cpu(p);
  }
  c10::DataPtr allocate(size_t n) DAUG_ALLOC_CONST override {
    void* data = n ? c10::alloc_cpu(n) : nullptr;
    if (data) {
      std::lock_guard<std::mutex> lk(mu);
      sizes[data] = static_cast<int64_t>(n);
      const int64_t v = live += static_cast<int64_t>(n);
      if (v > peak) peak = v;
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
};
CountingAllocator* CountingAllocator::self = nullptr;

CountingAllocator& counting() {
  static CountingAllocator* a = [] {
    auto* c = new CountingAllocator;  // leaked: tensors may outlive static destruction
    CountingAllocator::self = c;
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
  double peak = 0;
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
    peak = static_cast<double>(alloc.peak.load() - before);
    timer.lap();
  }
  // The parameter gradients (allocated in backward, kept after it) are not activations: take them out.
  const double grads = 4.0 * static_cast<double>(unet.num_parameters());
  const double peak_act = peak - grads;
  state.counters["peak_MB"] = peak / 1e6;
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
