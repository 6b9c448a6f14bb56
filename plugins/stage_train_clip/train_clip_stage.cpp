#include "train_clip_stage.h"

#include "clip_common.h"

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/register.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

namespace daug::plugins {

void TrainClipOptions::visit(OptionVisitor& v) {
  v("data", data, "Source table (images, reports, labels, split)", Check::required_non_empty());
  v("backbone", backbone, "Backbone table (CLIP image and text towers)", Check::required_non_empty());
  v("criterion", criterion, "Criterion table (clip or hybrid)", Check::required_non_empty());
  v("composer", composer, "HeatmapComposer table (channel); \"\" = plain image, no heatmaps");
  clip::visit_heatmap_options(v, heatmaps);
  v("split", split, "training split(s), '+'-joined (released: train+val)", Check::required_non_empty());
  v("prompts", prompts, "14 class prompts in CheXbert order; [] = the released prompts verbatim");
  v("epochs", epochs, "training epochs (released 10)", Check::at_least(1));
  v("batch_size", batch_size, "pairs per step; the contrastive batch (released 32 per GPU)", Check::at_least(2));
  v("lr", lr, "peak learning rate (released 2e-5)", Check::greater_than(0));
  v("weight_decay", weight_decay, "AdamW decoupled weight decay (released 0.01)", Check::at_least(0));
  v("no_decay", no_decay, "parameters whose name contains one of these substrings get no weight decay "
    "(released: 'bias' — LayerNorm weights ARE decayed under HF names)");
  v("warmup_steps", warmup_steps, "linear warmup in optimizer steps (released 10)", Check::at_least(0));
  v("schedule", schedule, "\"cosine\" (HF get_cosine_schedule_with_warmup) or \"constant\" (after warmup)",
    Check::choice({"cosine", "constant"}));
  v("beta1", beta1, "AdamW beta1", Check::range(0, 1));
  v("beta2", beta2, "AdamW beta2", Check::range(0, 1));
  v("eps", eps, "AdamW eps", Check::greater_than(0));
  v("grad_clip", grad_clip, "max global gradient norm; 0 = off (released: off)", Check::at_least(0));
  v("seed", seed, "shuffling seed; -1 = the run's [run].seed", Check::at_least(-1));
  v("drop_last", drop_last, "drop the last incomplete batch of each epoch (released: true)");
  v("max_steps", max_steps, "stop after this many optimizer steps (0 = epochs × steps per epoch); the LR schedule "
    "spans the shorter length", Check::at_least(0));
  v("checkpoint_every", checkpoint_every, "checkpoint every N steps (0 = at the end of every epoch)",
    Check::at_least(0));
  v("resume", resume, "continue from checkpoint.safetensors in the output directory if present");
  v("log_every", log_every, "log progress every N steps", Check::at_least(1));
}

TrainClipStage::TrainClipStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
                               std::shared_ptr<Criterion> criterion, std::shared_ptr<HeatmapComposer> composer,
                               std::string device, uint64_t run_seed)
    : opts_(std::move(opts)),
      data_(std::move(data)),
      backbone_(std::move(backbone)),
      criterion_(std::move(criterion)),
      composer_(std::move(composer)),
      device_(std::move(device)),
      seed_(opts_.seed >= 0 ? static_cast<uint64_t>(opts_.seed) : run_seed) {
  if (opts_.prompts.empty()) opts_.prompts = clip::released_prompts();
  DAUG_CHECK_AS(ConfigError, opts_.prompts.size() == 14, "[train_clip].prompts must hold 14 class prompts (CheXbert "
                "order), but got ", opts_.prompts.size());
}

std::shared_ptr<Stage> TrainClipStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  auto backbone = ctx.component<Backbone>(opts.backbone);
  auto criterion = ctx.component<Criterion>(opts.criterion);
  std::shared_ptr<HeatmapComposer> composer;
  if (!opts.composer.empty()) composer = ctx.component<HeatmapComposer>(opts.composer);
  if (clip::uses_heatmap_stage(opts.heatmaps, composer.get())) ctx.component<Stage>(opts.heatmaps.heatmaps_stage);
  return std::make_shared<TrainClipStage>(std::move(opts), data, backbone, criterion, composer, ctx.device(),
                                          ctx.seed());
}

std::vector<Artifact> TrainClipStage::outputs() const {
  return {{artifacts::kCheckpoint, "checkpoint.safetensors",
           "fine-tuned backbone (keys model.*) with optimizer state and metadata (prompts, criterion)"},
          {artifacts::kLosses, "losses.csv", "loss, lr and gradient norm per optimizer step"},
          summary_artifact()};
}

