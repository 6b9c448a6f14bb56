// `index` Stage: a retrieval index of a Source's images (libs/retrieval, format daug.index/1).
//
// The images are embedded exactly as the evaluate stage embeds its gallery (clip::clip_item: CLIP preprocessing,
// heatmaps from the heatmap stage's index.csv brought to the input size, composed by the training composer), in
// chunks of `chunk_rows` rows written as they finish, so a killed build resumes at the first missing chunk. Under a
// distributed launch (and with --shard) the chunks are dealt round-robin; rank 0 of an unsharded run assembles them.
#include "index_stage.h"

#include "clip_common.h"

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/fingerprint.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/retrieval/index_files.h>
#include <daug/train/prefetcher.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

namespace daug::plugins {

void IndexOptions::visit(OptionVisitor& v) {
  v("data", data, "Source table whose images are indexed", Check::required_non_empty());
  v("split", split, "which items: train, val, test, all, or a '+' join (\"train+val\")", Check::required_non_empty());
  v("backbone", backbone, "Backbone table (the fine-tuned CLIP)", Check::required_non_empty());
  v("composer", composer, "HeatmapComposer table (must match training); \"\" = plain image");
  clip::visit_heatmap_options(v, heatmaps);
  v("train_stage", train_stage, "stage whose checkpoint.safetensors is loaded; \"\" = the backbone as built");
  v("checkpoint", checkpoint, "explicit checkpoint file (train_clip format); overrides train_stage");
  v("dtype", dtype, "embeddings.npy dtype: float32, or float16 (half the size)", Check::choice({"float32", "float16"}));
  v("prompts", prompts, "14 class prompts; [] = those stored in the checkpoint, else the released prompts");
  v("class_logit_scale", class_logit_scale,
    "class probability = sigmoid(exp(this)·cos(image, prompt)) "
    "(released 4.602); stored in index.json for `daug query`");
  v("batch_size", batch_size, "embedding batch size", Check::at_least(1));
  v("chunk_rows", chunk_rows, "rows per chunk file: the unit of resuming and of the split between ranks",
    Check::at_least(1));
}

IndexStage::IndexStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
                       std::shared_ptr<HeatmapComposer> composer, std::string device, std::string table)
    : opts_(std::move(opts)),
      data_(std::move(data)),
      backbone_(std::move(backbone)),
      composer_(std::move(composer)),
      device_(std::move(device)),
      table_(std::move(table)) {}

std::shared_ptr<Stage> IndexStage::create(Options opts, BuildContext& ctx) {
  DAUG_CHECK_AS(ConfigError, opts.prompts.empty() || opts.prompts.size() == kChexpertClasses.size(),
                ctx.where("prompts"), ": must be empty or hold ", kChexpertClasses.size(), " prompts, but holds ",
                opts.prompts.size());
  if (!opts.checkpoint.empty())
    DAUG_CHECK_AS(ConfigError, std::filesystem::is_regular_file(opts.checkpoint), ctx.where("checkpoint"),
                  ": checkpoint file '", opts.checkpoint, "' does not exist");
  auto data = ctx.component<Source>(opts.data);
  try {  // a bad split fails when the config is checked, not after the upstream stages have run
    data->split(opts.split);
  } catch (const Error& e) {
    throw ConfigError(ctx.where("split") + ": " + e.what());
  }
  auto backbone = ctx.component<Backbone>(opts.backbone);
  std::shared_ptr<HeatmapComposer> composer;
  if (!opts.composer.empty()) composer = ctx.component<HeatmapComposer>(opts.composer);
  if (clip::uses_heatmap_stage(opts.heatmaps, composer.get())) ctx.component<Stage>(opts.heatmaps.heatmaps_stage);
  if (opts.checkpoint.empty() && !opts.train_stage.empty()) ctx.component<Stage>(opts.train_stage);
  return std::make_shared<IndexStage>(std::move(opts), data, backbone, composer, ctx.device(), ctx.table_or("index"));
}

std::vector<Artifact> IndexStage::outputs() const {
  return {{"index", retrieval::kManifestFile, "index manifest (format daug.index/1): model, preprocessing, counts"},
          {"embeddings", retrieval::kEmbeddingsFile, "[N,D] L2-normalised image embeddings"},
          {"items", retrieval::kItemsFile, "row,id,split,image,labels and the 14 class labels of each row"},
          {"class_embeddings", retrieval::kClassEmbeddingsFile, "[14,D] class-prompt text embeddings"},
          summary_artifact()};
}

std::string IndexStage::fingerprint() const {
  return opts_.checkpoint.empty() ? std::string() : file_fingerprint(opts_.checkpoint);
}

std::string IndexStage::describe() const {
  return fmt::format("index(data={}, split={}, composer={}, dtype={})", opts_.data, opts_.split,
                     opts_.composer.empty() ? "none" : opts_.composer, opts_.dtype);
}

