// CLIP fine-tuning and evaluation benchmarks (engineer E's parts):
//   BM_FinetuneStep/tiny/32   one DAug fine-tune step of the tiny CLIP (32 px, 16 tokens), batch 32
//   BM_FinetuneStep/vit_b32/32  the same for ViT-B/32 at 256 px, reports of 77 tokens (the released context)
//       step = image tower + report text tower + 14 class prompts (re-embedded every step) → hybrid loss
//       (w = 0.7, s = exp(4.602)) → backward → AdamW (no decay on biases), exactly what train_clip does per step
//   BM_RetrievalMap/10000     top-5 over a 10k×10k similarity (chunked) + per-class mAP@5 (released AP)
//   BM_ClassificationAuc/10000  per-class Mann-Whitney AUC on 10k×14 scores
//
//   build/bench/clip_train_bench [--benchmark_filter=...]     device: DAUG_BENCH_DEVICE=cpu|cuda (default cpu)
// BM_FinetuneStep reports ratio_vs_eager against tests/bench/eager_baseline.py finetune (OpenAI CLIP model.py with
// nn.MultiheadAttention and torch.optim.AdamW, the same shapes and threads) run in the same session (eager.h).
//
// Self-contained on purpose: it compiles the sources it measures (clip_shared's losses/metrics and clip_vit's model);
// the optimizer comes from libs/train (daug_train, linked in tests/bench/CMakeLists.txt).
#include "../../libs/clip/clip_common.cpp"
#include "../../libs/clip/clip_metrics.cpp"
#include "../../plugins/backbone_clip_vit/clip_model.cpp"

#include <daug/train/optimizer.h>

#include "eager.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <string>

namespace {

at::Device bench_device() { return daug::bench::device(); }

void sync(const at::Tensor& t) { daug::bench::sync(t); }

/// Random token ids [n, len] with SOT first and EOT (49407, the largest id → argmax pooling) last.
at::Tensor tokens(int64_t n, int64_t len, int64_t vocab, const at::Device& dev) {
  auto t = at::randint(1, vocab - 2, {n, len}, at::kLong);
  t.select(1, 0).fill_(vocab - 2);
  t.select(1, len - 1).fill_(vocab - 1);
  return t.to(dev);
}

void BM_FinetuneStep(benchmark::State& state, const std::string& preset) {
  const auto dev = bench_device();
  auto arch = daug::plugins::clip::clip_preset(preset);
  int64_t report_len = 16;
  if (preset == "vit_b32") {
    arch.image_size = 256;
    arch.context_length = 77;
    report_len = 77;
  }
  at::set_num_threads(daug::bench::threads());
  at::manual_seed(0);
  daug::plugins::clip::ClipModel model(arch);
  model->initialize(std::log(1 / 0.07));
  model->to(dev);
  model->train();
  const int64_t b = state.range(0);
  auto pixels = at::randn({b, 3, arch.image_size, arch.image_size}, at::TensorOptions(dev));
  auto reports = tokens(b, report_len, arch.vocab_size, dev);
  auto prompts = tokens(14, 12, arch.vocab_size, dev);
  auto labels = (at::rand({b, 14}, at::TensorOptions(dev)) > 0.7).to(at::kFloat);
  std::vector<at::Tensor> params;
  daug::NamedTensors named;
  for (const auto& p : model->named_parameters()) {
    if (p.value().requires_grad()) params.push_back(p.value());
    named.emplace_back(p.key(), p.value());
  }
  daug::train::AdamW opt(params, daug::train::AdamWOptions{0.9, 0.999, 1e-8, 0.01},
                         daug::train::decay_flags(params, named, {"bias"}));
  const auto s = at::scalar_tensor(std::exp(4.602), at::TensorOptions(dev));
  daug::bench::MinTimer timer;
  timer.start();
  for (auto _ : state) {
    auto img = daug::clip::l2_normalize(model->encode_image(pixels));
    auto txt = daug::clip::l2_normalize(model->encode_text(reports));
    auto cls = daug::clip::l2_normalize(model->encode_text(prompts));
    auto loss = 0.7 * daug::clip::clip_loss(img, txt, s) + 0.3 * daug::clip::class_bce_loss(img, cls, labels, s);
    opt.zero_grad();
    loss.backward();
    opt.step(2e-5);
    sync(loss);
    benchmark::DoNotOptimize(loss);
    timer.lap();
  }
  state.counters["pairs/s"] = benchmark::Counter(static_cast<double>(b), benchmark::Counter::kIsIterationInvariantRate);
  daug::bench::report_vs_eager(state, timer,
                               "finetune --preset " + preset + " --batch " + std::to_string(b) +
                                   (preset == "tiny" ? " --iters 5" : " --iters 1 --warmup 1"));
  state.SetLabel(preset + " on " + dev.str());
}
BENCHMARK_CAPTURE(BM_FinetuneStep, tiny, std::string("tiny"))->Arg(32)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FinetuneStep, vit_b32, std::string("vit_b32"))
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);

void BM_RetrievalMap(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::manual_seed(0);
  auto q = daug::clip::l2_normalize(at::randn({n, 512}));
  auto g = daug::clip::l2_normalize(at::randn({n, 512}));
  auto ql = (at::rand({n, 14}) > 0.8).to(at::kFloat);
  auto gl = (at::rand({n, 14}) > 0.8).to(at::kFloat);
  for (auto _ : state) {
    auto idx = daug::clip::topk_indices(q, g, 5);  // the 10k×10k similarity, in chunks of 1024 queries
    auto row = daug::clip::retrieval_map(idx, ql, gl, daug::clip::ApKind::released, "mAP@5");
    benchmark::DoNotOptimize(row.avg);
  }
  state.SetLabel(std::to_string(n) + "x" + std::to_string(n) + " similarities, D=512, K=5, 14 classes");
}
BENCHMARK(BM_RetrievalMap)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_ClassificationAuc(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::manual_seed(0);
  auto scores = at::randn({n, 14}, at::kDouble);
  auto labels = (at::rand({n, 14}) > 0.8).to(at::kDouble);
  for (auto _ : state) {
    auto row = daug::clip::classification_auc(scores, labels, "AUC");
    benchmark::DoNotOptimize(row.avg);
  }
}
BENCHMARK(BM_ClassificationAuc)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
