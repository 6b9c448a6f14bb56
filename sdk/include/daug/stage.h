#pragma once
/// Stage: one step of a pipeline (`daug run` executes the stages a config lists, in order).
#include <daug/build_context.h>
#include <daug/component.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace daug {

/// What a stage receives when it runs.
struct StageContext {
  /// This stage's output directory (exists). It is keyed by a hash of every config table the stage depends
  /// on, so a re-run with the same inputs finds its partial work here and resumes.
  std::filesystem::path output_dir;
  /// Output directory of an upstream stage, by its table name; throws ConfigError if that stage has not run.
  std::function<std::filesystem::path(const std::string& stage_table)> input_dir;
  BuildContext& build;
  int shard_index = 0;  ///< --shard k/N: this process handles items with index % N == k
  int shard_count = 1;
  bool strict = false;  ///< fail on missing data instead of skipping and reporting
};

class DAUG_SDK_API Stage : public Component {
 public:
  static constexpr const char* kInterface = "Stage";
  ~Stage() override;
  /// Config tables (components and upstream stages) whose contents determine this stage's output. The core
  /// hashes them, with this stage's own table, into the cache key.
  virtual std::vector<std::string> depends_on() const = 0;
  /// Does the work. Must be resumable: write files atomically and skip finished work found in output_dir.
  virtual void run(StageContext& ctx) = 0;
  /// Text printed at the end of `daug run` (e.g. Markdown metric tables); may be empty. Called after run(),
  /// or after a cache hit (then it should read its results from output_dir).
  virtual std::string summary(const std::filesystem::path& output_dir) const { (void)output_dir; return {}; }
};

}  // namespace daug
