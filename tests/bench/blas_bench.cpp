// BLAS backend check: LibTorch (Debian) calls the system libblas.so.3. Run this twice to compare backends:
//   build/bench/blas_bench                                                     # the system default (OpenBLAS after setup.sh)
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas build/bench/blas_bench      # Debian's reference BLAS
// The matrix-heavy ops: a 512x512 float matmul, and a ViT-B/32-sized linear layer (50 tokens x 768 -> 3072).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

static void BM_Matmul512(benchmark::State& state) {
  auto a = at::randn({512, 512});
  auto b = at::randn({512, 512});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b));
  state.SetItemsProcessed(state.iterations() * 2LL * 512 * 512 * 512);  // FLOPs
}
BENCHMARK(BM_Matmul512)->Unit(benchmark::kMillisecond);

static void BM_VitMlpLinear(benchmark::State& state) {
  auto x = at::randn({8 * 50, 768});
  auto w = at::randn({3072, 768});
  for (auto _ : state) benchmark::DoNotOptimize(at::linear(x, w));
  state.SetItemsProcessed(state.iterations() * 2LL * 400 * 768 * 3072);
}
BENCHMARK(BM_VitMlpLinear)->Unit(benchmark::kMillisecond);
