// Stage `train_diffusion` (see train_diffusion_stage.h and README.md).
#include "train_diffusion_stage.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/source.h>
#include <daug/stages/common.h>
#include <daug/train/trainer.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

namespace daug::plugins {

void TrainDiffusionOptions::visit(OptionVisitor& v) {
  v("generator", generator, "config table of the Generator to train", Check::required_non_empty());
  v("data", data, "config table of the Source", Check::required_non_empty());
  v("train_split", train_split, "split(s) to train on (never the test split: REFERENCE §11.11)",
    Check::required_non_empty());
  v("label_source", label_source,
    "class label of the UNet: superclass = indicator of super-class label_class (released sampler's y=1 healthy), "
    "chexpert = raw CheXpert class label_class (NaN → 0), none = unconditional",
    Check::choice({"superclass", "chexpert", "none"}));
  v("label_class", label_class, "class whose indicator is the label (default: No Finding, so 1 = healthy)");
  v("batch_size", batch_size, "images per optimizer step (released: 2 per GPU × 8)", Check::at_least(1));
  v("epochs", epochs, "epochs over the training split when steps = 0", Check::at_least(0));
  v("steps", steps, "optimizer steps; > 0 overrides epochs", Check::at_least(0));
  v("lr", lr, "AdamW learning rate (released: 1e-4)", Check::greater_than(0));
  v("weight_decay", weight_decay, "AdamW weight decay (released: 0)", Check::at_least(0));
  v("anneal_lr", anneal_lr, "anneal the learning rate linearly to 0 (guided-diffusion lr_anneal_steps; released: off)");
  v("ema_rate", ema_rate, "EMA rate of the weights (guided-diffusion: 0.9999); 0 = no EMA", Check::range(0, 0.999999999));
  v("checkpoint_every", checkpoint_every, "steps between checkpoints (0 = only at the end)", Check::at_least(0));
  v("resume", resume, "resume from <output_dir>/checkpoint.safetensors if present");
  v("seed", seed, "seed of batches, t and noise (-1 = the run seed)", Check::at_least(-1));
  v("log_every_s", log_every_s, "seconds between progress lines", Check::at_least(0).for_runtime());
  v("resize_filter", resize_filter, "filter resizing images to the generator's image_shape",
    stages::kResizeFilters);
  v("normalize", normalize, "per-image value normalisation (minmax = [0,1] as the released code)",
    stages::kNormalizations);
  v("cache_images", cache_images, "keep prepared images in memory (1 MiB each at 512²)");
  train::visit_loader_options(v, loader);
  v("precision", precision, stages::kPrecisionDoc, stages::precision_choice());
  v("accumulate", accumulate, stages::kAccumulateDoc, Check::at_least(1));
}

TrainDiffusionStage::TrainDiffusionStage(Options opts, std::shared_ptr<Source> data,
                                         std::shared_ptr<Generator> generator)
    : opts_(std::move(opts)), data_(std::move(data)), gen_(std::move(generator)) {
  DAUG_CHECK(data_ && gen_, "train_diffusion: data and generator are required");
  check_options(opts_, "[train_diffusion]");
  if (opts_.label_source == "chexpert" && chexpert_index(opts_.label_class) < 0) {
    std::string valid;
    for (const char* c : kChexpertClasses) valid += std::string(valid.empty() ? "" : ", ") + c;
    throw ConfigError("[train_diffusion].label_class '" + opts_.label_class +
                      "' is not a CheXpert class; valid: " + valid);
  }
}

std::shared_ptr<Stage> TrainDiffusionStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  auto gen = ctx.component<Generator>(opts.generator, Use::model);
  opts.precision = precision_name(stage_precision(ctx, opts.precision));
  stages::check_accumulate(opts.batch_size, opts.accumulate, ctx.where("accumulate"), ctx.where("batch_size"));
  return std::make_shared<TrainDiffusionStage>(std::move(opts), data, gen);
}

std::vector<Artifact> TrainDiffusionStage::outputs() const {
  return {{artifacts::kWeights, "model.safetensors", "trained diffusion weights, raw (safetensors)"},
          {artifacts::kWeightsEma, "ema.safetensors", "EMA of the weights (= raw weights when ema_rate = 0)"},
          {artifacts::kCheckpoint, "checkpoint.safetensors", "resumable training state (model, optimizer, EMA, step)"},
          {artifacts::kLosses, "losses.csv", "loss per optimizer step"},
          metrics_artifact(),
          summary_artifact()};
}

std::string TrainDiffusionStage::describe() const {
  return fmt::format("train_diffusion(generator={}, {}, batch={}, lr={}, ema={}, label={}:{})", opts_.generator,
                     opts_.steps > 0 ? fmt::format("steps={}", opts_.steps) : fmt::format("epochs={}", opts_.epochs),
                     opts_.batch_size, opts_.lr, opts_.ema_rate, opts_.label_source, opts_.label_class);
}


