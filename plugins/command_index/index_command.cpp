// `daug index build` / `daug index info`.
//
//   daug index build CONFIG [--set k=v ...] [--checkpoint FILE] [--source TABLE] [--split S]
//                    [--dtype float32|float16] [--table index] --out DIR
//
// Runs the config's `index` stage (table --table; created with plugin = "index" and the stage's defaults when the
// config has none) and every upstream stage it needs (training, heatmaps: cached ones are reused, killed ones
// resume), then copies the index files into DIR with `config.toml`, the effective configuration of that run, so
// `daug query --index DIR` can rebuild the model. The flags are --set overrides of the index table: --source T is
// `index.data = "T"`, --checkpoint F is `index.checkpoint = "F"` (a train_clip checkpoint.safetensors or any file
// the [backbone] plugin reads through train_clip's format), --split and --dtype likewise.
#include "index_command.h"

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/config_view.h>
#include <daug/error.h>
#include <daug/register.h>
#include <daug/retrieval/index_files.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace daug::plugins {
namespace {

constexpr const char* kUsage =
    "usage: daug index build CONFIG [--set k=v ...] [--checkpoint FILE] [--source TABLE] [--split S]\n"
    "                        [--dtype float32|float16] [--table index] --out DIR\n"
    "       daug index info DIR\n"
    "build: embeds the images of a Source with the config's trained CLIP (running the stages it needs) and writes\n"
    "       index.json, embeddings.npy, items.csv, class_embeddings.npy and config.toml into DIR.\n"
    "info:  prints what an index holds.\n";

struct BuildArgs {
  std::string config, checkpoint, source, split, dtype, table = "index", out;
  std::vector<std::string> sets;
  bool help = false;
};

BuildArgs parse_build(const std::vector<std::string>& args) {
  BuildArgs a;
  po::options_description desc("daug index build options");
  desc.add_options()("help,h", "show help")("config", po::value(&a.config), "experiment config (TOML)")(
      "set", po::value(&a.sets)->composing(), "override, e.g. --set index.batch_size=32")(
      "checkpoint", po::value(&a.checkpoint), "fine-tuned weights (train_clip checkpoint.safetensors)")(
      "source", po::value(&a.source), "Source table whose images are indexed")("split", po::value(&a.split),
                                                                               "train, val, test, all or a '+' join")(
      "dtype", po::value(&a.dtype), "float32 or float16")("table", po::value(&a.table), "the index stage's table")(
      "out", po::value(&a.out), "output directory");
  po::positional_options_description pos;
  pos.add("config", 1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
    a.help = vm.count("help") > 0;
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("daug index build: {}\n{}", e.what(), kUsage));
  }
  if (a.help) return a;
  DAUG_CHECK_AS(ConfigError, !a.config.empty(), "daug index build: CONFIG is required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, !a.out.empty(), "daug index build: --out DIR is required\n", kUsage);
  DAUG_CHECK_AS(ConfigError, !a.table.empty(), "daug index build: --table must name a config table");
  // Checked before any stage runs: a bad --out found after training would waste the run.
  DAUG_CHECK_AS(ConfigError, !std::filesystem::exists(a.out) || std::filesystem::is_directory(a.out),
                "daug index build: --out '", a.out, "' exists and is not a directory; expected a directory (new or "
                "an earlier index, whose files are replaced)");
  if (!a.checkpoint.empty())
    DAUG_CHECK_AS(ConfigError, std::filesystem::is_regular_file(a.checkpoint), "daug index build: --checkpoint '",
                  a.checkpoint, "' is not a file");
  return a;
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  DAUG_CHECK_AS(DataError, in.good(), "cannot read ", file.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int build(const std::vector<std::string>& args, CommandContext& ctx) {
  const BuildArgs a = parse_build(args);
  if (a.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  std::vector<std::string> overrides = a.sets;
  // A config without the table gets one with the stage's defaults (tables data, backbone, clip_composer, heatmaps,
  // train_clip: those of configs/clip/stages.toml).
  const ConfigView table = ctx.build(a.config, a.sets, "").config(a.table);
  const auto keys = table.exists() ? table.keys() : std::vector<std::string>{};
  if (std::find(keys.begin(), keys.end(), "plugin") == keys.end())
    overrides.push_back(fmt::format("{}.plugin=\"index\"", a.table));
  if (!a.source.empty()) overrides.push_back(fmt::format("{}.data={}", a.table, retrieval::toml_string(a.source)));
  if (!a.checkpoint.empty())
    overrides.push_back(
        fmt::format("{}.checkpoint={}", a.table,
                    retrieval::toml_string(std::filesystem::absolute(a.checkpoint).lexically_normal().string())));
  if (!a.split.empty()) overrides.push_back(fmt::format("{}.split={}", a.table, retrieval::toml_string(a.split)));
  if (!a.dtype.empty()) overrides.push_back(fmt::format("{}.dtype={}", a.table, retrieval::toml_string(a.dtype)));

  const CommandContext::StageRun r = ctx.run_stages(a.config, overrides, {a.table});
  if (!communicator().is_main()) return 0;  // rank 0 copies the index
  auto it = r.stage_dirs.find(a.table);
  DAUG_CHECK(it != r.stage_dirs.end(), "daug index build: stage [", a.table, "] did not run");
  const std::filesystem::path stage = it->second, out = a.out;
  std::filesystem::create_directories(out);
  // Each file is written whole (temporary + rename) and index.json last: a reader never sees a mix of two builds'
  // manifests and rows without index.json saying so.
  for (const char* f : {retrieval::kEmbeddingsFile, retrieval::kItemsFile, retrieval::kClassEmbeddingsFile})
    write_file_atomic(out / f, read_text(stage / f));
  write_file_atomic(out / retrieval::kConfigFile,
                    "# The effective configuration of the `daug index build` run that wrote this index (" +
                        r.run_dir.string() + "): every option of every table it built.\n" +
                        read_text(r.run_dir / "effective.toml"));
  write_file_atomic(out / retrieval::kManifestFile, read_text(stage / retrieval::kManifestFile));
  const auto m = retrieval::IndexManifest::read(out / retrieval::kManifestFile);
  fmt::print("index of {} images ({}-d {}) from [{}] '{}' -> {}\nmodel fingerprint {}\n", m.count, m.dim, m.dtype,
             m.source_table, m.split, out.string(), m.model_fingerprint);
  return 0;
}

int info(const std::vector<std::string>& args) {
  DAUG_CHECK_AS(ConfigError, args.size() == 2, "daug index info: expected one DIR, but got ", args.size() - 1,
                " arguments\n", kUsage);
  const auto x = retrieval::load_index(args[1]);
  const auto& m = x.manifest;
  fmt::print("index {}\n  {} images, {}-d {} embeddings (L2-normalised)\n  source [{}] {} split '{}'\n", args[1],
             m.count, m.dim, m.dtype, m.source_table, m.source, m.split);
  fmt::print("  model fingerprint {}\n  backbone [{}] {}\n  checkpoint {}{}\n", m.model_fingerprint, m.backbone_table,
             m.backbone, m.checkpoint.empty() ? "(none: the backbone as built)" : m.checkpoint,
             m.checkpoint_step.empty() ? "" : " (step " + m.checkpoint_step + ")");
  fmt::print("  composer {}\n  heatmaps {}\n  preprocessing {}\n", m.composer_table.empty() ? "(none)" : m.composer,
             m.heatmap_maps == 0 ? std::string("(none)")
                                 : fmt::format("{} map(s) from {} ({})", m.heatmap_maps, m.heatmaps_origin,
                                               m.heatmaps_stage.empty() ? "external" : "[" + m.heatmaps_stage + "]"),
             m.preprocessing);
  return 0;
}

}  // namespace

int IndexCommand::run(const std::vector<std::string>& args, CommandContext& ctx) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    fmt::print("{}", kUsage);
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "build") return build(rest, ctx);
  if (args[0] == "info") return info(args);
  throw ConfigError(fmt::format("daug index: unknown sub-command '{}'; expected build or info\n{}", args[0], kUsage));
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Command, "index", daug::plugins::IndexCommand,
                     "build a retrieval index of a Source's images with a trained model (`daug index build`)")
