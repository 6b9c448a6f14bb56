#pragma once
/// The one losses.csv format of every training stage:
///   step,epoch,lr,loss,grad_norm,elapsed_s[,<part>...]
/// one row per optimizer step; `step` 0-based, `epoch` = step / steps_per_epoch, lr/loss/grad_norm/parts as %.6g,
/// elapsed_s (seconds since the start of this process's run, %.3f). The named loss parts (e.g. clip,i2c_bce) come
/// from the step function and are fixed by the first row.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace daug::train {

inline constexpr const char* kLossColumns = "step,epoch,lr,loss,grad_norm,elapsed_s";

struct LossRow {
  int64_t step = 0, epoch = 0;
  double lr = 0, loss = 0, grad_norm = 0, elapsed_s = 0;
  std::vector<std::pair<std::string, double>> parts;
};

/// Appends rows to a losses.csv. Crash-safe together with the checkpoint: the constructor rewrites the file
/// atomically keeping only the rows of steps < `first_step` (those the checkpoint already contains) and the header.
class LossesCsv {
 public:
  LossesCsv(std::filesystem::path path, int64_t first_step);
  /// Appends one row (writing the header first if the file has none). Parts whose names differ from the header's
  /// throw DataError naming the file.
  void append(const LossRow& row);
  /// Flushes appended rows to disk (call before writing a checkpoint).
  void flush();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::string header_;
  std::ofstream out_;
};

/// Column `name` of a losses.csv as numbers (missing file → empty). Throws DataError naming the file and line on a
/// malformed row, or the file and the column if the header has no such column.
std::vector<double> read_column(const std::filesystem::path& csv, const std::string& name);
/// read_column(csv, "loss").
std::vector<double> read_losses(const std::filesystem::path& csv);

}  // namespace daug::train
