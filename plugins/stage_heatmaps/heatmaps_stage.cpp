// Stage `heatmaps` (see heatmaps_stage.h and README.md).
#include "heatmaps_stage.h"

#include <daug/checkpoint.h>
#include <daug/classifier.h>
#include <daug/communicator.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/generator.h>
#include <daug/guidance.h>
#include <daug/heatmap_composer.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/source.h>
#include <daug/stages/common.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace daug::plugins {

namespace {
const auto kGeneratorWeights =
    choices<GeneratorWeights>({{"ema", GeneratorWeights::ema}, {"model", GeneratorWeights::model}});
const auto kEncodeModes =
    choices<EncodeMode>({{"ddim", EncodeMode::ddim_inversion}, {"qsample", EncodeMode::q_sample}});
const auto kDirections = choices<Direction>({{"+", Direction::toward}, {"-", Direction::away}});
}  // namespace

void HeatmapsOptions::visit(OptionVisitor& v) {
  v("generator", generator, "config table of the diffusion Generator", Check::required_non_empty());
  v("classifier", classifier,
    "config table of the Classifier that the guidance uses (its trained weights are loaded into it); "
    "'' = none (unguided)");
  v("guidance", guidance, "config table of the Guidance ('' = unguided: plain encode/decode reconstruction)");
  v("composer", composer, "config table of the HeatmapComposer (absdiff_minmax)", Check::required_non_empty());
  v("data", data, "config table of the Source", Check::required_non_empty());
  v("diffusion_stage", diffusion_stage,
    "stage table whose output holds the trained generator ('' = use the generator as built)");
  v("classifier_stage", classifier_stage,
    "stage table whose output holds the trained classifier ('' = use the classifier as built)");
  v("generator_weights", generator_weights, "which trained generator weights to load: \"model\" (raw, as the released "
    "sampler loads mimic2update*.pt) or \"ema\"", kGeneratorWeights);
  v("split", split, "images to process: all, train, val, test, or a '+' join (CLIP needs train and test)",
    Check::required_non_empty());
  v("encode", encode, "how x0 is taken to noise level L: ddim = DDIM inversion (released code), qsample = "
    "q_sample + DDPM decoding (Wolleb's DDPM path)", kEncodeModes);
  v("noise_level", noise_level, "L in original timesteps (released: 500)", Check::at_least(1));
  v("target", target, "super-class the guidance moves toward (+) or away from (-) (released: No Finding)",
    Check::required_non_empty());
  v("direction", direction, "'+' toward the target, '-' away from it", kDirections);
  v("label", label, "class label fed to the UNet while translating (1 = healthy, released 'model_fn_1'); "
    "-1 = no label (unconditional model)", Check::at_least(-1));
  v("tag", tag, "file tag: <id>_<direction><tag>.npy (released: nof)", Check::required_non_empty());
  v("batch_size", batch_size, "images translated together", Check::at_least(1));
  v("overlays", overlays, "write an overlay PNG (input | translated | heatmap) for the first N images",
    Check::at_least(0));
  v("overlay_size", overlay_size,
    "overlay panels smaller than this many pixels high are enlarged by an integer factor (nearest neighbour)",
    Check::at_least(1));
  v("limit", limit, "process only the first N selected images (0 = all)", Check::at_least(0));
  v("seed", seed, "seed of the sampler's noise (-1 = the run seed); per batch: mix(seed, first index)",
    Check::at_least(-1));
  v("log_every_s", log_every_s, "seconds between progress lines", Check::at_least(0).for_runtime());
  v("resize_filter", resize_filter, "filter resizing images to the generator's image_shape", stages::kResizeFilters);
  v("normalize", normalize, "per-image value normalisation; must match the training stages", stages::kNormalizations);
  train::visit_loader_options(v, loader);
  v("precision", precision,
    "fp32 | bf16 | fp16 for the UNet and the guidance classifier while translating (autocast; GroupNorm, softmax, "
    "the sampler state and the schedule algebra stay float32, as guided-diffusion's use_fp16); \"\" = "
    "[run].precision",
    stages::precision_choice());
}

