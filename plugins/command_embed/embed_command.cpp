// `daug embed`: image and text embeddings from a configured Backbone, written as .npy files.
//
//   daug embed CONFIG [--set k=v ...] [--backbone TABLE] [--images a.png b.png ... | --images-npy x.npy]
//                     [--texts "..." ... | --texts-file f.txt | --tokens-npy ids.npy] [--batch-size N]
//                     [--workers N] --out DIR
//
// Images are preprocessed as the CLIP stages do (libs/clip preprocess_pixels: DAug's released
// CLIPImageProcessor(size=[S,S], do_center_crop=False)): decode to RGB (gray replicated), direct bicubic resize to
// S×S (aspect not kept), 8-bit rounding as PIL, rescale to [0,1], normalise with CLIP's mean/std. --images-npy
// takes already preprocessed float pixels [N,3,S,S]. Outputs in --out: image_embeds.npy, image_embeds_norm.npy
// (L2-normalised rows), text_embeds.npy, text_embeds_norm.npy and tokens.npy (int64 ids actually encoded).
// Under a distributed launch (`daug launch --nproc N -- embed ...`, torchrun, srun) each rank embeds its shard of the
// images and texts (libs/clip clip_shard.h); rank 0 gathers them in order and writes the files.
#include "embed_command.h"

#include <daug/backbone.h>
#include <daug/communicator.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/register.h>
#include <daug/train/prefetcher.h>

#include "clip_common.h"
#include "clip_shard.h"

#include <ATen/ATen.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace po = boost::program_options;

namespace daug::plugins {
namespace {

constexpr const char* kUsage =
    "usage: daug embed CONFIG [--set k=v ...] [--backbone TABLE] [--images a.png b.png ... | --images-npy x.npy]\n"
    "                  [--texts \"...\" ... | --texts-file f.txt | --tokens-npy ids.npy] [--batch-size N]\n"
    "                  [--workers N] --out DIR\n"
    "Writes image_embeds.npy, image_embeds_norm.npy, text_embeds.npy, text_embeds_norm.npy, tokens.npy into DIR.\n"
    "--texts-file: one text per line (empty lines skipped). --images-npy: preprocessed float [N,3,S,S].\n";

struct EmbedArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string backbone = "backbone";
  std::vector<std::string> images;
  std::string images_npy;
  std::vector<std::string> texts;
  std::string texts_file;
  std::string tokens_npy;
  std::string out;
  int64_t batch_size = 32;
  int64_t workers = train::LoaderOptions{}.workers;
  bool help = false;
};

EmbedArgs parse(const std::vector<std::string>& args) {
  EmbedArgs a;
  po::options_description desc("daug embed options");
  desc.add_options()("help,h", "show help")("config", po::value(&a.config), "experiment config (TOML)")(
      "set", po::value(&a.sets)->composing(), "override, e.g. --set backbone.weights=...")(
      "backbone", po::value(&a.backbone), "table of the Backbone (default: backbone)")(
      "images", po::value(&a.images)->multitoken(), "image files")("images-npy", po::value(&a.images_npy),
                                                                   "preprocessed float pixels [N,3,S,S]")(
      "texts", po::value(&a.texts)->multitoken(), "texts")("texts-file", po::value(&a.texts_file), "one text per line")(
      "tokens-npy", po::value(&a.tokens_npy), "int64/int32 token ids [N,L]")("batch-size", po::value(&a.batch_size),
                                                                             "batch size (default 32)")(
      "workers", po::value(&a.workers),
      "image loader threads (0 = decode on the main thread; default: that of the stages' loader_workers)")(
      "out", po::value(&a.out), "output directory");
  po::positional_options_description pos;
  pos.add("config", 1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
    a.help = vm.count("help") > 0;
  } catch (const po::too_many_positional_options_error&) {
    throw ConfigError(fmt::format("daug embed: only one CONFIG may be given, but got more positional arguments "
                                  "(CONFIG is '{}')\n{}", a.config, kUsage));
  } catch (const po::invalid_option_value& e) {
    throw ConfigError(fmt::format("daug embed: {} (--batch-size must be a positive integer)\n{}", e.what(), kUsage));
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("daug embed: {}\n{}", e.what(), kUsage));
  }
  if (a.help) return a;
  DAUG_CHECK_AS(ConfigError, a.batch_size > 0, "daug embed: --batch-size must be > 0, but got ", a.batch_size);
  DAUG_CHECK_AS(ConfigError, a.workers >= 0, "daug embed: --workers must be >= 0, but got ", a.workers);
  DAUG_CHECK_AS(ConfigError, !a.config.empty(), "daug embed: CONFIG is required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, !a.out.empty(), "daug embed: --out DIR is required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, a.images.empty() || a.images_npy.empty(),
                "daug embed: give either --images or --images-npy, not both");
  const int text_sources = !a.texts.empty() + !a.texts_file.empty() + !a.tokens_npy.empty();
  DAUG_CHECK_AS(ConfigError, text_sources <= 1, "daug embed: give only one of --texts, --texts-file, --tokens-npy");
  DAUG_CHECK_AS(ConfigError, text_sources == 1 || !a.images.empty() || !a.images_npy.empty(),
                "daug embed: nothing to embed; give images and/or texts\n", kUsage);
  return a;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  DAUG_CHECK_AS(DataError, f.good(), "daug embed: cannot read --texts-file '", path, "'");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  DAUG_CHECK_AS(DataError, !lines.empty(), "daug embed: --texts-file '", path, "' holds no text lines");
  return lines;
}

