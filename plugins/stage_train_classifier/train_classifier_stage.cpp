// Stage `train_classifier` (see train_classifier_stage.h and README.md).
#include "train_classifier_stage.h"

#include <daug/batch_part.h>
#include <daug/checkpoint.h>
#include <daug/classifier.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/source.h>
#include <daug/stages/common.h>
#include <daug/train/trainer.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join lives here from fmt 11 (current LibTorch wheels ship fmt 11+ headers)

#include <algorithm>
#include <cmath>

namespace daug::plugins {

void TrainClassifierOptions::visit(OptionVisitor& v) {
  v("classifier", classifier, "config table of the Classifier to train", Check::required_non_empty());
  v("generator", generator, "config table of the Generator whose noise schedule (q_sample, T) and image_shape are used",
    Check::required_non_empty());
  v("data", data, "config table of the Source", Check::required_non_empty());
  v("train_split", train_split, "split(s) to train on ('train', or a '+' join)", Check::required_non_empty());
  v("eval_split", eval_split, "split for the final AP evaluation ('' = no evaluation)");
  v("batch_size", batch_size, "images per optimizer step (released: 48)", Check::at_least(1));
  v("epochs", epochs, "epochs over the training split when steps = 0 (released: 15)", Check::at_least(0));
  v("steps", steps, "optimizer steps; > 0 overrides epochs", Check::at_least(0));
  v("lr", lr, "AdamW learning rate (released: 1e-4)", Check::greater_than(0));
  v("weight_decay", weight_decay, "AdamW weight decay (released: 0)", Check::at_least(0));
  v("anneal_lr", anneal_lr, "anneal the learning rate linearly to 0 over the run (released: true)");
  v("anneal", anneal, "with anneal_lr: \"per_epoch\" = lr·(1 − epoch/epochs), constant within an epoch (released "
    "classifier_train2.py), or \"per_step\" = lr·(1 − step/steps) (guided-diffusion anneal_lr)",
    Check::choice({"per_epoch", "per_step"}));
  v("pos_weight", pos_weight, "BCE pos_weight = #neg/#pos per super-class on the training split (released: true)");
  v("drop_no_positive", drop_no_positive, "leave out images with no positive super-class (e.g. only Lung Opacity "
    "or Fracture, or all negative) from training, pos_weight and evaluation, as the released by_pathology loader "
    "(datasets/mimic.py: `if max(conditions) < 1: continue`)");
  v("max_t", max_t, "draw t from U{0..max_t-1}; 0 = T of the generator (released: T)", Check::at_least(0));
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
  v("eval_batch_size", eval_batch_size, "images per evaluation batch", Check::at_least(1));
  v("eval_clean", eval_clean, "also report AP on clean inputs (t = 0) next to the noisy-t protocol");
}

namespace {
void check_class_names(const Classifier& clf, const SuperClassGrouping& g, const std::string& clf_table,
                       const std::string& data_table);
}  // namespace

TrainClassifierStage::TrainClassifierStage(Options opts, std::shared_ptr<Source> data,
                                           std::shared_ptr<Generator> generator, std::shared_ptr<Classifier> classifier)
    : opts_(std::move(opts)), data_(std::move(data)), gen_(std::move(generator)), clf_(std::move(classifier)) {
  check_options(opts_, "[train_classifier]");
  DAUG_CHECK(data_ && gen_ && clf_, "train_classifier: data, generator and classifier are required");
  check_class_names(*clf_, data_->superclasses(), opts_.classifier, opts_.data);
}

std::shared_ptr<Stage> TrainClassifierStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  auto gen = ctx.component<Generator>(opts.generator, Use::model);
  auto clf = ctx.component<Classifier>(opts.classifier);
  opts.precision = precision_name(stage_precision(ctx, opts.precision));
  stages::check_accumulate(opts.batch_size, opts.accumulate, ctx.where("accumulate"), ctx.where("batch_size"));
  return std::make_shared<TrainClassifierStage>(std::move(opts), data, gen, clf);
}

std::vector<Artifact> TrainClassifierStage::outputs() const {
  return {{artifacts::kWeights, "model.safetensors", "trained classifier weights (safetensors)"},
          {artifacts::kCheckpoint, "checkpoint.safetensors", "resumable training state (model, optimizer, step)"},
          {artifacts::kLosses, "losses.csv", "loss per optimizer step"},
          metrics_artifact(),
          summary_artifact()};
}

std::string TrainClassifierStage::describe() const {
  return fmt::format("train_classifier(classifier={}, {}, batch={}, lr={}, pos_weight={})", opts_.classifier,
                     opts_.steps > 0 ? fmt::format("steps={}", opts_.steps) : fmt::format("epochs={}", opts_.epochs),
                     opts_.batch_size, opts_.lr, opts_.pos_weight);
}