HeatmapsStage::HeatmapsStage(Options opts, Parts parts) : opts_(std::move(opts)), parts_(std::move(parts)) {
  check_options(opts_, "[heatmaps]");
  for (char c : opts_.tag)
    DAUG_CHECK_AS(ConfigError, std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-',
                  "[heatmaps].tag must be letters, digits, '_' or '-' (it names files), but got '", opts_.tag, "'");
  DAUG_CHECK_AS(ConfigError, opts_.guidance.empty() || !opts_.classifier.empty(),
                "[heatmaps].classifier must name the classifier table when guidance is set");
  DAUG_CHECK(parts_.data && parts_.generator && parts_.composer, "heatmaps: data, generator and composer are required");
  if (parts_.guidance) {
    DAUG_CHECK(parts_.classifier != nullptr, "heatmaps: guidance needs the classifier");
    target_ = target_index(parts_.classifier->class_names(), opts_.target);
    // The Source's grouping must be the classifier's (the target name refers to both).
    const auto& g = parts_.data->superclasses();
    if (g.names != parts_.classifier->class_names())
      throw ConfigError(fmt::format("[{}] outputs [{}] but the super-classes of [{}] are [{}]", opts_.classifier,
                                    fmt::join(parts_.classifier->class_names(), ", "), opts_.data,
                                    fmt::join(g.names, ", ")));
  }
  const int64_t T = parts_.generator->num_timesteps();
  DAUG_CHECK_AS(ConfigError, opts_.noise_level < T, "[heatmaps].noise_level must be < T = ", T, ", but got ",
                opts_.noise_level);
}

std::shared_ptr<Stage> HeatmapsStage::create(Options opts, BuildContext& ctx) {
  Parts p;
  p.data = ctx.component<Source>(opts.data);
  p.generator = ctx.component<Generator>(opts.generator);
  // Here, not only in the constructor: ctx knows where noise_level was written (file:line).
  if (const int64_t T = p.generator->num_timesteps(); opts.noise_level >= T)
    throw ConfigError(fmt::format("{} must be < T = {} (diffusion_steps of [{}]), but got {}", ctx.where("noise_level"),
                                  T, opts.generator, opts.noise_level));
  p.composer = ctx.component<HeatmapComposer>(opts.composer);
  if (!opts.guidance.empty()) {
    DAUG_CHECK_AS(ConfigError, !opts.classifier.empty(),
                  "[heatmaps].classifier must name the classifier table when guidance is set");
    p.classifier = ctx.component<Classifier>(opts.classifier);
    p.guidance = ctx.component<Guidance>(opts.guidance);
    if (!opts.classifier_stage.empty()) ctx.component<Stage>(opts.classifier_stage);
  }
  if (!opts.diffusion_stage.empty()) ctx.component<Stage>(opts.diffusion_stage);
  opts.precision = precision_name(stage_precision(ctx, opts.precision));
  return std::make_shared<HeatmapsStage>(std::move(opts), std::move(p));
}

std::vector<Artifact> HeatmapsStage::outputs() const {
  return {{artifacts::kHeatmapsIndex, kHeatmapsIndexFile,
           "every selected image: id,split,file,target,direction (file = float32 H×W .npy in this directory)"},
          {artifacts::kOverlays, "overlays", "PNG panels input | translated | heatmap for the first `overlays` images"},
          metrics_artifact(),
          summary_artifact()};
}

std::string HeatmapsStage::describe() const {
  return fmt::format("heatmaps(target={}{}, L={}, encode={}, label={}, guidance={}, batch={})",
                     kDirections.name(opts_.direction), opts_.target, opts_.noise_level, kEncodeModes.name(opts_.encode),
                     opts_.label,
                     opts_.guidance.empty() ? "none" : opts_.guidance, opts_.batch_size);
}

int64_t HeatmapsStage::target_index(const std::vector<std::string>& names, const std::string& target) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == target) return static_cast<int64_t>(i);
  throw ConfigError(fmt::format("[heatmaps].target '{}' is not a super-class of the classifier; valid: {}", target,
                                fmt::join(names, ", ")));
}

namespace {

void load_weights(Trainable& model, const std::filesystem::path& file, const std::string& what) {
  DAUG_CHECK_AS(DataError, std::filesystem::exists(file), "heatmaps: the ", what, " weights ", file.string(),
                " do not exist (did the upstream stage finish?)");
  SafetensorsFile f = load_safetensors(file);
  model.load_state(f.tensors);
  log::info("heatmaps: loaded {} weights from {}", what, file.string());
}

}  // namespace

