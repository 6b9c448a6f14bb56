#pragma once
/// `daug run`: builds and checks the stages listed in [run].stages, then creates the run directory and runs them
/// with content-addressed caching of each stage's output.
#include <daug/detail/config_document.h>

#include <daug/core/plugin_loader.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace daug::core {

struct RunOptions {
  int shard_index = 0;
  int shard_count = 1;
  bool strict = false;
  /// Build and check everything (plugins, options, unused tables, cache keys), print which stages would run and
  /// which are cached, and stop before any compute or any file is written (no run directory).
  bool dry_run = false;
  /// Only run these stages (default: all of [run].stages).
  std::vector<std::string> only;
  /// With `only`: the stages need not be in [run].stages, and [run].stages is replaced by them and every upstream
  /// stage they declare (dependencies first), all selected: what is not finished runs, the rest is reused. Config
  /// tables that none of them uses are allowed (the config may describe a larger experiment). For commands that
  /// need one stage's output (`daug index build`).
  bool with_upstream = false;
};

struct RunResult {
  std::filesystem::path run_dir;                                          ///< empty after a dry run
  std::vector<std::pair<std::string, std::filesystem::path>> stage_dirs;  ///< (stage table, output dir)
  std::string summary;  ///< concatenated Stage::summary() texts
  /// False on the ranks > 0 of a distributed launch: rank 0 reports the run (summary, run directory) for all.
  bool main_rank = true;
};

/// [run] keys: name (string), device ("cpu"|"cuda"|"cuda:N"), seed, threads (0 = leave LibTorch's default),
/// stages (array of table names), runs_dir (default "runs"), cache_dir (default "cache").
/// The run directory gets resolved.toml, effective.toml (every option of every built table, defaults included),
/// overrides.txt, plugins.txt and run.log. Each stage writes into <cache_dir>/<table>-<key>/ where the key covers
/// what the stage consumes (plugin build ids, effective options, the run seed, input-data fingerprints, and
/// recursively every component and upstream stage it requested in create()); a `.complete` marker means the stage
/// finished and is skipped on the next run. A config table that no stage uses is an error (file:line, did you mean).
/// The run directory is created only after the whole configuration checked out (a config error leaves nothing).
/// A stage directory is locked (flock on <dir>/.lock) while its stage runs: a concurrent `daug run` of the same
/// stage waits, then reuses the finished output.
/// Under a distributed launch (daug/core/distributed.h) every rank calls it: the ranks first compare their resolved
/// configs (a difference is a ConfigError on every rank, naming the first differing line) and refuse --shard; rank 0
/// alone creates the run directory (rank R > 0 logs to <run_dir>/rank<R>.log), decides which stages are cached, holds
/// the stage locks and writes `.complete` after every rank has finished the stage.
RunResult run_pipeline(const PluginLoader& loader, std::shared_ptr<const ConfigDocument> doc,
                       const std::vector<std::string>& overrides, const RunOptions& options);

/// Under a distributed launch, joins the other ranks with `doc`'s [run] settings (backend, timeout) and keeps the
/// communicator installed while the returned handle lives: run_pipeline() calls meanwhile reuse it instead of
/// joining again (a sweep joins once for all its variants). Null without a distributed launch.
std::shared_ptr<void> join_distributed(std::shared_ptr<const ConfigDocument> doc);

}  // namespace daug::core