namespace {

at::Tensor embed_texts(Backbone& bb, const std::vector<std::string>& texts, const at::Device& dev) {
  return clip::l2_normalize(bb.encode_text(bb.tokenize(texts).to(dev))).to(at::kFloat).cpu().contiguous();
}

/// "" when `file` is a finished chunk of `rows` x `dim` finite float32 values, else why not.
std::string check_chunk(const std::filesystem::path& file, int64_t rows, int64_t dim) {
  if (!std::filesystem::exists(file)) return "missing";
  try {
    at::Tensor t = data::load_npy(file);
    if (t.scalar_type() != at::kFloat || t.dim() != 2 || t.size(0) != rows || t.size(1) != dim)
      return fmt::format("holds {} {} instead of float32 [{}, {}]", c10::toString(t.scalar_type()),
                         fmt::join(t.sizes(), "x"), rows, dim);
    if (!at::isfinite(t).all().item<bool>()) return "holds non-finite values";
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

void IndexStage::run(StageContext& ctx) {
  const std::string where = fmt::format("[{}]", table_);
  const at::Device dev(device_);

  // 1. Weights and prompts (as the evaluate stage loads them).
  std::filesystem::path ckpt;
  if (!opts_.checkpoint.empty()) ckpt = opts_.checkpoint;
  else if (!opts_.train_stage.empty()) ckpt = ctx.artifact(opts_.train_stage, artifacts::kCheckpoint);
  std::vector<std::string> prompts = opts_.prompts;
  retrieval::IndexManifest m;
  if (!ckpt.empty()) {
    const auto loaded = clip::load_clip_checkpoint(*backbone_, ckpt, where);
    if (prompts.empty()) prompts = loaded.prompts;
    m.checkpoint_step = loaded.step;
    m.checkpoint = std::filesystem::absolute(ckpt).string();
    m.checkpoint_sha256 = retrieval::file_sha256(ckpt);
  }
  if (prompts.empty()) prompts = clip::released_prompts();
  DAUG_CHECK_AS(DataError, prompts.size() == kChexpertClasses.size(), where, ": need 14 class prompts, but got ",
                prompts.size());

  // 2. Items and their heatmaps.
  auto items = data_->split(opts_.split);
  const auto spec = clip::resolve_heatmaps(opts_.heatmaps, composer_.get(), ctx, where);
  items = clip::require_heatmaps(items, spec, opts_.heatmaps.on_missing_heatmap, ctx.strict, where);
  const auto n = static_cast<int64_t>(items.size());
  const int64_t S = backbone_->image_size();
  backbone_->set_training(false);
  at::NoGradGuard no_grad;
  const int64_t dim = embed_texts(*backbone_, {prompts.front()}, dev).size(1);

  // 3. Chunks: chunk c holds rows [c·R, min(n, (c+1)·R)); worker w of `workers` (ranks × shards) owns c % workers == w.
  auto& comm = communicator();
  const int64_t R = opts_.chunk_rows;
  const int64_t chunks = (n + R - 1) / R;
  const int64_t workers = static_cast<int64_t>(comm.world_size()) * ctx.shard_count;
  const int64_t me = static_cast<int64_t>(ctx.shard_index) * comm.world_size() + comm.rank();
  const std::filesystem::path chunk_dir = ctx.output_dir / "chunks";
  std::filesystem::create_directories(chunk_dir);
  auto chunk_file = [&](int64_t c) { return chunk_dir / fmt::format("chunk-{:06d}.npy", c); };
  auto chunk_rows = [&](int64_t c) { return std::min(n, (c + 1) * R) - c * R; };
  std::vector<int64_t> todo;
  int64_t mine = 0, redo = 0;
  for (int64_t c = me; c < chunks; c += workers) {
    ++mine;
    const std::string bad = check_chunk(chunk_file(c), chunk_rows(c), dim);
    if (bad.empty()) continue;
    if (bad != "missing") {
      ++redo;
      log::warn("{} chunk {} is redone: {} {}", where, c, chunk_file(c).string(), bad);
    }
    todo.push_back(c);
  }
  log::info("{} {} images of [{}] ('{}') in {} chunks of {} rows; this process owns {}, {} to embed{}; {}", where, n,
            opts_.data, opts_.split, chunks, R, mine, todo.size(),
            redo ? fmt::format(" ({} redone after failed verification)", redo) : std::string(),
            ckpt.empty() ? std::string("the backbone as built") : "weights " + ckpt.string());
  const bool with_maps = composer_ != nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t embedded = 0;
  for (int64_t c : todo) {
    const int64_t lo = c * R, rows = chunk_rows(c);
    const int64_t batches = (rows + opts_.batch_size - 1) / opts_.batch_size;
    train::PrefetchJob job;
    job.batches = batches;
    job.indices = [&](int64_t k) {
      std::vector<int64_t> idx;
      for (int64_t i = lo + k * opts_.batch_size; i < std::min(lo + rows, lo + (k + 1) * opts_.batch_size); ++i)
        idx.push_back(i);
      return idx;
    };
    job.item = [&](int64_t i) { return clip::clip_item(*items[static_cast<size_t>(i)], S, with_maps, spec); };
    job.pin_memory = dev.is_cuda();
    train::Prefetcher loader(std::move(job), train::LoaderOptions{});
    std::vector<at::Tensor> parts;
    for (int64_t k = 0; k < batches; ++k) {
      auto in = clip::clip_compose(train::to_device(loader.next().parts, dev), composer_.get());
      parts.push_back(clip::l2_normalize(backbone_->encode_image(in)).to(at::kFloat).cpu());
    }
    data::save_npy(chunk_file(c), at::cat(parts, 0).contiguous());  // atomic: a finished chunk or none
    embedded += rows;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info("{} chunk {} done: {} images embedded in {:.1f} s ({:.2f} images/s)", where, c, embedded, secs,
              secs > 0 ? embedded / secs : 0.0);
  }
  if (comm.world_size() > 1) comm.barrier(fmt::format("{}: every rank wrote its chunks", where));
  if (ctx.shard_count > 1) {
    log::info("{} shard {}/{} wrote its chunks; an unsharded run assembles the index", where, ctx.shard_index,
              ctx.shard_count);
    return;
  }
  if (!comm.is_main()) return;

  // 4. Assemble (rank 0): every chunk verified, then the index files; index.json last.
  std::vector<at::Tensor> all;
  for (int64_t c = 0; c < chunks; ++c) {
    const std::string bad = check_chunk(chunk_file(c), chunk_rows(c), dim);
    DAUG_CHECK_AS(DataError, bad.empty(), where, ": chunk ", c, " (", chunk_file(c).string(), ", slice of worker ",
                  c % workers, ") is not finished: ", bad,
                  ". The stage is not marked complete; running it again "
                  "redoes it");
    all.push_back(data::load_npy(chunk_file(c)));
  }
  at::Tensor emb = at::cat(all, 0);
  data::save_npy(ctx.output("embeddings"), opts_.dtype == "float16" ? emb.to(at::kHalf) : emb);
  std::vector<retrieval::IndexItem> rows;
  for (const auto* s : items)
    rows.push_back({s->id, s->split, std::filesystem::absolute(s->image).lexically_normal().string(), s->labels});
  retrieval::write_items_csv(ctx.output("items"), rows);
  data::save_npy(ctx.output("class_embeddings"), embed_texts(*backbone_, prompts, dev));

  m.count = n;
  m.dim = dim;
  m.dtype = opts_.dtype;
  m.backbone_table = opts_.backbone;
  m.backbone = backbone_->describe();
  m.composer_table = opts_.composer;
  m.composer = composer_ ? composer_->describe() : "";
  m.heatmap_maps = static_cast<int64_t>(spec.maps.size());
  m.heatmaps_stage = spec.maps.empty() || !opts_.heatmaps.heatmap_dir.empty() ? "" : opts_.heatmaps.heatmaps_stage;
  m.heatmaps_origin = spec.origin;
  m.heatmap_prep = opts_.heatmaps.heatmap_prep;
  m.model_fingerprint = retrieval::model_fingerprint(m.checkpoint_sha256, backbone_->fingerprint(), m.backbone,
                                                     m.composer, m.heatmap_prep, prompts);
  m.image_size = S;
  m.preprocessing = fmt::format(
      "decode to RGB (gray replicated); resize to {0}x{0} with bicubic antialiasing (aspect not kept, no crop); "
      "8-bit rounding as PIL; normalise with CLIP mean ({1}) and std ({2}){3}",
      S, fmt::join(clip::kClipMean, ", "), fmt::join(clip::kClipStd, ", "),
      spec.maps.empty() ? std::string()
                        : fmt::format("; heatmap: {} ({}) to {}x{}, composed by [{}] {}", opts_.heatmaps.heatmap_prep,
                                      opts_.heatmaps.heatmap_prep == "released"
                                          ? "min-max and uint8 at native size, then bicubic resize"
                                          : "bicubic resize",
                                      S, S, opts_.composer, m.composer));
  m.prompts = prompts;
  m.class_logit_scale = opts_.class_logit_scale;
  m.source_table = opts_.data;
  m.source = data_->describe();
  m.source_fingerprint = data_->fingerprint();
  m.split = opts_.split;
  m.stage_table = table_;
  m.stage_dir = std::filesystem::absolute(ctx.output_dir).lexically_normal().string();
  m.cache_dir = std::filesystem::absolute(ctx.output_dir).lexically_normal().parent_path().string();
  write_file_atomic(ctx.output(artifacts::kSummary),
                    fmt::format("Retrieval index of {} images of [{}] (split '{}'): {}-d {} embeddings, model "
                                "fingerprint {}{}.\n",
                                n, opts_.data, opts_.split, dim, opts_.dtype, m.model_fingerprint.substr(0, 16),
                                ckpt.empty() ? "" : fmt::format(" (checkpoint {})", m.checkpoint)));
  write_file_atomic(ctx.output("index"), m.to_json());
  std::filesystem::remove_all(chunk_dir);
}

std::string IndexStage::summary(const std::filesystem::path& output_dir) const {
  std::ifstream in(output_path(output_dir, artifacts::kSummary));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "index", daug::plugins::IndexStage,
                     "retrieval index: a Source's image embeddings (with heatmap channel) for `daug query`")
