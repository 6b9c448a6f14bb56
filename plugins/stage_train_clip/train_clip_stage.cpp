#include "train_clip_stage.h"

#include "clip_common.h"
#include "clip_gather.h"

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/stages/common.h>
#include <daug/train/optimizer.h>
#include <daug/train/trainer.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
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
  v("batch_size", batch_size, "pairs per optimizer step (released 256 = 8 GPUs × 32)", Check::at_least(2));
  v("contrastive_group", contrastive_group, "rows per contrastive loss: the loss is the mean over batch_size / "
    "contrastive_group groups of the per-group CLIP + class loss, as DDP with a per-GPU loss (released 32); "
    "0 = the whole batch is one group", Check::at_least(0));
  v("gather", gather,
    "under a distributed launch, the pairs a contrastive loss sees: \"local\" = each rank's "
    "losses over its own share of the batch, in its contrastive groups (the released per-GPU loss; needs "
    "contrastive_group dividing batch_size / ranks / accumulate); \"global\" = the image and text embeddings of "
    "every rank all-gathered with gradient and the loss computed over the whole batch as one process computes it "
    "(open_clip's gather_with_grad; not with accumulate > 1). The same in a single process",
    Check::choice({"local", "global"}));
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
  train::visit_loader_options(v, loader);
  v("precision", precision, stages::kPrecisionDoc, stages::precision_choice());
  v("accumulate", accumulate,
    "micro-batches per optimizer step (gradient accumulation). The contrastive loss couples the rows of a group, "
    "so a micro-batch must hold whole groups: needs contrastive_group > 0 dividing batch_size / accumulate; then "
    "the step equals the unsplit one",
    Check::at_least(1));
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
  const int64_t g = opts_.contrastive_group;
  DAUG_CHECK_AS(ConfigError, g == 0 || (g >= 2 && opts_.batch_size % g == 0), "[train_clip].contrastive_group = ",
                g, " must be 0 (the whole batch) or a divisor ≥ 2 of batch_size = ", opts_.batch_size);
  const int64_t k = opts_.accumulate;
  const int world = communicator().world_size();
  if (opts_.gather == "global") {
    // The loss over the whole (gathered) batch: a micro-batch cannot hold it, and every rank must gather as many
    // rows (all_gather needs equal shapes).
    DAUG_CHECK_AS(ConfigError, k == 1,
                  "[train_clip].gather = \"global\" computes the loss over the whole batch, which accumulate = ", k,
                  " micro-batches cannot hold: use accumulate = 1, or gather = \"local\" "
                  "with a contrastive_group dividing the micro-batch");
    DAUG_CHECK_AS(
        ConfigError, opts_.batch_size % world == 0 && opts_.drop_last,
        "[train_clip].gather = \"global\" needs every rank to hold as many pairs: batch_size = ", opts_.batch_size,
        " must be a multiple of ", world, " ranks and drop_last = true (got ", opts_.drop_last ? "true" : "false", ")");
  } else if (k * world > 1) {
    // Micro-batching a contrastive loss (or splitting it over ranks) changes it (each row only sees the rows of its
    // own part as negatives) unless every group lies inside one part: then it is exactly the contrastive_group loss.
    const int64_t parts = k * world;
    const std::string what = world == 1 ? fmt::format("[train_clip].accumulate = {}", k)
                                        : fmt::format("[train_clip].accumulate = {} on {} ranks", k, world);
    DAUG_CHECK_AS(ConfigError, opts_.batch_size % parts == 0, what, " must divide batch_size = ", opts_.batch_size,
                  world == 1 ? "" : fmt::format(" by {} (ranks × accumulate)", parts));
    const int64_t micro = opts_.batch_size / parts;
    DAUG_CHECK_AS(ConfigError, g > 0 && micro % g == 0, what, " splits batch_size = ", opts_.batch_size,
                  " into micro-batches of ", micro, ", but contrastive_group = ", g,
                  g == 0 ? " (the whole batch is one contrastive group, which a micro-batch cannot hold)" : "",
                  " must divide ", micro,
                  " so that every contrastive group lies in one micro-batch (e.g. "
                  "contrastive_group = ",
                  micro, world > 1 ? ", or gather = \"global\")" : ")");
  }
  DAUG_CHECK_AS(ConfigError, opts_.prompts.size() == 14, "[train_clip].prompts must hold 14 class prompts (CheXbert "
                "order), but got ", opts_.prompts.size());
}

