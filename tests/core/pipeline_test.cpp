#include <daug/core/config_loader.h>
#include <daug/core/pipeline.h>
#include <daug/core/plugin_loader.h>

#include "test_support.h"

#include <fstream>

using daug::testing::expect_error_contains;
using daug::testing::TempDir;

namespace {
int count_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  int n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

std::string config(const TempDir& d, const std::string& extra) {
  return "[run]\nname = \"t\"\nstages = [\"first\", \"second\"]\nruns_dir = \"" + (d / "runs").string() +
         "\"\ncache_dir = \"" + (d / "cache").string() + "\"\n" +
         "[first]\nplugin = \"count\"\nvalue = 1\n[second]\nplugin = \"count\"\nvalue = 2\nupstream = \"first\"\n"
         "[scale]\nplugin = \"scale\"\n" + extra;
}
}  // namespace

TEST(Pipeline, RunsStagesCachesAndWritesRunDirectory) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto r1 = daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, {});
  ASSERT_EQ(r1.stage_dirs.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(r1.run_dir / "resolved.toml"));
  EXPECT_TRUE(std::filesystem::exists(r1.run_dir / "plugins.txt"));
  EXPECT_TRUE(std::filesystem::exists(r1.run_dir / "run.log"));
  EXPECT_NE(r1.summary.find("value 21"), std::string::npos) << r1.summary;  // second read first's output
  EXPECT_EQ(count_lines(r1.stage_dirs[0].second / "runs.txt"), 1);

  // Same config: both stages are cache hits.
  auto r2 = daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, {});
  EXPECT_EQ(r2.stage_dirs, r1.stage_dirs);
  EXPECT_EQ(count_lines(r1.stage_dirs[0].second / "runs.txt"), 1);
  EXPECT_EQ(count_lines(r1.stage_dirs[1].second / "runs.txt"), 1);

  // Changing only the downstream stage reuses the upstream output.
  auto r3 = daug::core::run_pipeline(
      loader, daug::core::parse_config(config(d, ""), "p.toml", {"second.value=5"}), {}, {});
  EXPECT_EQ(r3.stage_dirs[0].second, r1.stage_dirs[0].second);
  EXPECT_NE(r3.stage_dirs[1].second, r1.stage_dirs[1].second);

  // Changing a component both depend on invalidates both.
  auto r4 = daug::core::run_pipeline(
      loader, daug::core::parse_config(config(d, ""), "p.toml", {"scale.factor=3.0"}), {}, {});
  EXPECT_NE(r4.stage_dirs[0].second, r1.stage_dirs[0].second);
  EXPECT_NE(r4.stage_dirs[1].second, r1.stage_dirs[1].second);
}

TEST(Pipeline, ConfigErrorsSurfaceBeforeAnyStageRuns) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config(config(d, "") + "", "p.toml", {"second.composer=\"missing\""});
  expect_error_contains([&] { daug::core::run_pipeline(loader, doc, {}, {}); },
                        {"[second]", "from table [missing]"});
  EXPECT_FALSE(std::filesystem::exists(d / "cache")) << "no stage may run before the config is validated";
}

TEST(Pipeline, MissingRunTableOrStagesIsAnError) {
  daug::core::PluginLoader loader;
  expect_error_contains([&] { daug::core::run_pipeline(loader, daug::core::parse_config("[x]\n", "p.toml"), {}, {}); },
                        {"p.toml", "no [run] table"});
  expect_error_contains(
      [&] { daug::core::run_pipeline(loader, daug::core::parse_config("[run]\nstages = []\n", "p.toml"), {}, {}); },
      {"p.toml:2:10", "[run].stages is empty"});
}