std::string HeatmapsStage::check_finished_heatmap(const std::filesystem::path& npy, const std::vector<int64_t>& hw) {
  data::NpyInfo info;
  try {
    info = data::read_npy_info(npy);  // header + exact file size: catches truncation and garbage
  } catch (const DataError& e) {
    return e.what();
  }
  const auto& s = info.shape;
  const bool shape_ok = (s.size() == 2 || s.size() == 3) && s[s.size() - 2] == hw[0] && s[s.size() - 1] == hw[1];
  if (info.dtype != at::kFloat || !shape_ok)
    return fmt::format("'{}': expected a float32 [{},{}] (or [C,{},{}]) heatmap, but the file holds {} {}",
                       npy.string(), hw[0], hw[1], hw[0], hw[1], c10::toString(info.dtype), fmt::join(s, "x"));
  return "";
}

std::string HeatmapsStage::check_finished_overlay(const std::filesystem::path& png) {
  // A complete PNG ends with the 12-byte IEND chunk (length 0, "IEND", CRC ae 42 60 82); a cut file does not.
  static const unsigned char kIend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  std::error_code ec;
  const auto size = std::filesystem::file_size(png, ec);
  if (ec) return fmt::format("overlay '{}' is missing", png.string());
  std::ifstream f(png, std::ios::binary);
  char head[8] = {0}, tail[12] = {0};
  f.read(head, 8);
  if (size >= 20) {
    f.seekg(static_cast<std::streamoff>(size - 12));
    f.read(tail, 12);
  }
  if (size < 20 || !f || std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) != 0 || std::memcmp(tail, kIend, 12) != 0)
    return fmt::format("overlay '{}' ({} bytes) is not a complete PNG (signature or IEND chunk missing)", png.string(),
                       size);
  return "";
}

