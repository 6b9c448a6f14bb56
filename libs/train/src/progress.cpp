// Progress line and duration format. See daug/train/progress.h.
#include <daug/train/progress.h>

#include <daug/log.h>

#include <fmt/format.h>

#include <cmath>

namespace daug::train {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<int64_t>(std::llround(s));
  int64_t h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  if (h > 0) return fmt::format("{}h{:02d}m{:02d}s", h, m, sec);
  return fmt::format("{}m{:02d}s", m, sec);
}

Progress::Progress(std::string what, int64_t total, int64_t already_done, double every_s, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), start_done_(already_done),
      done_(already_done), every_s_(every_s), start_(std::chrono::steady_clock::now()), last_log_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  double e = elapsed_s();
  return e > 0 ? static_cast<double>(done_ - start_done_) / e : 0.0;
}

bool Progress::due(int64_t done, bool force) const {
  return force || done >= total_ ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_log_).count() >= every_s_;
}

bool Progress::update(int64_t done, const std::string& extra, bool force) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  bool last = done_ >= total_;
  if (!last && !force && std::chrono::duration<double>(now - last_log_).count() < every_s_) return false;
  last_log_ = now;
  double r = rate();
  double eta = r > 0 ? static_cast<double>(total_ - done_) / r : NAN;
  double pct = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  log::info("{}: {}/{} ({:.1f}%) {:.3g} {}/s elapsed {} ETA {}{}{}", what_, done_, total_, pct, r, unit_,
            format_duration(elapsed_s()), last ? "0s" : format_duration(eta), extra.empty() ? "" : " ", extra);
  return true;
}

}  // namespace daug::train