std::shared_ptr<Stage> TrainClipStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  auto backbone = ctx.component<Backbone>(opts.backbone);
  auto criterion = ctx.component<Criterion>(opts.criterion);
  std::shared_ptr<HeatmapComposer> composer;
  opts.precision = precision_name(stage_precision(ctx, opts.precision));
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

  auto params = backbone_->parameters();
  DAUG_CHECK(!params.empty(), where, ": the backbone ", backbone_->describe(), " has no trainable parameters");
  train::TrainerOptions to;
  to.what = "train_clip";
  to.dataset_size = n;
  to.batch_size = bs;
  to.drop_last = opts_.drop_last;
  to.epochs = opts_.epochs;
  to.max_steps = opts_.max_steps;
  to.seed = seed_;
  to.seed_policy = train::SeedPolicy::linear;
  to.reseed_each_step = false;  // released: no per-step reseeding; the checkpoint carries the RNG state instead
  to.lr = opts_.lr;
  to.schedule = {opts_.schedule == "cosine" ? train::Schedule::cosine_warmup : train::Schedule::constant_warmup,
                 opts_.warmup_steps};
  to.adamw = {opts_.beta1, opts_.beta2, opts_.eps, opts_.weight_decay};
  to.decay = train::decay_flags(params, backbone_->state(), opts_.no_decay);
  to.grad_clip = opts_.grad_clip;
  to.checkpoint_path = ctx.output(artifacts::kCheckpoint);
  to.losses_path = ctx.output(artifacts::kLosses);
  to.checkpoint_every = opts_.checkpoint_every;
  to.checkpoint_each_epoch = opts_.checkpoint_every == 0;
  to.resume = opts_.resume;
  to.metadata = {{"backbone", backbone_->describe()},
                 {"criterion", criterion_->describe()},
                 {"composer", composer_ ? composer_->describe() : "none"},
                 {"prompts", nlohmann::json(opts_.prompts).dump()}};
  to.log_every_steps = opts_.log_every;
  stages::set_precision_options(to, opts_.precision, device_, opts_.accumulate);
  train::Trainer trainer(*backbone_, to);
  const int64_t per_epoch = trainer.steps_per_epoch(), total = trainer.total_steps();
  const auto n_nodecay = std::count(to.decay.begin(), to.decay.end(), false);

  // Token ids stay on the host: the backbone range-checks them there (free) and uploads them (no host sync).
  at::Tensor prompt_tokens;
  if (criterion_->needs_class_embeddings()) prompt_tokens = backbone_->tokenize(opts_.prompts);

  const int64_t group = opts_.contrastive_group > 0 ? opts_.contrastive_group : bs;
  Communicator& comm = communicator();
  const bool global = opts_.gather == "global" && comm.distributed();
  log::info(
      "{} {} images ({}), batch {} as {} contrastive group(s) of {}{}, {} steps/epoch, {} steps; {} of {} "
      "parameter tensors without decay; criterion {}; composer {}; device {}",
      where, n, opts_.split, bs, bs / group, group,
      comm.distributed() ? fmt::format(" on {} ranks (gather = \"{}\")", comm.world_size(), opts_.gather) : "",
      per_epoch, total, n_nodecay, params.size(), criterion_->describe(), composer_ ? composer_->describe() : "none",
      device_);
  const int64_t image_size = backbone_->image_size();
  HeatmapComposer* const composer = composer_.get();
  train::StepLoader loader(  // decodes, resizes and reads the heatmaps of the next steps meanwhile
      trainer,
      [&, image_size, composer](int64_t i) {
        return clip::clip_item(*samples[static_cast<size_t>(i)], image_size, composer != nullptr, spec);
      },
      opts_.loader, device);
  auto res = trainer.run([&](const std::vector<int64_t>& idx, int64_t step) -> train::StepOutput {
    std::vector<const Sample*> batch;
    for (int64_t i : idx) batch.push_back(samples[static_cast<size_t>(i)]);
    std::vector<std::string> reports;
    std::vector<const std::vector<float>*> labels;
    for (const auto* s : batch) {
      reports.push_back(s->report);
      labels.push_back(&s->labels);
    }
    auto pixels = clip::clip_compose(loader.get(idx, step), composer);
    auto tokens = backbone_->tokenize(reports);
    auto y = clip::labels_tensor(labels).to(device, /*non_blocking=*/true);

    auto img = clip::l2_normalize(backbone_->encode_image(pixels));
    auto txt = clip::l2_normalize(backbone_->encode_text(tokens));
    at::Tensor cls;
    if (prompt_tokens.defined()) cls = clip::l2_normalize(backbone_->encode_text(prompt_tokens));
    auto ls = backbone_->logit_scale();
    if (global) {  // every rank's rows in rank order = the global batch in order: the loss of one process
      const std::string phase = fmt::format("train_clip step {}: embedding all-gather", step);
      img = clip::all_gather_rows(img, comm, phase);
      txt = clip::all_gather_rows(txt, comm, phase);
      y = at::cat(comm.all_gather(y.contiguous(), phase + " (labels)"));
    }
    auto out = clip::grouped_criterion(*criterion_, {img, txt, cls, y, ls}, opts_.contrastive_group);
    return {out.loss, std::move(out.parts), /*whole_batch=*/global};
  });
  backbone_->set_training(false);

  std::string md = fmt::format(
      "### train_clip\n\n{} steps ({} epochs × {} steps, batch {} in contrastive groups of {}) on {} images of '{}'; "
      "criterion {}; composer {}; final loss {:.4f}. Checkpoint: `{}`; losses: `{}`.\n",
      total, opts_.epochs, per_epoch, bs, group, n, opts_.split, criterion_->describe(),
      composer_ ? composer_->describe() : "none", res.steps_run > 0 ? res.last_step_loss : 0.0,
      to.checkpoint_path.string(), to.losses_path.filename().string());
  // Every rank holds the same fine-tuned backbone; rank 0 wrote the checkpoint and writes the summary.
  stages::write_on_main_rank("train_clip", [&] { write_file_atomic(ctx.output(artifacts::kSummary), md); });
}

std::string TrainClipStage::describe() const {
  return fmt::format("train_clip(split={}, epochs={}, batch={}, group={}, lr={}, criterion={})", opts_.split,
                     opts_.epochs, opts_.batch_size, opts_.contrastive_group, opts_.lr, opts_.criterion);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "train_clip", daug::plugins::TrainClipStage,
                     "fine-tunes a CLIP backbone on image(+heatmap)/report pairs (DAug), AdamW + cosine warmup, resumable")
