#pragma once
/// A distributed launch: reading the launcher's environment, and the c10d communicator the core installs.
///
/// Environment contract (torchrun's, with SLURM's as a fallback):
///   RANK, WORLD_SIZE, LOCAL_RANK, [LOCAL_WORLD_SIZE], MASTER_ADDR, MASTER_PORT
///   or SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, [SLURM_NTASKS_PER_NODE] with MASTER_ADDR/MASTER_PORT set by the
///   job script.
/// Rank 0 hosts c10d's TCPStore at MASTER_ADDR:MASTER_PORT; every rank joins it, then builds the process group
/// (ProcessGroupGloo for CPUs, ProcessGroupNCCL for GPUs when this build has NCCL) over it.
#include <daug/communicator.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace daug::core {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::string source;  ///< "RANK/WORLD_SIZE" or "SLURM_PROCID/SLURM_NTASKS": which contract it came from
};

/// Reads the launch environment through `getenv` (std::getenv by default). nullopt when this is not a distributed
/// launch (no WORLD_SIZE / SLURM_NTASKS, or a world of 1). Throws ConfigError naming the variable when a variable is
/// malformed or inconsistent (RANK >= WORLD_SIZE, no MASTER_ADDR/MASTER_PORT for a world > 1, ...).
std::optional<DistEnv> dist_env_from(const std::function<const char*(const char*)>& getenv = nullptr);

struct DistOptions {
  std::string backend = "auto";  ///< "auto" (nccl for CUDA devices when available, else gloo), "gloo", "nccl"
  std::string device = "cpu";    ///< the run's device ("cpu", "cuda"): what the collectives' tensors live on
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  ///< rendezvous and every collective
  std::string where;             ///< config location of [run].backend, for messages
};

/// Joins the rendezvous and builds the process group. Throws daug::Error naming the ranks that did not join within
/// the timeout, or the store that could not be reached.
std::shared_ptr<Communicator> connect(const DistEnv& env, const DistOptions& options);

/// Posts this rank's fatal error to the other ranks (shown in their messages), best effort; no-op without a
/// distributed communicator.
void post_failure(const std::string& message);

}  // namespace daug::core