int64_t TrainDiffusionStage::label_of(const Sample& s, const Options& o, const SuperClassGrouping& g) {
  if (o.label_source == "none") return -1;
  if (o.label_source == "chexpert") {
    int i = chexpert_index(o.label_class);
    DAUG_CHECK_AS(ConfigError, i >= 0, "[train_diffusion].label_class '", o.label_class, "' is not a CheXpert class");
    DAUG_CHECK_AS(DataError, s.labels.size() == kChexpertClasses.size(), "sample ", s.id, " has ", s.labels.size(),
                  " labels, expected ", kChexpertClasses.size());
    float v = s.labels[static_cast<size_t>(i)];
    return std::isfinite(v) && v > 0.5f ? 1 : 0;
  }
  int j = g.index_of(o.label_class, "[train_diffusion].label_class");
  return g.pool(s.labels)[static_cast<size_t>(j)] > 0.5f ? 1 : 0;
}

void TrainDiffusionStage::run(StageContext& ctx) {
  auto& build = ctx.build;
  const auto& src = data_;
  const auto& gen = gen_;
  const c10::Device dev(build.device());
  const uint64_t seed = stages::resolve_seed(opts_.seed, build.seed());

  std::vector<const Sample*> train = src->split(opts_.train_split);
  std::vector<int64_t> labels;
  int64_t ones = 0;
  for (const Sample* s : train) {
    labels.push_back(label_of(*s, opts_, src->superclasses()));
    if (labels.back() == 1) ++ones;
  }
  const bool conditional = opts_.label_source != "none";
  if (conditional)
    log::info("train_diffusion: label = indicator of '{}' ({}): {} of {} training images have label 1",
              opts_.label_class, opts_.label_source, ones, train.size());
  at::Tensor label_all = at::tensor(labels, at::kLong);

  stages::ImagePrep prep{gen->image_shape(), opts_.resize_filter, opts_.normalize};
  stages::ImageBatcher batcher(train, prep, opts_.cache_images);

  train::TrainerOptions lo =
      stages::guided_trainer_options(opts_, "train_diffusion", static_cast<int64_t>(train.size()), seed,
                                     ctx.output(artifacts::kCheckpoint), ctx.output(artifacts::kLosses));
  lo.ema_rate = opts_.ema_rate;
  stages::set_precision_options(lo, opts_.precision, build.device(), opts_.accumulate);
  train::Trainer trainer(*gen, lo);
  log::info("train_diffusion: {} training images, {} steps of batch {}, image {}x{}x{}, EMA {}, device {}",
            train.size(), trainer.total_steps(), trainer.batch_size(), prep.shape[0], prep.shape[1], prep.shape[2],
            opts_.ema_rate, build.device());

  train::StepLoader loader(trainer, batcher.item(), opts_.loader, dev);  // loads the next steps' images meanwhile
  auto res = trainer.run([&](const std::vector<int64_t>& idx, int64_t step) -> train::StepOutput {
    at::Tensor x0 = loader.get(idx, step)[0];
    // Host labels: the generator range-checks them before its upload without a host sync.
    at::Tensor y = conditional ? label_all.index_select(0, at::tensor(idx, at::kLong)) : at::Tensor();
    return {gen->training_loss(x0, y), {}};
  });
  // Every rank holds the same trained weights; rank 0 writes them (daug/train/trainer.h).
  stages::write_on_main_rank("train_diffusion", [&] {
    std::map<std::string, std::string> meta{{"stage", "train_diffusion"},
                                            {"steps", std::to_string(res.total_steps)},
                                            {"label", opts_.label_source + ":" + opts_.label_class}};
    save_safetensors(ctx.output(artifacts::kWeights), res.final_state, meta);
    meta["ema_rate"] = fmt::format("{}", opts_.ema_rate);
    save_safetensors(ctx.output(artifacts::kWeightsEma), opts_.ema_rate > 0 ? res.final_ema : res.final_state, meta);

    std::string md = fmt::format(
        "### train_diffusion\n\n{} steps (batch {}), {} training images ({} labelled 1 = '{}'); loss first {:.4f}, "
        "last {:.4f}, mean of last 10% {:.4f}; {:.2f} steps/s this run{}. EMA rate {}.\n",
        res.total_steps, trainer.batch_size(), train.size(), ones, opts_.label_class, res.first_loss, res.last_loss,
        res.mean_last_loss, res.seconds > 0 ? res.steps_run / res.seconds : 0.0,
        res.resumed_from > 0 ? fmt::format(" (resumed at step {})", res.resumed_from) : "", opts_.ema_rate);
    write_file_atomic(ctx.output(artifacts::kSummary), md);
    write_file_atomic(
        ctx.output(artifacts::kMetrics),
        fmt::format("{{\n  \"stage\": \"train_diffusion\",\n  \"steps\": {},\n  \"train_images\": {},\n"
                    "  \"label_ones\": {},\n  \"loss_first\": {},\n  \"loss_last\": {},\n"
                    "  \"loss_last10pct\": {},\n  \"ema_rate\": {}\n}}\n",
                    res.total_steps, train.size(), ones, stages::json_number(res.first_loss),
                    stages::json_number(res.last_loss), stages::json_number(res.mean_last_loss), opts_.ema_rate));
    log::info("{}", md);
  });
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "train_diffusion", daug::plugins::TrainDiffusionStage,
                     "trains the diffusion Generator (its training_loss, No-Finding label, AdamW, EMA)")
