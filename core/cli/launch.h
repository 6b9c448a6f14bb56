#pragma once
// `daug launch`: starts N local ranks of this same executable with the distributed environment (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and supervises them. `daug run --nproc N` uses it too.
#include <string>
#include <vector>

namespace daug::cli {

struct LaunchOptions {
  int nproc = 0;         ///< --nproc N (0 = not given)
  int master_port = 0;   ///< --master-port P (0 = a free port)
  double timeout_s = 0;  ///< --timeout S: collective/rendezvous timeout of the ranks (DAUG_DIST_TIMEOUT_S); 0 = theirs
  double grace_s = 30;   ///< --grace S: after one rank failed, how long the others get to exit on their own
};

/// Removes the launcher's options (--nproc, --master-port, --timeout, --grace; "--opt V" or "--opt=V") from `args`
/// wherever they are, stopping at a "--" (which it removes). Throws ConfigError on a bad value.
LaunchOptions take_launch_options(std::vector<std::string>& args);

/// Runs `command` (e.g. {"run", "cfg.toml", "--set", ...}) on `opts.nproc` local ranks and returns the exit code:
/// 0 only when every rank exited 0. A rank that fails is named on stderr; the others get `grace_s` seconds to end
/// on their own (the communicator's failure detection), then are terminated. SIGINT/SIGTERM/SIGHUP are forwarded.
int launch(const LaunchOptions& opts, const std::vector<std::string>& command);

}  // namespace daug::cli
