#pragma once
/// The one training checkpoint layout (a safetensors file written atomically by daug::save_safetensors):
///   tensors   model.<key>        the Trainable's state() (parameters and buffers)
///             optim.*            AdamW state (optim.step, optim.exp_avg.<i>, optim.exp_avg_sq.<i>)
///             ema.<i>            EMA shadow of parameter i (only with EMA)
///             rng.cpu            the torch default CPU generator's state (uint8)
///   metadata  step               optimizer steps done
///             total_steps        the run's length (a resume must have the same)
///             seed               the trainer's seed
///             stage              the training stage (TrainerOptions::what)
///             complete           "true" once step == total_steps
///             ...                whatever the stage adds (TrainerOptions::metadata)
/// Readers that only want the weights take the `model.` tensors (model_state()).
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace daug::train {

inline constexpr const char* kModelPrefix = "model.";
inline constexpr const char* kRngKey = "rng.cpu";

struct CheckpointInfo {
  int64_t step = 0;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  std::string stage;
  bool complete = false;
  std::map<std::string, std::string> extra;  ///< stage-specific metadata
};

struct TrainCheckpoint {
  CheckpointInfo info;
  NamedTensors model;    ///< model.* with the prefix removed
  NamedTensors state;    ///< every other tensor (optim.*, ema.*, rng.cpu) under its full key
  at::Tensor rng;        ///< rng.cpu (undefined if absent)
};

/// Writes the layout above to `path` atomically.
void save_checkpoint(const std::filesystem::path& path, const CheckpointInfo& info, const NamedTensors& model,
                     const NamedTensors& optimizer, const NamedTensors& ema, const at::Tensor& rng);

/// Reads and validates a checkpoint: a truncated/malformed file, a missing metadata key (step, total_steps, stage)
/// or a non-numeric value throws DataError naming the file and the key.
TrainCheckpoint load_checkpoint(const std::filesystem::path& path);

/// The `model.` tensors of a checkpoint's tensors with the prefix removed.
NamedTensors model_state(const NamedTensors& tensors);

/// The default CPU generator's state, and its restoration (validated: DataError naming `source`).
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state, const std::string& source);

}  // namespace daug::train
