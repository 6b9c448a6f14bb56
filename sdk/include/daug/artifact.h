#pragma once
/// Stage artifacts: the named files a stage publishes in its output directory for other stages, the CLI and
/// the report. A producer declares them once (Stage::outputs()); a consumer asks for them by name
/// (StageContext::artifact(stage_table, name)), so no file name is ever written in two places.
///
/// Example (producer):
///   std::vector<daug::Artifact> outputs() const override {
///     return {{daug::artifacts::kWeights, "model.safetensors", "trained weights (safetensors)"},
///             daug::metrics_artifact()};
///   }
/// Example (consumer, in run()):  auto file = ctx.artifact(opts_.diffusion_stage, daug::artifacts::kWeightsEma);
#include <string>

namespace daug {

/// One declared output of a stage.
struct Artifact {
  std::string name;  ///< stable name consumers use, e.g. "weights"
  std::string file;  ///< path relative to the stage's output directory, e.g. "model.safetensors"
  std::string doc;   ///< one line for `daug plugins describe` and the run report
};

/// Artifact names shared by producers and consumers.
namespace artifacts {
inline constexpr const char* kWeights = "weights";              ///< safetensors: trained model state
inline constexpr const char* kWeightsEma = "weights.ema";       ///< safetensors: EMA of the trained weights
inline constexpr const char* kCheckpoint = "checkpoint";        ///< safetensors: resumable training state
inline constexpr const char* kLosses = "losses";                ///< losses.csv of a training stage
inline constexpr const char* kMetrics = "metrics";              ///< metrics.json (see kMetricsFile)
inline constexpr const char* kSummary = "summary";              ///< summary.md, printed by `daug run`
inline constexpr const char* kHeatmapsIndex = "heatmaps.index"; ///< CSV: id,split,file,target,direction
inline constexpr const char* kOverlays = "overlays";            ///< directory of PNG overlay panels
inline constexpr const char* kTables = "tables";                ///< tables.md: evaluation tables (Markdown)
inline constexpr const char* kRetrievalExamples = "retrieval.examples";  ///< JSON: example queries and hits
}  // namespace artifacts

/// SDK-level contract: any stage may write a flat or nested JSON object of numbers to this file in its output
/// directory; `daug sweep` and the report collect it. Training stages write their final losses here.
inline constexpr const char* kMetricsFile = "metrics.json";

/// File of the heatmaps.index artifact in a heatmap stage's directory. Stated here (like kMetricsFile) because
/// tools outside a pipeline (`daug evaluate-heatmaps --heatmaps DIR`) open it from a bare directory.
inline constexpr const char* kHeatmapsIndexFile = "index.csv";

/// The summary artifact (summary.md) as stages declare it; Stage::summary() returns its text by default.
inline Artifact summary_artifact() { return {artifacts::kSummary, "summary.md", "Markdown summary printed by daug run"}; }

/// The metrics artifact as every stage declares it.
inline Artifact metrics_artifact() {
  return {artifacts::kMetrics, kMetricsFile, "numbers of this stage as JSON (collected by sweeps and the report)"};
}

}  // namespace daug