namespace {

// Checks the classifier's outputs are the Source's super-classes, in order.
void check_class_names(const Classifier& clf, const SuperClassGrouping& g, const std::string& clf_table,
                       const std::string& data_table) {
  auto names = clf.class_names();
  if (names != g.names)
    throw ConfigError(fmt::format("[{}] outputs [{}] but the super-classes of [{}] are [{}]; they must match "
                                  "in number and order",
                                  clf_table, fmt::join(names, ", "), data_table, fmt::join(g.names, ", ")));
}

struct EvalResult {
  std::vector<double> ap_noisy, ap_clean;
  std::vector<int64_t> positives;
  int64_t n = 0;
};

EvalResult evaluate(Classifier& clf, Generator& gen, stages::ImageBatcher& batcher,
                    const std::vector<std::vector<float>>& labels, int64_t batch, bool clean, uint64_t seed,
                    const c10::Device& dev, double log_every, const train::LoaderOptions& loader) {
  const int64_t n = static_cast<int64_t>(batcher.size());
  const int64_t k = static_cast<int64_t>(labels.front().size());
  const int64_t T = gen.num_timesteps();
  clf.set_training(false);
  at::NoGradGuard no_grad;
  at::manual_seed(stages::mix_seed(seed, 0xE7A1ULL));
  std::vector<std::vector<double>> noisy(static_cast<size_t>(k)), cln(static_cast<size_t>(k));
  stages::Progress progress("train_classifier eval", n, 0, log_every, "img");
  train::PrefetchJob job;
  job.batches = (n + batch - 1) / batch;
  job.indices = [&](int64_t k) {
    std::vector<int64_t> idx;
    for (int64_t i = k * batch; i < std::min(n, (k + 1) * batch); ++i) idx.push_back(i);
    return idx;
  };
  job.item = batcher.item();
  job.pin_memory = dev.is_cuda();
  train::Prefetcher batches(std::move(job), loader);
  for (int64_t s = 0; s < n; s += batch) {
    at::Tensor x0 = train::to_device(batches.next().parts, dev)[0];
    const int64_t b = x0.size(0);
    at::Tensor t = at::randint(0, T, {b}, at::TensorOptions().dtype(at::kLong).device(dev));
    at::Tensor xt = gen.q_sample(x0, t, at::randn_like(x0));
    at::Tensor p = at::sigmoid(clf.logits(xt, t)).to(at::kCPU).to(at::kDouble).contiguous();
    at::Tensor pc;
    if (clean) {
      at::Tensor t0 = at::zeros({b}, at::TensorOptions().dtype(at::kLong).device(dev));
      pc = at::sigmoid(clf.logits(gen.q_sample(x0, t0, at::zeros_like(x0)), t0)).to(at::kCPU).to(at::kDouble)
               .contiguous();
    }
    DAUG_CHECK(p.dim() == 2 && p.size(1) == k, "classifier logits must be [N,", k, "], but got ", p.sizes());
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < k; ++j) {
        noisy[static_cast<size_t>(j)].push_back(p[i][j].item<double>());
        if (clean) cln[static_cast<size_t>(j)].push_back(pc[i][j].item<double>());
      }
    progress.update(s + b);
  }
  EvalResult r;
  r.n = n;
  for (int64_t j = 0; j < k; ++j) {
    std::vector<float> y;
    int64_t pos = 0;
    for (const auto& row : labels) {
      y.push_back(row[static_cast<size_t>(j)]);
      if (row[static_cast<size_t>(j)] > 0.5f) ++pos;
    }
    r.positives.push_back(pos);
    r.ap_noisy.push_back(stages::average_precision(noisy[static_cast<size_t>(j)], y));
    r.ap_clean.push_back(clean ? stages::average_precision(cln[static_cast<size_t>(j)], y) : NAN);
  }
  return r;
}

// The samples of `split` with their super-labels; with `drop`, those without a positive super-class are left out
// (counted in *dropped).
std::vector<const Sample*> labelled(const Source& src, const std::string& split, bool drop,
                                    std::vector<std::vector<float>>& labels, int64_t* dropped) {
  const SuperClassGrouping& grouping = src.superclasses();
  std::vector<const Sample*> kept;
  *dropped = 0;
  for (const Sample* s : src.split(split)) {
    auto row = grouping.pool(s->labels);
    if (drop && std::none_of(row.begin(), row.end(), [](float v) { return v > 0.5f; })) {
      ++*dropped;
      continue;
    }
    kept.push_back(s);
    labels.push_back(std::move(row));
  }
  if (drop)
    log::info("train_classifier: left out {} of {} '{}' images with no positive super-class (drop_no_positive)",
              *dropped, kept.size() + static_cast<size_t>(*dropped), split);
  DAUG_CHECK_AS(DataError, !kept.empty(), "[train_classifier]: no image of '", split,
                "' has a positive super-class (", *dropped, " left out by drop_no_positive = ",
                drop ? "true" : "false", ")");
  return kept;
}