TEST(Pipeline, CacheKeyCoversEffectiveOptionsAndHonoursModelUse) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto run = [&](std::vector<std::string> sets) {
    sets.push_back("first.model_use=true");  // [first] uses [scale] as a model; [second] uses all of it
    return daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml", sets), {}, {});
  };
  auto base = run({});
  // A default written out explicitly is the same configuration: same keys.
  auto same = run({"scale.factor=2.0", "scale.mode=\"mul\""});
  EXPECT_EQ(same.stage_dirs, base.stage_dirs);
  // A sampling-only option: the model user keeps its output, the full user re-runs.
  auto sampling = run({"scale.mode=\"add\""});
  EXPECT_EQ(sampling.stage_dirs[0].second, base.stage_dirs[0].second);
  EXPECT_NE(sampling.stage_dirs[1].second, base.stage_dirs[1].second);
  // A runtime option (how it runs, not what it computes): both reuse their outputs.
  auto runtime = run({"scale.threads=4"});
  EXPECT_EQ(runtime.stage_dirs, base.stage_dirs);
  // A model option: both re-run.
  auto model = run({"scale.factor=3.0"});
  EXPECT_NE(model.stage_dirs[0].second, base.stage_dirs[0].second);
  EXPECT_NE(model.stage_dirs[1].second, base.stage_dirs[1].second);
  // effective.toml lists defaults the config never wrote, and each stage directory records its own options.
  std::ifstream in(base.run_dir / "effective.toml");
  std::string eff((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(eff.find("[scale]\nplugin = \"scale\""), std::string::npos) << eff;
  EXPECT_NE(eff.find("mode = 'mul'"), std::string::npos) << eff;
  EXPECT_NE(eff.find("[run]\nname = 't'"), std::string::npos) << eff;
  EXPECT_TRUE(std::filesystem::exists(base.stage_dirs[0].second / "effective.toml"));
}

// [run].precision changes the weights a stage trains and the samples it draws: it enters the key of exactly the
// tables that inherit it (stage_precision() with their own option unset), and their dependents; fp32, written or
// not, keeps the keys of a config without the option.
TEST(Pipeline, RunPrecisionEntersTheCacheKeyOfInheritingStagesOnly) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto run = [&](std::vector<std::string> sets) {
    sets.push_back("second.uses_precision=true");  // [second] inherits [run].precision, [first] does not
    return daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml", sets), {}, {});
  };
  auto base = run({});
  EXPECT_EQ(run({"run.precision=\"fp32\""}).stage_dirs, base.stage_dirs);
  auto bf16 = run({"run.precision=\"bf16\"", "run.allow_emulated_bf16=true"});
  EXPECT_EQ(bf16.stage_dirs[0].second, base.stage_dirs[0].second);
  EXPECT_NE(bf16.stage_dirs[1].second, base.stage_dirs[1].second);
  // The stage's own option decides for it: [run].precision no longer matters to its key.
  auto own = run({"second.precision=\"fp32\""});
  auto own_bf16 = run({"second.precision=\"fp32\"", "run.precision=\"bf16\"", "run.allow_emulated_bf16=true"});
  EXPECT_EQ(own_bf16.stage_dirs, own.stage_dirs);
  // fp16 needs CUDA: named at the key that set it.
  expect_error_contains([&] { run({"second.precision=\"fp16\""}); },
                        {"[second].precision = \"fp16\" needs a CUDA device", "[run].device = \"cpu\""});
  expect_error_contains([&] { run({"run.precision=\"fp8\""}); }, {"precision", "fp8"});
}

TEST(Pipeline, UnusedTableIsAnErrorWithLocationAndSuggestion) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto doc = daug::core::parse_config(config(d, "[scael]\nfactor = 2.0\n"), "p.toml");
  expect_error_contains([&] { daug::core::run_pipeline(loader, doc, {}, {}); },
                        {"p.toml:15:1", "table [scael] is not used", "did you mean [scale]?"});
  auto doc2 = daug::core::parse_config(config(d, ""), "p.toml", {"scael.factor=2.0"});
  expect_error_contains([&] { daug::core::run_pipeline(loader, doc2, {}, {}); },
                        {"--set", "table [scael] is not used", "did you mean [scale]?"});
  EXPECT_FALSE(std::filesystem::exists(d / "cache")) << "no stage may run before the config is validated";
}

TEST(Pipeline, ArtifactsOnlyFromDeclaredUpstreamStages) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  // [second] declares [first] in create() and reads its "value" artifact by name (value.txt).
  auto r = daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, {});
  EXPECT_NE(r.summary.find("value 21"), std::string::npos) << r.summary;
  // Reading a finished stage's artifact without having requested that stage in create() is refused: the cache key
  // would not cover it.
  auto undeclared = daug::core::parse_config(config(d, ""), "p.toml",
                                             {"second.upstream=\"\"", "second.read_undeclared=\"first\""});
  expect_error_contains([&] { daug::core::run_pipeline(loader, undeclared, {}, {}); },
                        {"stage [second] read an artifact of [first] without declaring it"});
  // The same read is fine once [first] is requested in create() (upstream = "first").
  auto declared = daug::core::parse_config(config(d, ""), "p.toml", {"second.read_undeclared=\"first\""});
  EXPECT_NO_THROW(daug::core::run_pipeline(loader, declared, {}, {}));
}

