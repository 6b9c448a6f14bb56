// `daug`: the command-line entry point. Parses global options, dispatches to a core sub-command or else to a
// Command plugin of that name (plugin_commands.h), and turns every error into one message and a non-zero exit code.
#include "command.h"
#include "plugin_commands.h"

#include <daug/api.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

namespace po = boost::program_options;

namespace daug::cli {
std::vector<Command>& commands() {
  static std::vector<Command> c;
  return c;
}
Globals& globals() {
  static Globals g;
  return g;
}
}  // namespace daug::cli

namespace {

daug::core::PluginLoader& loader() {
  static auto* l = [] {  // plugin libraries are never unloaded (plugin_loader.h)
    const auto& extra = daug::cli::globals().plugin_paths;
    auto* p = new daug::core::PluginLoader(std::vector<std::filesystem::path>(extra.begin(), extra.end()));
    p->load_all();
    return p;
  }();
  return *l;
}

std::string usage() {
  auto cmds = daug::cli::commands();
  std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return std::string(a.name) < b.name; });
  std::string s = fmt::format(
      "daug {} — diffusion-based channel augmentation for chest X-ray retrieval and classification\n\n"
      "usage: daug [--plugin-path DIR]... [--log-level debug|info|warn|error] <command> [<args>]\n\ncommands:\n",
      DAUG_VERSION_STRING);
  for (const auto& c : cmds) s += fmt::format("  {:<20} {}\n", c.name, c.summary);
  s += "\nplugin commands (Command plugins):\n";
  try {
    const auto plugin_cmds = daug::cli::plugin_commands(loader());
    for (const auto& [name, summary] : plugin_cmds) s += fmt::format("  {:<20} {}\n", name, summary);
    if (plugin_cmds.empty()) s += "  (none found; see 'daug plugins list')\n";
  } catch (const std::exception& e) {
    s += fmt::format("  (unavailable: {})\n", e.what());
  }
  s += "\nRun 'daug <command> --help' for a command's options.\n";
  return s;
}

int version_cmd(const std::vector<std::string>&) {
  fmt::print("daug {}\nSDK ABI version {}\nLibTorch {} ({})\n", DAUG_VERSION_STRING, DAUG_SDK_ABI_VERSION, TORCH_VERSION,
             daug::core::built_libtorch().cuda ? "CUDA" : "CPU-only");
  const auto loaded = daug::core::parse_torch_config(at::show_config());
  fmt::print("LibTorch loaded: {} ({}){}\n", loaded.version.empty() ? "?" : loaded.version,
             loaded.cuda ? "CUDA" : "CPU-only", at::hasCUDA() ? ", CUDA available" : "");
  daug::core::check_loaded_libtorch();  // a mismatch is an error here too (exit code 1)
  return 0;
}
DAUG_CLI_COMMAND("version", "print the daug, SDK ABI and LibTorch versions", version_cmd);

// Under a distributed launch every rank's last words reach the same terminal: each says which rank it is.
std::string rank_prefix() {
  const char* world = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  if (world && rank && std::atoi(world) > 1) return fmt::format("[rank {}] ", rank);
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description global("global options");
  global.add_options()("help,h", "show help")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "extra plugin directory (repeatable)")(
      "log-level", po::value<std::string>()->default_value("info"), "debug, info, warn or error")(
      "command", po::value<std::string>(), "command")("args", po::value<std::vector<std::string>>(), "arguments");
  po::positional_options_description pos;
  pos.add("command", 1).add("args", -1);
  try {
    auto parsed = po::command_line_parser(argc, argv).options(global).positional(pos).allow_unregistered().run();
    po::variables_map vm;
    po::store(parsed, vm);
    po::notify(vm);
    const std::string level = vm["log-level"].as<std::string>();
    if (level == "debug") daug::log::set_level(daug::log::Level::debug);
    else if (level == "warn") daug::log::set_level(daug::log::Level::warn);
    else if (level == "error") daug::log::set_level(daug::log::Level::error);
    else if (level != "info") throw daug::ConfigError("--log-level must be debug, info, warn or error, but got '" + level + "'");
    if (!vm["log-level"].defaulted()) daug::cli::globals().log_level = level;
    if (vm.count("plugin-path")) daug::cli::globals().plugin_paths = vm["plugin-path"].as<std::vector<std::string>>();
    if (!vm.count("command")) {
      std::cout << usage();
      return vm.count("help") ? 0 : 2;
    }
    std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
    const std::string cmd = rest.front();
    rest.erase(rest.begin());
    if (vm.count("help") && std::find(rest.begin(), rest.end(), "--help") == rest.end()) rest.push_back("--help");
    for (const auto& c : daug::cli::commands())
      if (cmd == c.name) return c.run(rest);
    if (auto code = daug::cli::run_plugin_command(loader(), cmd, rest)) return *code;
    std::cerr << fmt::format("daug: unknown command '{}'\n\n", cmd) << usage();
    return 2;
  } catch (const po::error& e) {
    std::cerr << rank_prefix() << "daug: " << e.what() << "\n";
    return 2;
  } catch (const daug::ConfigError& e) {
    std::cerr << rank_prefix() << "daug: configuration error: " << e.what() << "\n";
    return 1;
  } catch (const daug::DataError& e) {
    std::cerr << rank_prefix() << "daug: data error: " << e.what() << "\n";
    return 1;
  } catch (const daug::PluginError& e) {
    std::cerr << rank_prefix() << "daug: plugin error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << rank_prefix() << "daug: error: " << e.what() << "\n";
    return 1;
  }
}
