// Data-layer throughput, one thread: image decode (an embedded NIH 256² PNG; a MIMIC-sized 2544×3056 gray JPEG),
// resizing to the diffusion/CLIP inputs, .npy round trip of a 512² heatmap, CSV parsing.
#include <daug/data/csv.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "jpeg_file.h"

namespace {

const std::filesystem::path kTmp = std::filesystem::temp_directory_path() / "daug_data_bench";

std::filesystem::path mimic_sized_jpeg() {
  static std::filesystem::path p = [] {
    std::filesystem::create_directories(kTmp);
    auto path = kTmp / "mimic_sized.jpg";
    const int w = 2544, h = 3056;
    std::vector<uint8_t> px(static_cast<size_t>(w) * h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) px[static_cast<size_t>(y) * w + x] = static_cast<uint8_t>((x / 7 + y / 5 + (x * y) % 13) & 0xff);
    daug::testing::write_jpeg_file(path, w, h, 1, px.data(), 95);
    return path;
  }();
  return p;
}

void BM_LoadGrayPng256(benchmark::State& state) {
  at::set_num_threads(1);
  const auto p = std::filesystem::path(DAUG_SOURCE_DIR) / "examples/data/nih-cxr14-sample/images/00000075_000.png";
  for (auto _ : state) benchmark::DoNotOptimize(daug::data::load_gray(p));
}
BENCHMARK(BM_LoadGrayPng256)->Unit(benchmark::kMillisecond);

void BM_LoadGrayJpegMimicSize(benchmark::State& state) {
  at::set_num_threads(1);
  const auto p = mimic_sized_jpeg();
  for (auto _ : state) benchmark::DoNotOptimize(daug::data::load_gray(p));
}
BENCHMARK(BM_LoadGrayJpegMimicSize)->Unit(benchmark::kMillisecond);

void BM_LoadGrayJpegMimicSizeReduced(benchmark::State& state) {
  at::set_num_threads(1);
  const auto p = mimic_sized_jpeg();
  const int64_t target = state.range(0);
  for (auto _ : state) {
    at::Tensor x = daug::data::load_gray_reduced(p, target, target);
    benchmark::DoNotOptimize(daug::data::resize(x, target, target, daug::data::Filter::bicubic));
  }
}
BENCHMARK(BM_LoadGrayJpegMimicSizeReduced)->Arg(512)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_ResizeBicubicAA(benchmark::State& state) {
  at::set_num_threads(1);
  const int64_t out = state.range(0);
  at::Tensor x = at::rand({1, 3056, 2544});
  for (auto _ : state) benchmark::DoNotOptimize(daug::data::resize(x, out, out, daug::data::Filter::bicubic));
}
BENCHMARK(BM_ResizeBicubicAA)->Arg(512)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_ResizeArea(benchmark::State& state) {
  at::set_num_threads(1);
  at::Tensor x = at::rand({1, 3056, 2544});
  for (auto _ : state) benchmark::DoNotOptimize(daug::data::resize(x, 512, 512, daug::data::Filter::area));
}
BENCHMARK(BM_ResizeArea)->Unit(benchmark::kMillisecond);

void BM_NpyRoundTrip512(benchmark::State& state) {
  at::set_num_threads(1);
  std::filesystem::create_directories(kTmp);
  const auto p = kTmp / "heat.npy";
  at::Tensor h = at::rand({512, 512});
  for (auto _ : state) {
    daug::data::save_npy(p, h);
    benchmark::DoNotOptimize(daug::data::load_npy(p));
  }
}
BENCHMARK(BM_NpyRoundTrip512)->Unit(benchmark::kMillisecond);

void BM_CsvParse(benchmark::State& state) {
  std::string text = "dicom_id,subject_id,study_id,ViewPosition,Rows,Columns,report\n";
  for (int i = 0; i < state.range(0); ++i)
    text += fmt::format("{:08x}-bde0afdd-112c0b34-7bc16630-4e384014,{},{},PA,3056,2544,\"Lungs are clear, no effusion.\"\n",
                        i, 10000000 + i, 50000000 + i);
  for (auto _ : state) benchmark::DoNotOptimize(daug::data::CsvTable::parse(text, "bench.csv"));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_CsvParse)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
