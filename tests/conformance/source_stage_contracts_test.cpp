// Contracts of the data side: Source (split invariants, ids, labels, images) and Stage (a second `daug run` of
// the same config is a no-op), plus the coverage checks of the suite itself. The Stage contract goes through the
// `daug` binary, so it does not depend on the Stage C++ API.
#include "conformance.h"

#include <daug/core/config_loader.h>
#include <daug/error.h>

#include <array>
#include <cstdio>
#include <set>

namespace daug::conformance {
namespace {

// ---- Source -------------------------------------------------------------------------------------------------

class SourceContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(SourceContract, SplitsIdsLabelsImages) {
  Built b(GetParam());
  auto s = b.subject<Source>();
  check_source(*s);
}

// ---- Stage --------------------------------------------------------------------------------------------------

struct RunOutput {
  int status = -1;
  std::string text;
};

RunOutput run_daug(const std::filesystem::path& config, const std::filesystem::path& work) {
  const std::string cmd = "OMP_NUM_THREADS=1 DAUG_PLUGIN_PATH='" + std::string(DAUG_TEST_PLUGIN_DIR) + "' '" +
                          std::string(DAUG_CLI) + "' run '" + config.string() + "' --set 'run.runs_dir=\"" +
                          (work / "runs").string() + "\"' --set 'run.cache_dir=\"" + (work / "cache").string() +
                          "\"' 2>&1";
  RunOutput out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.text.append(buf.data(), n);
  out.status = ::pclose(p);
  return out;
}

class StageContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(StageContract, SecondRunIsNoOp) {
  const auto& c = GetParam();
  const auto file = config_for(c);
  ASSERT_TRUE(std::filesystem::is_regular_file(file)) << "no conformance config " << file;
  auto doc = core::load_config(file);
  ConfigView run(doc, "run");
  ASSERT_TRUE(run.exists() && run.has("stages")) << file << " must be a run config with [run].stages";
  const auto stages = run.get_string_array("stages");
  bool tested = false;
  for (const auto& s : stages) {
    ConfigView t(doc, s);
    tested = tested || (t.exists() && t.has("plugin") && t.get_string("plugin") == c.name);
  }
  ASSERT_TRUE(tested) << file << ": [run].stages must include a stage of plugin '" << c.name << "'";

  daug::testing::TempDir work;
  const RunOutput first = run_daug(file, work.path());
  ASSERT_EQ(first.status, 0) << "first `daug run` failed:\n" << first.text;
  const Snapshot before = snapshot(work / "cache");
  ASSERT_FALSE(before.empty()) << "the first run wrote nothing under " << (work / "cache");
  const RunOutput second = run_daug(file, work.path());
  ASSERT_EQ(second.status, 0) << "second `daug run` failed:\n" << second.text;
  check_second_run_noop(before, snapshot(work / "cache"), second.text, stages);
  if (HasFailure()) ADD_FAILURE() << "output of the second run:\n" << second.text;
}

// ---- Command ------------------------------------------------------------------------------------------------

/// Commands must not need the core for --help or for a bad flag; building a config through it is an error here.
class NoBuildContext final : public CommandContext {
 public:
  BuildContext& build(const std::filesystem::path& config, const std::vector<std::string>&,
                      const std::filesystem::path&) override {
    throw Error("conformance: --help and a bad flag must not load a config (asked for " + config.string() + ")");
  }
  StageRun run_stages(const std::filesystem::path& config, const std::vector<std::string>&,
                      const std::vector<std::string>&) override {
    throw Error("conformance: --help and a bad flag must not run stages (asked for " + config.string() + ")");
  }
};

class CommandContract : public ::testing::TestWithParam<PluginCase> {};

TEST_P(CommandContract, HelpReturnsZeroAndBadFlagIsConfigError) {
  Built b(GetParam());
  auto cmd = b.subject<Command>();
  NoBuildContext ctx;
  ::testing::internal::CaptureStdout();
  int rc = -1;
  try {
    rc = cmd->run({"--help"}, ctx);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "--help threw: " << e.what();
  }
  const std::string help = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << "--help must return 0";
  EXPECT_FALSE(help.empty()) << "--help must print usage to stdout";
  EXPECT_THROW(cmd->run({"--definitely-not-a-flag"}, ctx), ConfigError) << "a bad flag must be a daug::ConfigError";
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Conformance, CommandContract, ::testing::ValuesIn(plugins_of(Command::kInterface)),
                         plugin_param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CommandContract);
INSTANTIATE_TEST_SUITE_P(Conformance, SourceContract, ::testing::ValuesIn(plugins_of(Source::kInterface)),
                         plugin_param_name);
INSTANTIATE_TEST_SUITE_P(Conformance, StageContract, ::testing::ValuesIn(plugins_of(Stage::kInterface)),
                         plugin_param_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SourceContract);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StageContract);

}  // namespace daug::conformance