void HeatmapsStage::run(StageContext& ctx) {
  auto& build = ctx.build;
  const auto& src = parts_.data;
  const auto& gen = parts_.generator;
  const auto& composer = parts_.composer;
  const auto& guidance = parts_.guidance;
  const auto& clf = parts_.classifier;
  const int64_t target = target_;

  // Select the images: split, limit, then this process's shard.
  std::vector<const Sample*> all = src->split(opts_.split);
  if (opts_.limit > 0 && static_cast<int64_t>(all.size()) > opts_.limit) all.resize(static_cast<size_t>(opts_.limit));
  std::vector<int64_t> mine = stages::shard_indices(static_cast<int64_t>(all.size()), ctx.shard_index, ctx.shard_count);
  // Batches are fixed groups of `mine` (consecutive batch_size images). Under a distributed launch rank r takes the
  // groups g with g % world == r: whole groups, so every image gets the batch and per-batch seed it gets in a single
  // process and the files are byte-identical whatever the number of ranks.
  auto& comm = communicator();
  const int rank = comm.rank(), world = comm.world_size();
  const size_t bs = static_cast<size_t>(opts_.batch_size);
  std::vector<std::vector<int64_t>> my_groups;
  std::vector<int64_t> owned;  // the images of my_groups, in order (= mine in a single process)
  for (size_t s = 0, g = 0; s < mine.size(); s += bs, ++g) {
    if (static_cast<int>(g % static_cast<size_t>(world)) != rank) continue;
    my_groups.emplace_back(mine.begin() + static_cast<std::ptrdiff_t>(s),
                           mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), s + bs)));
    owned.insert(owned.end(), my_groups.back().begin(), my_groups.back().end());
  }
  const int direction = static_cast<int>(opts_.direction);
  auto npy_path = [&](const Sample& s) { return ctx.output_dir / stages::heatmap_file_name(s.id, direction, opts_.tag); };
  auto overlay_path = [&](const Sample& s) {
    std::string png = stages::heatmap_file_name(s.id, direction, opts_.tag);
    png.replace(png.size() - 4, 4, ".png");
    return ctx.output(artifacts::kOverlays) / png;
  };
  // Resume: an image is done only if its outputs pass a cheap check (a kill or a full disk can leave a file that
  // merely exists); a bad one is redone, so `.complete` (written after run() returns) never covers a bad file.
  const std::vector<int64_t> hw = {gen->image_shape().at(1), gen->image_shape().at(2)};
  auto check_done = [&](int64_t i) {  // "" = finished and verified, else why not
    const Sample& smp = *all[static_cast<size_t>(i)];
    const auto npy = npy_path(smp);
    if (!std::filesystem::exists(npy)) return fmt::format("'{}' is missing", npy.string());
    std::string bad = check_finished_heatmap(npy, hw);
    if (bad.empty() && i < opts_.overlays) bad = check_finished_overlay(overlay_path(smp));
    return bad;
  };
  std::vector<int64_t> todo;
  int64_t redo = 0;
  std::string first_bad;
  for (int64_t i : owned) {
    if (!std::filesystem::exists(npy_path(*all[static_cast<size_t>(i)]))) {
      todo.push_back(i);
      continue;
    }
    std::string bad = check_done(i);
    if (bad.empty()) continue;
    if (first_bad.empty()) first_bad = bad;
    ++redo;
    todo.push_back(i);
  }
  int64_t already = static_cast<int64_t>(owned.size() - todo.size());
  if (redo > 0)
    log::warn("heatmaps: {} finished heatmap(s) failed verification and will be redone; first: {}", redo, first_bad);
  const std::string rank_note =
      world > 1 ? fmt::format(", rank {}/{} owns {} of them in {} groups", rank, world, owned.size(), my_groups.size())
                : std::string();
  log::info(
      "heatmaps: {} images selected ('{}'), shard {}/{} owns {}{}, {} already done, {} to do ({} redone after "
      "failed verification); {}",
      all.size(), opts_.split, ctx.shard_index, ctx.shard_count, mine.size(), rank_note, already, todo.size(), redo,
      describe());
  if (world > 1)
    comm.set_phase(fmt::format("heatmaps: translating the slice of rank {} ({} images)", rank, todo.size()));

  if (!todo.empty()) {
    if (!opts_.diffusion_stage.empty())
      load_weights(*gen, ctx.artifact(opts_.diffusion_stage, opts_.generator_weights == GeneratorWeights::ema ? artifacts::kWeightsEma
                                                                                                : artifacts::kWeights),
                   "generator");
    if (clf && !opts_.classifier_stage.empty())
      load_weights(*clf, ctx.artifact(opts_.classifier_stage, artifacts::kWeights), "classifier");
  }
  gen->set_training(false);
  if (clf) clf->set_training(false);

  const c10::Device dev(build.device());
  const uint64_t seed = stages::resolve_seed(opts_.seed, build.seed());
  stages::ImagePrep prep{gen->image_shape(), opts_.resize_filter, opts_.normalize};
  const std::filesystem::path overlay_dir = ctx.output(artifacts::kOverlays);
  std::filesystem::create_directories(overlay_dir);

  at::NoGradGuard no_grad;
  data::SmallImages small("heatmaps");
  stages::Progress progress("heatmaps", static_cast<int64_t>(owned.size()), already, opts_.log_every_s, "img");
  auto t0 = std::chrono::steady_clock::now();
  int64_t done = already, made = 0;
  // A group with anything to do is translated whole, so every image sees the same batch and per-batch seed as in an
  // uninterrupted run, and redone files are byte-identical.
  const std::set<int64_t> todo_set(todo.begin(), todo.end());
  std::vector<std::vector<int64_t>> groups;  // the groups with work, in order
  for (auto& idx : my_groups)
    if (std::any_of(idx.begin(), idx.end(), [&](int64_t i) { return todo_set.count(i) > 0; }))
      groups.push_back(std::move(idx));
  // Workers decode and resize the next groups while this one is translated (same images, same order).
  train::PrefetchJob job;
  job.batches = static_cast<int64_t>(groups.size());
  job.indices = [&](int64_t k) { return groups[static_cast<size_t>(k)]; };
  job.item = [&](int64_t i) {
    return std::vector<at::Tensor>{stages::load_image(*all[static_cast<size_t>(i)], prep, &small)};
  };
  job.pin_memory = dev.is_cuda();
  train::Prefetcher loader(std::move(job), opts_.loader);
  for (const auto& idx : groups) {
    int64_t wanted = 0;
    for (int64_t i : idx) wanted += static_cast<int64_t>(todo_set.count(i));
    at::Tensor x0 = train::to_device(loader.next().parts, dev)[0];
    const int64_t b = x0.size(0);
    at::manual_seed(stages::mix_seed(seed, static_cast<uint64_t>(idx.front())));

    TranslateRequest req;
    req.x0 = x0;
    if (opts_.label >= 0) req.label = at::full({b}, opts_.label, at::TensorOptions().dtype(at::kLong).device(dev));
    req.guidance = guidance.get();
    req.target = at::full({b}, target, at::TensorOptions().dtype(at::kLong).device(dev));
    req.direction = direction;
    req.noise_level = opts_.noise_level;
    req.encode = opts_.encode;
    at::Tensor xhat;
    {
      AutocastGuard autocast(stages::resolved_precision(opts_.precision), build.device());
      xhat = gen->translate(req);
    }
    DAUG_CHECK(xhat.sizes() == x0.sizes(), "[", opts_.generator, "] translate returned ", xhat.sizes(),
               " for an input of ", x0.sizes());
    at::Tensor heat = composer->compose(x0, {xhat}).to(at::kCPU).to(at::kFloat);
    DAUG_CHECK(heat.dim() == 4 && heat.size(0) == b, "[", opts_.composer, "] must return [N,c,H,W] with N=", b,
               ", but got ", heat.sizes());
    at::Tensor x0c = x0.to(at::kCPU), xhatc = xhat.to(at::kCPU);
    for (int64_t j = 0; j < b; ++j) {
      const int64_t i = idx[static_cast<size_t>(j)];
      if (todo_set.count(i) == 0) continue;  // finished and verified: kept as it is
      const Sample& smp = *all[static_cast<size_t>(i)];
      at::Tensor h = heat[j].size(0) == 1 ? heat[j][0] : heat[j];
      DAUG_CHECK(h.size(-1) == hw[1] && h.size(-2) == hw[0], "[", opts_.composer, "] returned a ", h.sizes(),
                 " heatmap for a ", hw[0], "x", hw[1], " image");
      if (i < opts_.overlays) {
        at::Tensor panel = stages::overlay_panel(x0c[j], xhatc[j], heat[j][0]);
        const int64_t f = std::max<int64_t>(1, opts_.overlay_size / panel.size(1));
        if (f > 1) panel = data::resize(panel, panel.size(1) * f, panel.size(2) * f, data::Filter::nearest);
        data::save_png(overlay_path(smp), panel);
      }
      data::save_npy(npy_path(smp), h.contiguous());  // last: its existence marks the image as done
    }
    done += wanted;
    made += wanted;
    progress.update(done);
  }
  small.report();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t images = static_cast<int64_t>(mine.size());

  // Distributed: every rank has written its slice; rank 0 alone verifies the whole selection and writes the index,
  // summary and metrics (ranks > 0 write only their heatmaps and overlays). The core marks the stage complete on
  // rank 0 after run() returns, so `.complete` never covers another rank's missing or bad file.
  std::string ranks_md, ranks_json;
  if (world > 1) {
    comm.barrier("heatmaps: every rank's slice written");
    const auto stats = comm.all_gather_bytes(fmt::format("{} {} {} {:.17g}", made, already, redo, secs),
                                             "heatmaps: per-rank image counts and seconds");
    if (!comm.is_main()) return;
    made = already = redo = 0;
    secs = 0;  // the slowest rank: the wall time of the distributed run
    std::vector<std::string> per_rank;
    for (int r = 0; r < world; ++r) {
      int64_t m = 0, a = 0, d = 0;
      double t = 0;
      std::istringstream in(stats[static_cast<size_t>(r)]);
      DAUG_CHECK(static_cast<bool>(in >> m >> a >> d >> t), "heatmaps: rank ", r, " sent malformed counts '",
                 stats[static_cast<size_t>(r)], "'");
      made += m, already += a, redo += d, secs = std::max(secs, t);
      ranks_md += fmt::format("{}rank {}: {} made in {} ({:.3f} images/s)", r ? "; " : "", r, m,
                              stages::format_duration(t), t > 0 ? m / t : 0.0);
      per_rank.push_back(
          fmt::format("{{\"rank\": {}, \"made\": {}, \"found_done\": {}, \"redone_bad\": {}, "
                      "\"seconds\": {}}}",
                      r, m, a, d, stages::json_number(t)));
    }
    ranks_md = fmt::format(" Over {} ranks ({}).", world, ranks_md);
    ranks_json = fmt::format(", \"ranks\": {}, \"per_rank\": [{}]", world, fmt::join(per_rank, ", "));
    // Verify every selected image of this shard, naming the rank whose slice it was.
    int64_t bad = 0;
    std::string first;
    for (size_t k = 0; k < mine.size(); ++k) {
      const std::string why = check_done(mine[k]);
      if (why.empty()) continue;
      if (bad++ == 0) first = fmt::format("{} (slice of rank {})", why, (k / bs) % static_cast<size_t>(world));
    }
    if (bad > 0)
      throw DataError(
          fmt::format("heatmaps: after every rank wrote its slice, {} of {} selected images have no valid "
                      "output; first: {}. The stage is not marked complete; running it again redoes "
                      "them",
                      bad, mine.size(), first));
  }
  const double rate = secs > 0 && made > 0 ? made / secs : 0.0;

  if (ctx.shard_count == 1) {
    std::string index = "id,split,file,target,direction\n";
    for (const Sample* s : all)
      index += fmt::format("{},{},{},{},{}\n", s->id, s->split, stages::heatmap_file_name(s->id, direction, opts_.tag),
                           opts_.target, kDirections.name(opts_.direction));
    write_file_atomic(ctx.output(artifacts::kHeatmapsIndex), index);
  }
  const std::string suffix = ctx.shard_count == 1 ? "" : fmt::format("_shard{}of{}", ctx.shard_index, ctx.shard_count);
  std::string md = fmt::format(
      "### heatmaps\n\n{} heatmaps `<id>_{}{}.npy` ({} selected, {}): {} made now in {} ({:.3f} images/s, "
      "{:.2f} s/image), {} found done ({} redone after failing verification). {}{}, L={}, label={}, image "
      "{}x{}x{}.{}\n",
      images, kDirections.name(opts_.direction), opts_.tag, all.size(),
      world > 1 ? fmt::format("on {} ranks", world) : fmt::format("shard {}/{}", ctx.shard_index, ctx.shard_count),
      made,
      stages::format_duration(secs), rate, rate > 0 ? 1.0 / rate : 0.0, already, redo,
      kDirections.name(opts_.direction), opts_.target, opts_.noise_level, opts_.label, prep.shape[0], prep.shape[1],
      prep.shape[2], ranks_md);
  auto with_suffix = [&](std::filesystem::path p) {  // summary.md -> summary_shard0of2.md under --shard
    return p.replace_filename(p.stem().string() + suffix + p.extension().string());
  };
  write_file_atomic(with_suffix(ctx.output(artifacts::kSummary)), md);
  write_file_atomic(with_suffix(ctx.output(artifacts::kMetrics)),
                    fmt::format("{{\"images\": {}, \"made\": {}, \"found_done\": {}, \"redone_bad\": {}, "
                                "\"seconds\": {}, \"images_per_s\": {}, \"shard\": \"{}/{}\"{}}}\n",
                                images, made, already, redo, stages::json_number(secs), stages::json_number(rate),
                                ctx.shard_index, ctx.shard_count, ranks_json));
  log::info("{}", md);
}

std::string HeatmapsStage::summary(const std::filesystem::path& output_dir) const {
  const auto whole = output_path(output_dir, artifacts::kSummary);
  std::string out = stages::read_text_if_exists(whole);
  if (!out.empty()) return out;
  const std::string shard_prefix = whole.stem().string() + "_shard";  // written under --shard k/N
  for (const auto& e : std::filesystem::directory_iterator(output_dir))
    if (e.path().filename().string().rfind(shard_prefix, 0) == 0 && e.path().extension() == whole.extension())
      out += stages::read_text_if_exists(e.path());
  return out;
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "heatmaps", daug::plugins::HeatmapsStage,
                     "DAug heatmaps: encode to L, guided decode toward +No Finding, |minmax(x) - minmax(x̂)| → .npy")