namespace {

std::vector<int64_t> epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  for (size_t i = n; i > 1; --i) {  // Fisher-Yates with our own draw: identical on every standard library
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  double total = 0;
  for (const auto& p : params)
    if (p.grad().defined()) total += p.grad().pow(2).sum().item<double>();
  total = std::sqrt(total);
  if (max_norm > 0 && total > max_norm) {
    const double f = max_norm / (total + 1e-6);
    at::NoGradGuard g;
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(f);
  }
  return total;
}

std::string fmt_duration(double s) {
  const auto t = static_cast<int64_t>(s);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60) : fmt::format("{}m{:02d}s", t / 60, t % 60);
}

}  // namespace

void TrainClipStage::run(StageContext& ctx) {
  const std::string where = "[train_clip]";
  const at::Device device(device_);
  auto samples = data_->split(opts_.split);
  auto spec = clip::resolve_heatmaps(opts_.heatmaps, composer_.get(), ctx, where);
  samples = clip::require_heatmaps(samples, spec, opts_.heatmaps.on_missing_heatmap, ctx.strict, where);
  clip::require_reports(samples, where);
  const auto n = static_cast<int64_t>(samples.size());
  const int64_t bs = opts_.batch_size;
  DAUG_CHECK_AS(DataError, !opts_.drop_last || n >= bs, where, ": split '", opts_.split, "' has ", n,
                " usable images, fewer than batch_size = ", bs, " (with drop_last = true no step would run)");
  const int64_t per_epoch = opts_.drop_last ? n / bs : (n + bs - 1) / bs;
  int64_t total = per_epoch * opts_.epochs;
  if (opts_.max_steps > 0) total = std::min(total, opts_.max_steps);

  auto params = backbone_->parameters();
  DAUG_CHECK(!params.empty(), where, ": the backbone ", backbone_->describe(), " has no trainable parameters");
  auto flags = clip::decay_flags(params, backbone_->state(), opts_.no_decay);
  clip::AdamW opt(params, flags, opts_.weight_decay, opts_.beta1, opts_.beta2, opts_.eps);
  const auto n_nodecay = std::count(flags.begin(), flags.end(), false);

  const auto ckpt_path = ctx.output(artifacts::kCheckpoint);
  const auto csv_path = ctx.output(artifacts::kLosses);
  std::vector<std::string> rows;
  std::string header;
  int64_t step = 0;
  if (opts_.resume && std::filesystem::exists(ckpt_path)) {
    auto file = load_safetensors(ckpt_path);
    NamedTensors model, optim;
    for (auto& [k, t] : file.tensors) {
      if (k.rfind(clip::kModelPrefix, 0) == 0) model.emplace_back(k.substr(std::strlen(clip::kModelPrefix)), t);
      else optim.emplace_back(k, t);
    }
    backbone_->load_state(model);
    opt.load_state(optim, ckpt_path.string());
    step = opt.steps();
    DAUG_CHECK_AS(DataError, step <= total, ckpt_path.string(), ": the checkpoint is at step ", step,
                  " but this configuration has only ", total, " steps");
    std::ifstream in(csv_path);
    std::string line;
    if (std::getline(in, line)) header = line;
    while (std::getline(in, line))
      if (!line.empty() && std::stoll(line.substr(0, line.find(','))) < step) rows.push_back(line);
    log::info("{} resuming from {} at step {}/{}", where, ckpt_path.string(), step, total);
  }

  at::Tensor prompt_tokens;
  if (criterion_->needs_class_embeddings()) prompt_tokens = backbone_->tokenize(opts_.prompts).to(device);

  auto save = [&](bool complete) {
    NamedTensors all;
    for (auto& [k, t] : backbone_->state()) all.emplace_back(clip::kModelPrefix + k, t.detach().cpu());
    for (auto& kv : opt.state()) all.push_back(kv);
    nlohmann::json prompts = opts_.prompts;
    save_safetensors(ckpt_path, all,
                     {{"step", std::to_string(opt.steps())},
                      {"total_steps", std::to_string(total)},
                      {"complete", complete ? "true" : "false"},
                      {"backbone", backbone_->describe()},
                      {"criterion", criterion_->describe()},
                      {"composer", composer_ ? composer_->describe() : "none"},
                      {"prompts", prompts.dump()}});
    std::string csv = header + "\n";
    for (const auto& r : rows) csv += r + "\n";
    write_file_atomic(csv_path, csv);
  };

  log::info("{} {} images ({}), batch {}, {} steps/epoch, {} steps; {} of {} parameter tensors without decay; "
            "criterion {}; composer {}; device {}",
            where, n, opts_.split, bs, per_epoch, total, n_nodecay, params.size(), criterion_->describe(),
            composer_ ? composer_->describe() : "none", device_);
  backbone_->set_training(true);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = step;
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  double last_loss = 0;
  for (; step < total; ++step) {
    const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
    if (epoch != order_epoch) {
      order = epoch_order(samples.size(), seed_, epoch);
      order_epoch = epoch;
    }
    std::vector<const Sample*> batch;
    for (int64_t i = in_epoch * bs; i < std::min(n, (in_epoch + 1) * bs); ++i)
      batch.push_back(samples[static_cast<size_t>(order[static_cast<size_t>(i)])]);
    std::vector<std::string> reports;
    std::vector<const std::vector<float>*> labels;
    for (const auto* s : batch) {
      reports.push_back(s->report);
      labels.push_back(&s->labels);
    }
    auto pixels = clip::clip_batch(batch, backbone_->image_size(), composer_.get(), spec, device);
    auto tokens = backbone_->tokenize(reports).to(device);
    auto y = clip::labels_tensor(labels).to(device);

    auto img = clip::l2_normalize(backbone_->encode_image(pixels));
    auto txt = clip::l2_normalize(backbone_->encode_text(tokens));
    at::Tensor cls;
    if (prompt_tokens.defined()) cls = clip::l2_normalize(backbone_->encode_text(prompt_tokens));
    auto ls = backbone_->logit_scale();
    auto out = criterion_->compute({img, txt, cls, y, ls});
    DAUG_CHECK(std::isfinite(out.loss.item<double>()), where, ": the loss is not finite at step ", step,
               " (", out.loss.item<double>(), ")");
    opt.zero_grad();
    out.loss.backward();
    const double gnorm = clip_grad_norm(params, opts_.grad_clip);
    const double factor = opts_.schedule == "cosine"
                              ? clip::cosine_warmup_factor(step, opts_.warmup_steps, total)
                              : (step < opts_.warmup_steps ? static_cast<double>(step) / opts_.warmup_steps : 1.0);
    const double lr = opts_.lr * factor;
    opt.step(lr);
    last_loss = out.loss.item<double>();

    if (header.empty()) {
      header = "step,epoch,lr,loss,grad_norm";
      for (const auto& [k, v] : out.parts) header += "," + k;
    }
    std::string row = fmt::format("{},{},{:.6e},{:.6f},{:.6f}", step, epoch, lr, last_loss, gnorm);
    for (const auto& [k, v] : out.parts) row += fmt::format(",{:.6f}", v);
    rows.push_back(row);

    const bool epoch_end = in_epoch == per_epoch - 1;
    const bool last = step + 1 == total;
    const bool ckpt = opts_.checkpoint_every > 0 ? ((step + 1) % opts_.checkpoint_every == 0) : epoch_end;
    if (ckpt || last) save(last);
    if ((step + 1) % opts_.log_every == 0 || last || step == first) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double per = el / static_cast<double>(step + 1 - first);
      log::info("{} epoch {}/{} step {}/{} loss {:.4f} lr {:.3e} | {:.2f} s/step, ETA {}", where, epoch + 1,
                opts_.epochs, step + 1, total, last_loss, lr, per, fmt_duration(per * (total - step - 1)));
    }
  }
  if (first == total) save(true);  // resumed a finished run: keep the files consistent
  backbone_->set_training(false);

  std::string md = fmt::format(
      "### train_clip\n\n{} steps ({} epochs × {} steps, batch {}) on {} images of '{}'; criterion {}; composer {}; "
      "final loss {:.4f}. Checkpoint: `{}`; losses: `losses.csv`.\n",
      total, opts_.epochs, per_epoch, bs, n, opts_.split, criterion_->describe(),
      composer_ ? composer_->describe() : "none", rows.empty() ? 0.0 : last_loss, ckpt_path.string());
  write_file_atomic(ctx.output(artifacts::kSummary), md);
}

std::string TrainClipStage::describe() const {
  return fmt::format("train_clip(split={}, epochs={}, batch={}, lr={}, criterion={})", opts_.split, opts_.epochs,
                     opts_.batch_size, opts_.lr, opts_.criterion);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "train_clip", daug::plugins::TrainClipStage,
                     "fine-tunes a CLIP backbone on image(+heatmap)/report pairs (DAug), AdamW + cosine warmup, resumable")
