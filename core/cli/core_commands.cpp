// daug plugins list|describe, config resolve, run.
#include "command.h"
#include "launch.h"

#include <daug/core/config_loader.h>
#include <daug/core/pipeline.h>
#include <daug/core/plugin_loader.h>
#include <daug/core/sweep.h>
#include <daug/error.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <charconv>
#include <iostream>

namespace po = boost::program_options;

namespace daug::cli {
namespace {

core::PluginLoader make_loader() {
  std::vector<std::filesystem::path> extra(globals().plugin_paths.begin(), globals().plugin_paths.end());
  core::PluginLoader loader(extra);
  loader.load_all();
  return loader;
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& desc,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
  po::notify(vm);
  return vm;
}

int plugins_cmd(const std::vector<std::string>& args) {
  po::options_description desc("daug plugins list | daug plugins describe NAME");
  desc.add_options()("help,h", "show help")("action", po::value<std::string>(), "list or describe")(
      "name", po::value<std::string>(), "plugin name (describe)");
  po::positional_options_description pos;
  pos.add("action", 1).add("name", 1);
  auto vm = parse(args, desc, pos);
  if (vm.count("help") || !vm.count("action")) {
    std::cout << desc;
    return vm.count("help") ? 0 : 2;
  }
  auto loader = make_loader();
  const auto action = vm["action"].as<std::string>();
  if (action == "list") {
    auto all = loader.list();
    fmt::print("{:<16} {:<18} {:<52} {}\n", "INTERFACE", "NAME", "SUMMARY", "LIBRARY");
    for (const auto& p : all) fmt::print("{:<16} {:<18} {:<52} {}\n", p.interface, p.name, p.summary, p.library.string());
    fmt::print("\n{} plugin(s)\n", all.size());
    return 0;
  }
  if (action == "describe") {
    if (!vm.count("name")) throw ConfigError("daug plugins describe: expected a plugin NAME (see 'daug plugins list')");
    const auto& p = loader.find_any(vm["name"].as<std::string>());
    fmt::print("{} ({} plugin)\n  {}\n  library: {}\n\noptions (TOML keys of its table, besides plugin = \"{}\"):\n",
               p.name, p.interface, p.summary, p.library.string(), p.name);
    for (const auto& o : p.manifest->describe()) {
      fmt::print("  {} : {} = {}\n      {}{}\n", o.key, o.type, o.default_value, o.doc,
                 o.constraint.empty() ? "" : fmt::format(" [{}]", o.constraint));
    }
    return 0;
  }
  throw ConfigError(fmt::format("daug plugins: unknown action '{}'; expected list or describe", action));
}
DAUG_CLI_COMMAND("plugins", "list plugins, or describe one plugin's options", plugins_cmd);

int config_cmd(const std::vector<std::string>& args) {
  po::options_description desc("daug config resolve FILE [--set key=value ...] [--sources]");
  desc.add_options()("help,h", "show help")("action", po::value<std::string>(), "resolve")(
      "file", po::value<std::string>(), "config file")("set", po::value<std::vector<std::string>>()->composing(),
                                                      "override, e.g. --set guidance.scale=5")(
      "sources", "annotate every key with the file:line it came from");
  po::positional_options_description pos;
  pos.add("action", 1).add("file", 1);
  auto vm = parse(args, desc, pos);
  if (vm.count("help") || !vm.count("action") || !vm.count("file")) {
    std::cout << desc;
    return vm.count("help") ? 0 : 2;
  }
  if (vm["action"].as<std::string>() != "resolve")
    throw ConfigError("daug config: unknown action '" + vm["action"].as<std::string>() + "'; expected resolve");
  std::vector<std::string> sets = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  auto doc = core::load_config(vm["file"].as<std::string>(), sets);
  std::cout << core::resolved_toml(*doc, vm.count("sources") > 0);
  return 0;
}
DAUG_CLI_COMMAND("config", "print a config with its imports and --set overrides resolved", config_cmd);

int run_cmd(const std::vector<std::string>& args_in) {
  // `daug run --nproc N ...` is `daug launch --nproc N -- run ...`: the launcher's options are taken out here.
  std::vector<std::string> args = args_in;
  const LaunchOptions launch_opts = take_launch_options(args);
  po::options_description desc(
      "daug run FILE [--set key=value ...] [--stage NAME ...] [--shard k/N] [--strict] [--dry-run] [--nproc N "
      "[--master-port P] [--timeout S] [--grace S]]");
  desc.add_options()("help,h", "show help")("file", po::value<std::string>(), "config file")(
      "set", po::value<std::vector<std::string>>()->composing(), "override, e.g. --set guidance.scale=5")(
      "stage", po::value<std::vector<std::string>>()->composing(), "run only these stages (others must be cached)")(
      "shard", po::value<std::string>(), "k/N: process every N-th item starting at k (heatmaps)")(
      "strict", "fail on missing data instead of skipping and reporting it")(
      "dry-run", "check the whole configuration and show which stages would run or are cached; run nothing");
  po::options_description dist("distributed launch on this machine (see 'daug launch --help')");
  dist.add_options()("nproc", po::value<int>(), "run on N local ranks (processes): daug launch --nproc N -- run ...")(
      "master-port", po::value<int>(), "with --nproc: rendezvous port (default: a free one)")(
      "timeout", po::value<double>(), "with --nproc: collective/rendezvous timeout in seconds (DAUG_DIST_TIMEOUT_S)")(
      "grace", po::value<double>(), "with --nproc: seconds the other ranks get after one failed");
  desc.add(dist);
  po::positional_options_description pos;
  pos.add("file", 1);
  auto vm = parse(args, desc, pos);
  if (vm.count("help") || !vm.count("file")) {
    std::cout << desc;
    return vm.count("help") ? 0 : 2;
  }
  if (launch_opts.nproc > 0) {
    std::vector<std::string> command{"run"};
    command.insert(command.end(), args.begin(), args.end());
    return launch(launch_opts, command);
  }
  if (launch_opts.given)
    throw ConfigError("--master-port, --timeout and --grace go with --nproc N (daug run --nproc N ...)");
  std::vector<std::string> sets = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  core::RunOptions opts;
  if (vm.count("stage")) opts.only = vm["stage"].as<std::vector<std::string>>();
  opts.strict = vm.count("strict") > 0;
  opts.dry_run = vm.count("dry-run") > 0;
  if (vm.count("shard")) {
    const auto s = vm["shard"].as<std::string>();
    // Whole-string parse: std::stoi read "1/2x" as 1/2 and "-1/2" as a negative shard.
    auto whole_int = [](const std::string& t, int& out) {
      const char* end = t.data() + t.size();
      auto [p, ec] = std::from_chars(t.data(), end, out);
      return ec == std::errc() && p == end && !t.empty();
    };
    const auto slash = s.find('/');
    int k = -1, n = 0;
    if (slash == std::string::npos || !whole_int(s.substr(0, slash), k) || !whole_int(s.substr(slash + 1), n) ||
        n < 1 || k < 0 || k >= n)
      throw ConfigError("--shard must be k/N with integers 0 <= k < N (e.g. 0/4), but got '" + s + "'");
    opts.shard_index = k;
    opts.shard_count = n;
  }
  const std::string file = vm["file"].as<std::string>();
  auto doc = core::load_config(file, sets);
  auto loader = make_loader();
  if (doc->root.get("sweep")) {  // a sweep: run every variant and write one comparison table
    auto variants = core::expand_sweep(*doc, std::filesystem::path(file).stem().string());
    for (auto& v : variants) v.overrides.insert(v.overrides.begin(), sets.begin(), sets.end());
    auto out = std::filesystem::path("runs") / ("sweep_" + std::filesystem::path(file).stem().string());
    const std::string table = core::run_variants(loader, variants, out, opts, {});
    if (table.empty()) return 0;  // a rank > 0 of a distributed launch: rank 0 reports
    std::cout << table;
    std::cout << fmt::format("comparison: {}/comparison.{{md,csv,json}}\n", out.string());
    return 0;
  }
  auto result = core::run_pipeline(loader, doc, sets, opts);
  if (!result.main_rank) return 0;  // rank 0 reports for every rank
  if (!result.summary.empty()) std::cout << "\n" << result.summary;
  if (opts.dry_run) std::cout << "dry run: the configuration is valid; nothing was run or written\n";
  else std::cout << fmt::format("run directory: {}\n", result.run_dir.string());
  return 0;
}
DAUG_CLI_COMMAND("run", "run the stages a config lists (cached, resumable)", run_cmd);

int ablate_cmd(const std::vector<std::string>& args) {
  po::options_description desc(
      "daug ablate CONFIG_OR_DIR... [--set key=value ...] [--out DIR] [--columns SUBSTRING ...] [--bootstrap N]\n"
      "            [--bootstrap-seed S]\n"
      "Runs each config (a directory means every *.toml in it, sorted) and writes one comparison table; stages that\n"
      "write paired_items.json also get each variant's difference from the first with a paired bootstrap 95% CI");
  desc.add_options()("help,h", "show help")("configs", po::value<std::vector<std::string>>(), "config files or dirs")(
      "set", po::value<std::vector<std::string>>()->composing(), "override applied to every variant")(
      "out", po::value<std::string>(), "output directory (default runs/ablation_<first name>)")(
      "columns", po::value<std::vector<std::string>>()->composing(),
      "keep only metric columns containing one of these substrings")(
      "bootstrap", po::value<std::string>()->default_value("1000"),
      "paired bootstrap resamples of the test items for the 95% CIs (0 = no CI table)")(
      "bootstrap-seed", po::value<std::string>()->default_value("0"), "seed of the bootstrap resamples");
  po::positional_options_description pos;
  pos.add("configs", -1);
  auto vm = parse(args, desc, pos);
  if (vm.count("help") || !vm.count("configs")) {
    std::cout << desc;
    return vm.count("help") ? 0 : 2;
  }
  core::BootstrapOptions bootstrap;
  {
    // Whole-string parses: "12x" or "-1" are errors, not 12 or 2^64 − 1.
    const auto draws = vm["bootstrap"].as<std::string>(), seed = vm["bootstrap-seed"].as<std::string>();
    auto [p, ec] = std::from_chars(draws.data(), draws.data() + draws.size(), bootstrap.draws);
    if (ec != std::errc() || p != draws.data() + draws.size() || draws.empty() || bootstrap.draws < 0 ||
        bootstrap.draws > 1000000)
      throw ConfigError("--bootstrap must be an integer in [0, 1000000] (0 = no CI), but got '" + draws + "'");
    auto [q, ec2] = std::from_chars(seed.data(), seed.data() + seed.size(), bootstrap.seed);
    if (ec2 != std::errc() || q != seed.data() + seed.size() || seed.empty())
      throw ConfigError("--bootstrap-seed must be a non-negative integer below 2^64, but got '" + seed + "'");
  }
  std::vector<std::string> sets = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  std::vector<std::filesystem::path> files;
  for (const auto& c : vm["configs"].as<std::vector<std::string>>()) {
    if (std::filesystem::is_directory(c)) {
      std::vector<std::filesystem::path> in_dir;
      for (const auto& e : std::filesystem::directory_iterator(c))
        if (e.path().extension() == ".toml") in_dir.push_back(e.path());
      std::sort(in_dir.begin(), in_dir.end());
      if (in_dir.empty()) throw ConfigError("daug ablate: directory '" + c + "' holds no .toml files");
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.emplace_back(c);
    }
  }
  auto loader = make_loader();
  std::vector<core::Variant> variants;
  for (const auto& f : files) {  // load all first: a broken config fails before anything runs
    auto doc = core::load_config(f, sets);
    for (auto& v : core::expand_sweep(*doc, f.stem().string())) {
      if (v.name != f.stem().string()) v.name = f.stem().string() + "[" + v.name + "]";
      v.overrides.insert(v.overrides.begin(), sets.begin(), sets.end());
      variants.push_back(std::move(v));
    }
  }
  auto out = vm.count("out") ? std::filesystem::path(vm["out"].as<std::string>())
                             : std::filesystem::path("runs") / ("ablation_" + files.front().parent_path().filename().string());
  std::vector<std::string> cols = vm.count("columns") ? vm["columns"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const std::string table = core::run_variants(loader, variants, out, core::RunOptions{}, cols, bootstrap);
  if (table.empty()) return 0;  // a rank > 0 of a distributed launch: rank 0 reports
  std::cout << table;
  std::cout << fmt::format("comparison: {}/comparison.{{md,csv,json}}\n", out.string());
  return 0;
}
DAUG_CLI_COMMAND("ablate", "run several configs (an ablation set) and write one comparison table", ablate_cmd);

}  // namespace
}  // namespace daug::cli
