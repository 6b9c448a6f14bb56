// clip_vit benchmarks: ViT-B/32 image forward at 256² (batch 1 and 8), a DAug fine-tune step at batch 32
// (image + text towers, forward + backward + AdamW), tokenizer throughput.
//
//   build/bench/clip_bench [--benchmark_filter=...]        device: DAUG_BENCH_DEVICE=cpu|cuda (default cpu)
// Threads: LibTorch's default (set OMP_NUM_THREADS to pin).
#include "clip_vit.h"

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {
using daug::plugins::clip::ClipVit;

std::string bench_device() {
  const char* d = std::getenv("DAUG_BENCH_DEVICE");
  return d && *d ? d : "cpu";
}

std::unique_ptr<ClipVit> make_b32() {
  ClipVit::Options o;
  o.preset = "vit_b32";
  o.image_size = 256;
  o.context_length = 154;
  o.vocab = DAUG_CLIP_VOCAB_FILE;
  torch::manual_seed(0);
  return std::make_unique<ClipVit>(o, bench_device());
}

void sync(const at::Tensor& t) {
  if (t.is_cuda()) t.cpu();  // forces completion
}

const std::vector<std::string>& reports() {
  static const std::vector<std::string> r = {
      "FINDINGS: PA and lateral views of the chest. The heart size is mildly enlarged. There is a small left "
      "pleural effusion with adjacent atelectasis. No pneumothorax. IMPRESSION: Mild cardiomegaly, small left "
      "effusion.",
      "Single portable AP view. Endotracheal tube terminates 4.2 cm above the carina; enteric tube courses below "
      "the diaphragm. Lungs are clear. No focal consolidation, effusion, or pneumothorax.",
      "Compared to 2019-03-14, there is new right lower lobe opacity concerning for pneumonia. Cardiomediastinal "
      "silhouette is within normal limits. Degenerative changes of the thoracic spine.",
      "No acute cardiopulmonary process. Stable postoperative appearance after median sternotomy and CABG; "
      "sternal wires are intact. Mild pulmonary vascular congestion without frank edema.",
      "Interval placement of a right-sided PICC line with tip in the mid SVC. Persistent bibasilar atelectasis. "
      "Possible trace left pleural effusion; otherwise unremarkable."};
  return r;
}

void BM_ClipVitB32ImageForward256(benchmark::State& state) {
  auto clip = make_b32();
  clip->set_training(false);
  at::Tensor px = at::randn({state.range(0), 3, 256, 256});
  at::NoGradGuard ng;
  sync(clip->encode_image(px));  // warm-up
  for (auto _ : state) {
    at::Tensor e = clip->encode_image(px);
    sync(e);
    benchmark::DoNotOptimize(e.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["device_cuda"] = bench_device() != "cpu";
}
BENCHMARK(BM_ClipVitB32ImageForward256)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

// One DAug training step: hybrid-loss shape (CLIP image-report loss + BCE against 14 class prompts), AdamW.
void BM_ClipVitB32FineTuneStep(benchmark::State& state) {
  const int64_t B = state.range(0), L = state.range(1);
  auto clip = make_b32();
  clip->set_training(true);
  torch::optim::AdamW opt(clip->parameters(), torch::optim::AdamWOptions(2e-5).weight_decay(0.01));
  at::Tensor px = at::randn({B, 3, 256, 256});
  std::vector<std::string> texts;
  for (int64_t i = 0; i < B; ++i) texts.push_back(reports()[static_cast<size_t>(i) % reports().size()]);
  at::Tensor tok = clip->tokenize(texts);
  // Pad (EOT) to the benchmark's text length to control cost.
  if (tok.size(1) < L) tok = at::cat({tok, at::full({B, L - tok.size(1)}, 49407L)}, 1);
  std::vector<std::string> prompts;
  for (int i = 0; i < 14; ++i) prompts.push_back("A chest-xray image of finding " + std::to_string(i) + ".");
  at::Tensor ptok = clip->tokenize(prompts);
  at::Tensor labels = at::randint(0, 2, {B, 14}).to(at::kFloat);
  at::Tensor target = at::arange(B, at::kLong);
  const double w = 0.7;
  auto step = [&] {
    opt.zero_grad();
    at::Tensor x = clip->encode_image(px), t = clip->encode_text(tok), c = clip->encode_text(ptok);
    x = x / x.norm(2, -1, true);
    t = t / t.norm(2, -1, true);
    c = c / c.norm(2, -1, true);
    at::Tensor s = clip->logit_scale().exp();
    at::Tensor lt = s * at::matmul(t, x.t().to(t.device()));
    at::Tensor lc = s * at::matmul(x, c.t());
    at::Tensor tgt = target.to(lt.device());
    at::Tensor loss = w * (at::cross_entropy_loss(lt, tgt) + at::cross_entropy_loss(lt.t(), tgt)) / 2 +
                      (1 - w) * at::binary_cross_entropy_with_logits(lc, labels.to(lc.device()));
    loss.backward();
    opt.step();
    return loss;
  };
  sync(step());  // warm-up (allocates AdamW state)
  for (auto _ : state) sync(step());
  state.SetItemsProcessed(state.iterations() * B);
}
BENCHMARK(BM_ClipVitB32FineTuneStep)->Args({32, 77})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_ClipTokenizerReports(benchmark::State& state) {
  daug::plugins::clip::ClipTokenizer tok(DAUG_CLIP_VOCAB_FILE);
  // Steady state: the per-word BPE cache is warm after the first round, as on a real report corpus (the
  // appended counter only adds digit pieces, which are single tokens).
  int64_t n = 0, ids = 0;
  for (auto _ : state) {
    for (const auto& r : reports()) {
      auto v = tok.encode(r + " case " + std::to_string(n++));
      ids += static_cast<int64_t>(v.size());
    }
  }
  state.SetItemsProcessed(n);  // reports/s
  state.counters["tokens_per_report"] = static_cast<double>(ids) / static_cast<double>(std::max<int64_t>(n, 1));
}
BENCHMARK(BM_ClipTokenizerReports)->Unit(benchmark::kMicrosecond);

}  // namespace
