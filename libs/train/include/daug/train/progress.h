#pragma once
/// A progress line with rate and ETA, and the duration format it uses.
#include <chrono>
#include <cstdint>
#include <string>

namespace daug::train {

/// "1h02m03s", "4m05s", "12.3s".
std::string format_duration(double seconds);

/// Logs "<what>: done/total (p%) <rate> <unit>/s elapsed <t> ETA <t> <extra>" through daug::log at most every
/// `every_s` seconds (and always when done == total). The rate counts only work done since construction (resumed
/// work excluded).
class Progress {
 public:
  Progress(std::string what, int64_t total, int64_t already_done = 0, double every_s = 10.0,
           std::string unit = "it");
  /// Reports `done` items finished in total; `force` logs regardless of the interval. Returns true if it logged.
  bool update(int64_t done, const std::string& extra = {}, bool force = false);
  /// Whether update(done, ..., force) would log now (e.g. to fetch the values for `extra` only then).
  bool due(int64_t done, bool force = false) const;
  /// Records `done` without logging.
  void advance(int64_t done) { done_ = done; }
  double elapsed_s() const;
  /// Items per second since construction (0 before any progress).
  double rate() const;
  int64_t done() const { return done_; }

 private:
  std::string what_, unit_;
  int64_t total_, start_done_, done_;
  double every_s_;
  std::chrono::steady_clock::time_point start_, last_log_;
};

}  // namespace daug::train