double mean_defined(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x)) { s += x; ++n; }
  return n ? s / n : NAN;
}

std::string ap_cell(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "n/a"; }

}  // namespace

void TrainClassifierStage::run(StageContext& ctx) {
  auto& build = ctx.build;
  const auto& src = data_;
  const auto& gen = gen_;
  const auto& clf = clf_;
  const SuperClassGrouping& grouping = src->superclasses();
  const c10::Device dev(build.device());
  const uint64_t seed = stages::resolve_seed(opts_.seed, build.seed());
  const int64_t T = gen->num_timesteps();
  const int64_t max_t = opts_.max_t > 0 ? std::min(opts_.max_t, T) : T;

  // Training split, super-labels and pos_weight.
  std::vector<std::vector<float>> labels;
  int64_t train_dropped = 0;
  std::vector<const Sample*> train =
      labelled(*src, opts_.train_split, opts_.drop_no_positive, labels, &train_dropped);
  std::vector<int64_t> positives;
  std::vector<double> pw = stages::pos_weights(labels, &positives);
  for (int j = 0; j < grouping.size(); ++j)
    log::info("train_classifier: {:<40} positives {:>6}/{:<6} pos_weight {:.3f}{}", grouping.names[j],
              positives[j], train.size(), pw[j], positives[j] == 0 ? " (no positives: neutral weight 1)" : "");
  const int64_t k = grouping.size();
  std::vector<float> flat;
  for (const auto& row : labels) flat.insert(flat.end(), row.begin(), row.end());
  at::Tensor y_all = at::tensor(flat).view({static_cast<int64_t>(train.size()), k});
  std::vector<float> pwf(pw.begin(), pw.end());
  at::Tensor pw_t = at::tensor(pwf).to(dev);

  stages::ImagePrep prep{gen->image_shape(), opts_.resize_filter, opts_.normalize};
  stages::ImageBatcher batcher(train, prep, opts_.cache_images);

  train::TrainerOptions lo =
      stages::guided_trainer_options(opts_, "train_classifier", static_cast<int64_t>(train.size()), seed,
                                     ctx.output(artifacts::kCheckpoint), ctx.output(artifacts::kLosses));
  if (opts_.anneal_lr && opts_.anneal == "per_epoch") lo.schedule.kind = train::Schedule::linear_per_epoch;
  stages::set_precision_options(lo, opts_.precision, build.device(), opts_.accumulate);
  train::Trainer trainer(*clf, lo);
  log::info("train_classifier: {} training images, {} steps of batch {}, t ~ U{{0..{}}}, image {}x{}x{}, device {}",
            train.size(), trainer.total_steps(), trainer.batch_size(), max_t - 1, prep.shape[0], prep.shape[1],
            prep.shape[2], build.device());

  const bool use_pw = opts_.pos_weight;
  train::StepLoader loader(trainer, batcher.item(), opts_.loader, dev);  // loads the next steps' images meanwhile
  auto res = trainer.run([&](const std::vector<int64_t>& idx, int64_t step) -> train::StepOutput {
    at::Tensor x0 = loader.get(idx, step)[0];
    const int64_t b = x0.size(0);
    // t drawn on the host (the CPU generator; the same draws as before on a CPU run): q_sample and the classifier
    // take host timesteps without reading anything back from the device. t and noise are the trainer's whole-batch
    // draws (daug/batch_part.h): the same per image however the batch is split over ranks and micro-batches.
    at::Tensor t = randint_part(0, max_t, b, at::TensorOptions().dtype(at::kLong));
    at::Tensor xt = gen->q_sample(x0, t, randn_like_part(x0));
    at::Tensor logits = clf->logits(xt, t);
    DAUG_CHECK(logits.dim() == 2 && logits.size(0) == b && logits.size(1) == k, "[", opts_.classifier,
               "] logits must be [", b, ",", k, "], but got ", logits.sizes());
    at::Tensor y = y_all.index_select(0, at::tensor(idx, at::kLong)).to(dev, /*non_blocking=*/true);
    // Two calls rather than an optional<Tensor> argument: its type is c10's own in 1.13 and std:: in 2.x.
    return {use_pw ? at::binary_cross_entropy_with_logits(logits, y, {}, pw_t)
                   : at::binary_cross_entropy_with_logits(logits, y),
            {}};
  });
  // Final report: losses, and AP per super-class on the evaluation split.
  std::string md = fmt::format(
      "### train_classifier\n\n{} steps (batch {}), {} training images; loss first {:.4f}, last {:.4f}, "
      "mean of last 10% {:.4f}; {:.2f} steps/s this run{}.\n",
      res.total_steps, trainer.batch_size(), train.size(), res.first_loss,
      res.last_loss, res.mean_last_loss, res.seconds > 0 ? res.steps_run / res.seconds : 0.0,
      res.resumed_from > 0 ? fmt::format(" (resumed at step {})", res.resumed_from) : "");
  std::string json = fmt::format(
      "{{\n  \"stage\": \"train_classifier\",\n  \"steps\": {},\n  \"train_images\": {},\n"
      "  \"train_dropped_no_positive\": {},\n  \"loss_first\": {},\n"
      "  \"loss_last\": {},\n  \"loss_last10pct\": {},\n  \"pos_weight\": [{}]",
      res.total_steps, train.size(), train_dropped, stages::json_number(res.first_loss),
      stages::json_number(res.last_loss), stages::json_number(res.mean_last_loss), fmt::join(pw, ", "));
  if (opts_.drop_no_positive)
    md += fmt::format("\nLeft out (no positive super-class, as released): {} '{}' images.\n", train_dropped,
                      opts_.train_split);
  if (!opts_.eval_split.empty()) {
    std::vector<std::vector<float>> test_labels;
    int64_t test_dropped = 0;
    std::vector<const Sample*> test =
        labelled(*src, opts_.eval_split, opts_.drop_no_positive, test_labels, &test_dropped);
    stages::ImageBatcher eval_batcher(test, prep, false);
    EvalResult ev = evaluate(*clf, *gen, eval_batcher, test_labels, opts_.eval_batch_size, opts_.eval_clean, seed, dev,
                             opts_.log_every_s, opts_.loader);
    if (opts_.drop_no_positive)
      md += fmt::format("\nLeft out (no positive super-class, as released): {} '{}' images.\n", test_dropped,
                        opts_.eval_split);
    md += fmt::format("\nAP per super-class on '{}' ({} images), noisy inputs x_t with t ~ U{{0..{}}} "
                      "(paper Table 4 protocol){}:\n\n| super-class | positives | AP (noisy t) |{}\n|---|---:|---:|{}\n",
                      opts_.eval_split, ev.n, T - 1, opts_.eval_clean ? "; clean = t 0" : "",
                      opts_.eval_clean ? " AP (clean) |" : "", opts_.eval_clean ? "---:|" : "");
    std::vector<std::string> rows;
    for (int j = 0; j < grouping.size(); ++j) {
      md += fmt::format("| {} | {} | {} |{}\n", grouping.names[j], ev.positives[j], ap_cell(ev.ap_noisy[j]),
                        opts_.eval_clean ? " " + ap_cell(ev.ap_clean[j]) + " |" : "");
      rows.push_back(fmt::format("{{\"name\": {}, \"positives\": {}, \"ap\": {}, \"ap_clean\": {}}}",
                                 stages::json_string(grouping.names[j]), ev.positives[j],
                                 stages::json_number(ev.ap_noisy[j]), stages::json_number(ev.ap_clean[j])));
    }
    md += fmt::format("| mean (classes with positives) | | {} |{}\n", ap_cell(mean_defined(ev.ap_noisy)),
                      opts_.eval_clean ? " " + ap_cell(mean_defined(ev.ap_clean)) + " |" : "");
    json += fmt::format(",\n  \"eval\": {{\"split\": {}, \"images\": {}, \"dropped_no_positive\": {}, "
                        "\"protocol\": \"x_t, t ~ U{{0..T-1}}\", \"mean_ap\": {}, \"mean_ap_clean\": {}, "
                        "\"classes\": [\n    {}\n  ]}}",
                        stages::json_string(opts_.eval_split), ev.n, test_dropped,
                        stages::json_number(mean_defined(ev.ap_noisy)),
                        stages::json_number(mean_defined(ev.ap_clean)), fmt::join(rows, ",\n    "));
  }
  json += "\n}\n";
  // Every rank holds the same trained classifier and evaluated it alike (so that none waits long for another);
  // rank 0 writes (daug/train/trainer.h).
  stages::write_on_main_rank("train_classifier", [&] {
    save_safetensors(ctx.output(artifacts::kWeights), res.final_state,
                     {{"stage", "train_classifier"},
                      {"steps", std::to_string(res.total_steps)},
                      {"classes", fmt::format("{}", fmt::join(grouping.names, "|"))}});
    write_file_atomic(ctx.output(artifacts::kMetrics), json);
    write_file_atomic(ctx.output(artifacts::kSummary), md);
    log::info("{}", md);
  });
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "train_classifier", daug::plugins::TrainClassifierStage,
                     "trains the noise-aware classifier (BCE + pos_weight on q_sample'd inputs) and reports AP")