at::Tensor normalize_rows(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

}  // namespace

int EmbedCommand::run(const std::vector<std::string>& argv, CommandContext& ctx) {
  const EmbedArgs a = parse(argv);
  if (a.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const std::filesystem::path out = a.out;
  std::filesystem::create_directories(out);

  BuildContext& build = ctx.build(a.config, a.sets, out);
  auto bb = build.component<Backbone>(a.backbone);
  bb->set_training(false);
  at::NoGradGuard no_grad;
  const int64_t S = bb->image_size();
  auto& comm = communicator();
  const int rank = comm.rank(), world = comm.world_size();
  const at::Device device(build.device());

  // Encodes the rows [0, m) of this rank's shard in batches; `encode(lo, hi)` takes shard positions.
  auto run_batches = [&](int64_t m, const std::function<at::Tensor(int64_t, int64_t)>& encode) {
    std::vector<at::Tensor> parts;
    for (int64_t b = 0; b < m; b += a.batch_size) parts.push_back(encode(b, std::min(m, b + a.batch_size)).cpu());
    return at::cat(parts, 0).to(at::kFloat).contiguous();
  };
  // All n rows in order (rank 0 writes them); a single process embeds every item and gathers nothing.
  auto gather = [&](const at::Tensor& local, int64_t n, const char* what) {
    return clip::gather_shards(local, n, device, fmt::format("embed: gather the {} embeddings", what));
  };
  auto rows_of = [&](const at::Tensor& t, const std::vector<int64_t>& shard) {
    return world == 1 ? t : t.index_select(0, at::tensor(shard, at::kLong).to(t.device()));
  };

  int64_t n_images = 0, n_texts = 0;
  if (!a.images.empty() || !a.images_npy.empty()) {
    at::Tensor emb;
    if (!a.images.empty()) {
      n_images = static_cast<int64_t>(a.images.size());
      const std::vector<int64_t> shard = clip::embed_shard(n_images, rank, world);
      const auto m = static_cast<int64_t>(shard.size());
      // Worker threads decode and preprocess the next batches while this one is encoded.
      train::PrefetchJob job;
      job.batches = (m + a.batch_size - 1) / a.batch_size;
      job.indices = [&](int64_t k) {
        std::vector<int64_t> idx;
        for (int64_t i = k * a.batch_size; i < std::min(m, (k + 1) * a.batch_size); ++i)
          idx.push_back(shard[static_cast<size_t>(i)]);
        return idx;
      };
      job.item = [&](int64_t i) {
        return std::vector<at::Tensor>{clip::preprocess_pixels(data::load_rgb(a.images[static_cast<size_t>(i)]), S)};
      };
      train::Prefetcher loader(std::move(job), {a.workers, 2});
      emb = run_batches(m, [&](int64_t, int64_t) { return bb->encode_image(loader.next().parts[0]); });
    } else {
      at::Tensor px = data::load_npy(a.images_npy);
      DAUG_CHECK_AS(DataError,
                    px.dim() == 4 && px.size(1) == 3 && px.size(2) == S && px.size(3) == S &&
                        at::isFloatingType(px.scalar_type()),
                    "daug embed: --images-npy '", a.images_npy, "' must hold preprocessed float pixels [N,3,", S, ",",
                    S, "] for [", a.backbone, "].image_size = ", S, ", but holds ", px.scalar_type(), " ",
                    px.sizes());
      n_images = px.size(0);
      DAUG_CHECK_AS(DataError, n_images > 0, "daug embed: --images-npy '", a.images_npy, "' holds no images (shape ",
                    px.sizes(), "); expected at least one [3,", S, ",", S, "] image");
      px = rows_of(px.to(at::kFloat), clip::embed_shard(n_images, rank, world));
      emb = run_batches(px.size(0), [&](int64_t lo, int64_t hi) { return bb->encode_image(px.slice(0, lo, hi)); });
    }
    emb = gather(emb, n_images, "image");
    if (comm.is_main()) {
      data::save_npy(out / "image_embeds.npy", emb);
      data::save_npy(out / "image_embeds_norm.npy", normalize_rows(emb));
    }
  }
  if (!a.texts.empty() || !a.texts_file.empty() || !a.tokens_npy.empty()) {
    at::Tensor tokens;
    if (!a.tokens_npy.empty()) {
      tokens = data::load_npy(a.tokens_npy);
      DAUG_CHECK_AS(DataError,
                    tokens.dim() == 2 && tokens.size(1) <= bb->context_length() &&
                        (tokens.scalar_type() == at::kLong || tokens.scalar_type() == at::kInt),
                    "daug embed: --tokens-npy '", a.tokens_npy, "' must hold int64/int32 ids [N,L] with L <= ",
                    bb->context_length(), ", but holds ", tokens.scalar_type(), " ", tokens.sizes());
      tokens = tokens.to(at::kLong);
    } else {
      tokens = bb->tokenize(a.texts.empty() ? read_lines(a.texts_file) : a.texts);
    }
    n_texts = tokens.size(0);
    DAUG_CHECK_AS(DataError, n_texts > 0, "daug embed: no texts to embed (",
                  a.tokens_npy.empty() ? "--texts/--texts-file" : "--tokens-npy '" + a.tokens_npy + "'",
                  " gave none); expected at least one");
    const at::Tensor mine = rows_of(tokens, clip::embed_shard(n_texts, rank, world));
    at::Tensor emb = gather(
        run_batches(mine.size(0), [&](int64_t lo, int64_t hi) { return bb->encode_text(mine.slice(0, lo, hi)); }),
        n_texts, "text");
    if (comm.is_main()) {
      data::save_npy(out / "tokens.npy", tokens.contiguous());
      data::save_npy(out / "text_embeds.npy", emb);
      data::save_npy(out / "text_embeds_norm.npy", normalize_rows(emb));
    }
  }
  if (!comm.is_main()) return 0;  // rank 0 wrote every file
  fmt::print("embedded {} image(s) and {} text(s) with [{}] {} -> {}\n", n_images, n_texts, a.backbone,
             bb->describe(), out.string());
  return 0;
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Command, "embed", daug::plugins::EmbedCommand,
                     "image/text embeddings of a configured backbone as .npy (CLIP preprocessing)")