// A config that fails its checks leaves nothing behind: no run directory (it used to be created first and stay
// empty), no stage directory. A dry run writes nothing either.
TEST(Pipeline, RunDirectoryIsCreatedOnlyForAValidConfig) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto bad_key = daug::core::parse_config(config(d, ""), "p.toml", {"first.valu=3"});
  expect_error_contains([&] { daug::core::run_pipeline(loader, bad_key, {}, {}); }, {"unknown key 'valu'"});
  auto unused = daug::core::parse_config(config(d, "[scael]\nfactor = 2.0\n"), "p.toml");
  expect_error_contains([&] { daug::core::run_pipeline(loader, unused, {}, {}); }, {"table [scael] is not used"});
  EXPECT_FALSE(std::filesystem::exists(d / "runs")) << "a failed config check created the runs directory";
  EXPECT_FALSE(std::filesystem::exists(d / "cache"));

  daug::core::RunOptions dry;
  dry.dry_run = true;
  auto r = daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, dry);
  EXPECT_TRUE(r.run_dir.empty());
  EXPECT_EQ(r.stage_dirs.size(), 2u);
  EXPECT_NE(r.summary.find("would run in"), std::string::npos) << r.summary;
  EXPECT_FALSE(std::filesystem::exists(d / "runs")) << "a dry run created a run directory";
  EXPECT_FALSE(std::filesystem::exists(d / "cache"));

  // A valid config: the run directory exists, and its log holds what was logged while the config was checked.
  auto ok = daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, {});
  ASSERT_TRUE(std::filesystem::is_directory(ok.run_dir));
  std::ifstream in(ok.run_dir / "run.log");
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto device_line = log.find("device cpu, seed 0");
  const auto dir_line = log.find("run directory: ");
  EXPECT_NE(device_line, std::string::npos) << log;
  EXPECT_LT(device_line, dir_line) << "the messages held before the run directory existed come first:\n" << log;
}

// A stage whose declared upstream stage neither is finished nor runs before it is refused before anything runs
// (it used to fail when the stage started, leaving its half-made cache directory).
TEST(Pipeline, UnfinishedUpstreamStageIsRefusedBeforeAnythingRuns) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  auto only_second = daug::core::parse_config(config(d, ""), "p.toml", {"run.stages=[\"second\"]"});
  expect_error_contains(
      [&] { daug::core::run_pipeline(loader, only_second, {}, {}); },
      {"stage [second] needs the output of stage [first]", "add [first] to [run].stages before [second]"});
  EXPECT_FALSE(std::filesystem::exists(d / "runs"));
  EXPECT_FALSE(std::filesystem::exists(d / "cache"));
  daug::core::RunOptions only;
  only.only = {"second"};
  expect_error_contains(
      [&] { daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, only); },
      {"stage [second] needs the output of stage [first]", "(or to --stage)"});
  // Once [first] is finished, [second] alone runs.
  only.only = {"first"};
  daug::core::run_pipeline(loader, daug::core::parse_config(config(d, ""), "p.toml"), {}, only);
  EXPECT_NO_THROW(daug::core::run_pipeline(loader, only_second, {}, {}));
}

// RunOptions::with_upstream (CommandContext::run_stages, `daug index build`): a stage that is not in [run].stages
// runs after every unfinished upstream stage it declared, finished ones are reused, and tables that none of them
// uses are allowed (the config may describe a larger experiment).
TEST(Pipeline, WithUpstreamRunsAStageAndWhatItNeedsOutsideRunStages) {
  TempDir d;
  daug::core::PluginLoader loader({std::string(DAUG_FIXTURE_DIR) + "/good"});
  loader.load_all();
  // [run].stages lists only [first]; [third] (not listed) reads [second], which reads [first]; [unused] is unused.
  const std::string extra = "[third]\nplugin = \"count\"\nvalue = 3\nupstream = \"second\"\n"
                            "[unused]\nplugin = \"count\"\nvalue = 9\n";
  auto doc = [&] { return daug::core::parse_config(config(d, extra), "p.toml", {"run.stages=[\"first\"]"}); };
  daug::core::RunOptions plain;
  plain.only = {"third"};
  expect_error_contains([&] { daug::core::run_pipeline(loader, doc(), {}, plain); },
                        {"--stage third: not one of [run].stages"});
  daug::core::RunOptions up;
  up.only = {"third"};
  up.with_upstream = true;
  auto r = daug::core::run_pipeline(loader, doc(), {}, up);
  ASSERT_EQ(r.stage_dirs.size(), 3u);  // dependencies first
  EXPECT_EQ(r.stage_dirs[0].first, "first");
  EXPECT_EQ(r.stage_dirs[1].first, "second");
  EXPECT_EQ(r.stage_dirs[2].first, "third");
  EXPECT_NE(r.summary.find("value 321"), std::string::npos) << r.summary;  // each read its upstream's output
  for (const auto& [table, dir] : r.stage_dirs) EXPECT_EQ(count_lines(dir / "runs.txt"), 1) << table;
  // Again: every stage is reused, none runs.
  auto r2 = daug::core::run_pipeline(loader, doc(), {}, up);
  EXPECT_EQ(r2.stage_dirs, r.stage_dirs);
  for (const auto& [table, dir] : r.stage_dirs) EXPECT_EQ(count_lines(dir / "runs.txt"), 1) << table;
  for (const auto& e : std::filesystem::directory_iterator(d / "cache"))
    EXPECT_NE(e.path().filename().string().rfind("unused-", 0), 0u) << "the unused table ran: " << e.path();
}
