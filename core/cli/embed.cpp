// `daug embed`: image and text embeddings from a configured Backbone, written as .npy files.
//
//   daug embed CONFIG [--set k=v ...] [--backbone TABLE] [--images a.png b.png ... | --images-npy x.npy]
//                     [--texts "..." ... | --texts-file f.txt | --tokens-npy ids.npy] [--batch-size N] --out DIR
//
// Images are preprocessed as DAug's released code does (CLIPImageProcessor(size=[S,S], do_center_crop=False)):
// decode to RGB (gray replicated), direct bicubic resize to S×S (aspect not kept), 8-bit rounding as PIL,
// rescale to [0,1], normalise with CLIP's mean/std. --images-npy takes already preprocessed float pixels
// [N,3,S,S]. Outputs in --out: image_embeds.npy, image_embeds_norm.npy (L2-normalised rows), text_embeds.npy,
// text_embeds_norm.npy and tokens.npy (int64 ids actually encoded).
#include "command.h"

#include <daug/backbone.h>
#include <daug/core/config_loader.h>
#include <daug/core/experiment.h>
#include <daug/core/plugin_loader.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace daug::cli {
namespace {

constexpr const char* kUsage =
    "usage: daug embed CONFIG [--set k=v ...] [--backbone TABLE] [--images a.png b.png ... | --images-npy x.npy]\n"
    "                  [--texts \"...\" ... | --texts-file f.txt | --tokens-npy ids.npy] [--batch-size N] --out DIR\n"
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
};

EmbedArgs parse(const std::vector<std::string>& args) {
  EmbedArgs a;
  auto value = [&](size_t& i) -> const std::string& {
    DAUG_CHECK_AS(ConfigError, i + 1 < args.size(), "daug embed: ", args[i], " needs a value\n", kUsage);
    return args[++i];
  };
  auto values = [&](size_t& i, std::vector<std::string>& into) {
    const std::string flag = args[i];
    while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) into.push_back(args[++i]);
    DAUG_CHECK_AS(ConfigError, !into.empty(), "daug embed: ", flag, " needs at least one value\n", kUsage);
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& s = args[i];
    if (s == "--set") a.sets.push_back(value(i));
    else if (s == "--backbone") a.backbone = value(i);
    else if (s == "--images") values(i, a.images);
    else if (s == "--images-npy") a.images_npy = value(i);
    else if (s == "--texts") values(i, a.texts);
    else if (s == "--texts-file") a.texts_file = value(i);
    else if (s == "--tokens-npy") a.tokens_npy = value(i);
    else if (s == "--out") a.out = value(i);
    else if (s == "--batch-size") {
      const std::string& v = value(i);
      try {
        size_t used = 0;
        a.batch_size = std::stoll(v, &used);
        DAUG_CHECK_AS(ConfigError, used == v.size(), "");
      } catch (const std::exception&) {
        throw ConfigError("daug embed: --batch-size must be a positive integer, but got '" + v + "'");
      }
      DAUG_CHECK_AS(ConfigError, a.batch_size > 0, "daug embed: --batch-size must be > 0, but got ", a.batch_size);
    } else if (s.rfind("--", 0) == 0) {
      throw ConfigError("daug embed: unknown option '" + s + "'\n" + kUsage);
    } else {
      DAUG_CHECK_AS(ConfigError, a.config.empty(), "daug embed: unexpected argument '", s, "' (CONFIG is already '",
                    a.config, "')\n", kUsage);
      a.config = s;
    }
  }
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

// CLIP preprocessing of one image file as DAug's CLIPImageProcessor(size=[S,S], do_center_crop=False).
at::Tensor preprocess(const std::string& path, int64_t S) {
  at::Tensor rgb = data::load_rgb(path);                       // [3,H,W] in [0,1]
  at::Tensor x = data::resize(rgb, S, S, data::Filter::bicubic);  // direct resize, aspect not kept
  x = (x * 255.0).round().clamp(0, 255) / 255.0;              // PIL resizes 8-bit images
  const at::Tensor mean = at::tensor({0.48145466f, 0.4578275f, 0.40821073f}).view({3, 1, 1});
  const at::Tensor std = at::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({3, 1, 1});
  return (x - mean) / std;
}

at::Tensor normalize_rows(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

int run_embed(const std::vector<std::string>& argv) {
  for (const auto& s : argv)
    if (s == "--help" || s == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
  const EmbedArgs a = parse(argv);
  const std::filesystem::path out = a.out;
  std::filesystem::create_directories(out);

  auto doc = core::load_config(a.config, a.sets);
  core::PluginLoader loader(std::vector<std::filesystem::path>(globals().plugin_paths.begin(),
                                                              globals().plugin_paths.end()));
  loader.load_all();
  core::Experiment exp(loader, doc, out);
  auto bb = exp.component<Backbone>(a.backbone);
  bb->set_training(false);
  at::NoGradGuard no_grad;
  const int64_t S = bb->image_size();

  auto run_batches = [&](int64_t n, const std::function<at::Tensor(int64_t, int64_t)>& encode) {
    std::vector<at::Tensor> parts;
    for (int64_t b = 0; b < n; b += a.batch_size) parts.push_back(encode(b, std::min(n, b + a.batch_size)).cpu());
    return at::cat(parts, 0).to(at::kFloat).contiguous();
  };

  int64_t n_images = 0, n_texts = 0;
  if (!a.images.empty() || !a.images_npy.empty()) {
    at::Tensor emb;
    if (!a.images.empty()) {
      n_images = static_cast<int64_t>(a.images.size());
      emb = run_batches(n_images, [&](int64_t lo, int64_t hi) {
        std::vector<at::Tensor> px;
        for (int64_t i = lo; i < hi; ++i) px.push_back(preprocess(a.images[static_cast<size_t>(i)], S));
        return bb->encode_image(at::stack(px));
      });
    } else {
      at::Tensor px = data::load_npy(a.images_npy);
      DAUG_CHECK_AS(DataError,
                    px.dim() == 4 && px.size(1) == 3 && px.size(2) == S && px.size(3) == S &&
                        at::isFloatingType(px.scalar_type()),
                    "daug embed: --images-npy '", a.images_npy, "' must hold preprocessed float pixels [N,3,", S, ",",
                    S, "] for [", a.backbone, "].image_size = ", S, ", but holds ", px.scalar_type(), " ",
                    px.sizes());
      n_images = px.size(0);
      px = px.to(at::kFloat);
      emb = run_batches(n_images, [&](int64_t lo, int64_t hi) { return bb->encode_image(px.slice(0, lo, hi)); });
    }
    data::save_npy(out / "image_embeds.npy", emb);
    data::save_npy(out / "image_embeds_norm.npy", normalize_rows(emb));
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
    at::Tensor emb =
        run_batches(n_texts, [&](int64_t lo, int64_t hi) { return bb->encode_text(tokens.slice(0, lo, hi)); });
    data::save_npy(out / "tokens.npy", tokens.contiguous());
    data::save_npy(out / "text_embeds.npy", emb);
    data::save_npy(out / "text_embeds_norm.npy", normalize_rows(emb));
  }
  fmt::print("embedded {} image(s) and {} text(s) with [{}] {} -> {}\n", n_images, n_texts, a.backbone,
             bb->describe(), out.string());
  return 0;
}

}  // namespace

DAUG_CLI_COMMAND("embed", "image/text embeddings of a configured backbone as .npy (CLIP preprocessing)", run_embed);

}  // namespace daug::cli
