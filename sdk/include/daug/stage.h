#pragma once
/// Stage: one step of a pipeline (`daug run` executes the stages a config lists, in order).
///
/// Dependencies are declared once, in `create()`: components through `ctx.component<T>(table)` and upstream
/// stages through `ctx.component<daug::Stage>(table)`. The core records that graph and keys the stage's cache
/// on the effective options of everything in it. Outputs are declared by `outputs()` and read by name.
///
/// Example:
///   static std::shared_ptr<daug::Stage> create(Options o, daug::BuildContext& ctx) {
///     auto gen = ctx.component<daug::Generator>(o.generator);       // a component this stage uses
///     ctx.component<daug::Stage>(o.diffusion_stage);                // an upstream stage whose artifacts it reads
///     return std::make_shared<MyStage>(std::move(o), gen);
///   }
///   void run(daug::StageContext& ctx) override {
///     auto w = ctx.artifact(opts_.diffusion_stage, daug::artifacts::kWeights);   // upstream file, by name
///     daug::write_file_atomic(ctx.output(daug::artifacts::kMetrics), "{}");      // own file, by name
///   }
#include <daug/artifact.h>
#include <daug/build_context.h>
#include <daug/component.h>
#include <daug/error.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace daug {

/// What a stage receives when it runs.
struct StageContext {
  /// This stage's output directory (exists). It is keyed by a hash of the effective configuration of
  /// everything the stage consumes, so a re-run with the same inputs finds its partial work here and resumes.
  std::filesystem::path output_dir;
  /// Artifact `name` of the upstream stage in table `stage_table`. The stage must have requested that table in
  /// create() and it must have finished; throws ConfigError otherwise, or if it declares no such artifact.
  std::function<std::filesystem::path(const std::string& stage_table, const std::string& name)> artifact;
  BuildContext& build;
  int shard_index = 0;  ///< --shard k/N: this process handles items with index % N == k
  int shard_count = 1;
  bool strict = false;  ///< fail on missing data instead of skipping and reporting
  /// This stage's declared outputs (Stage::outputs()), filled in by the caller.
  std::vector<Artifact> outputs;

  /// Path of this stage's own declared artifact `name`; throws Error if the stage does not declare it.
  std::filesystem::path output(const std::string& name) const { return artifact_path(outputs, output_dir, name); }

  /// `dir` / the file of artifact `name` in `declared`; throws Error naming the artifact if it is not declared.
  static std::filesystem::path artifact_path(const std::vector<Artifact>& declared, const std::filesystem::path& dir,
                                             const std::string& name) {
    for (const auto& a : declared)
      if (a.name == name) return dir / a.file;
    throw Error("stage used undeclared artifact '" + name + "': add it to the stage's outputs()");
  }
};

class DAUG_SDK_API Stage : public Component {
 public:
  static constexpr const char* kInterface = "Stage";
  ~Stage() override;
  /// The named files this stage writes for others (see daug/artifact.h). Consumers can only read these.
  virtual std::vector<Artifact> outputs() const = 0;
  /// Does the work. Must be resumable: write files atomically and skip finished work found in output_dir.
  virtual void run(StageContext& ctx) = 0;
  /// Text printed at the end of `daug run` (e.g. Markdown metric tables); may be empty. Called after run(),
  /// or after a cache hit (then it should read its results from output_dir). The default returns the declared
  /// `summary` artifact's text when the stage declares one and it exists.
  virtual std::string summary(const std::filesystem::path& output_dir) const;
  /// Path of this stage's declared artifact `name` in `output_dir` (see outputs()).
  std::filesystem::path output_path(const std::filesystem::path& output_dir, const std::string& name) const {
    return StageContext::artifact_path(outputs(), output_dir, name);
  }
};

}  // namespace daug
