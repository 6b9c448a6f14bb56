// The losses.csv writer/reader. See daug/train/losses_csv.h.
#include <daug/train/losses_csv.h>

#include <daug/checkpoint.h>
#include <daug/data/csv.h>
#include <daug/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

namespace daug::train {

namespace {

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) cells.push_back(cell);
  return cells;
}

int64_t step_of(const std::string& line, const std::filesystem::path& csv, int lineno) {
  return data::parse_integer(line.substr(0, line.find(',')),
                             fmt::format("{}:{}: the first column", csv.string(), lineno), "an integer step");
}

}  // namespace

LossesCsv::LossesCsv(std::filesystem::path path, int64_t first_step) : path_(std::move(path)) {
  std::string kept;
  if (first_step > 0) {  // a fresh run starts a new file
    std::ifstream in(path_);
    std::string line;
    int lineno = 0;
    while (in && std::getline(in, line)) {
      ++lineno;
      if (lineno == 1) {
        header_ = line;
        continue;
      }
      if (line.empty()) continue;
      if (step_of(line, path_, lineno) < first_step) kept += line + "\n";
    }
  }
  if (!header_.empty() && header_.rfind(kLossColumns, 0) != 0)
    throw DataError(fmt::format("{}: header '{}' is not a losses.csv header (expected '{}[,<part>...]'); delete the "
                                "file or the checkpoint to start over", path_.string(), header_, kLossColumns));
  if (!path_.parent_path().empty()) std::filesystem::create_directories(path_.parent_path());
  write_file_atomic(path_, header_.empty() ? std::string() : header_ + "\n" + kept);
  out_.open(path_, std::ios::app);
  DAUG_CHECK_AS(DataError, static_cast<bool>(out_), "cannot append to ", path_.string());
}

void LossesCsv::append(const LossRow& r) {
  std::string header = kLossColumns;
  for (const auto& [name, v] : r.parts) header += "," + name;
  if (header_.empty()) {
    header_ = header;
    out_ << header_ << "\n";
  } else if (header != header_) {
    throw DataError(fmt::format("{}: step {} has the columns '{}', but the file's header is '{}'", path_.string(),
                                r.step, header, header_));
  }
  std::string line = fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.3f}", r.step, r.epoch, r.lr, r.loss, r.grad_norm,
                                 r.elapsed_s);
  for (const auto& [name, v] : r.parts) line += fmt::format(",{:.6g}", v);
  out_ << line << "\n";
}

void LossesCsv::flush() {
  out_.flush();
  DAUG_CHECK_AS(DataError, static_cast<bool>(out_), "cannot write ", path_.string());
}

std::vector<double> read_column(const std::filesystem::path& csv, const std::string& name) {
  std::vector<double> out;
  std::ifstream in(csv);
  if (!in) return out;
  std::string line;
  int lineno = 0;
  size_t col = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    auto cells = split_commas(line);
    if (lineno == 1) {
      auto it = std::find(cells.begin(), cells.end(), name);
      if (it == cells.end()) throw DataError(fmt::format("{}: no column '{}' in the header '{}'", csv.string(), name, line));
      col = static_cast<size_t>(it - cells.begin());
      continue;
    }
    if (col >= cells.size())
      throw DataError(fmt::format("{}:{}: expected a number in column {} ({}), but the line has only {} columns: '{}'",
                                  csv.string(), lineno, col + 1, name, cells.size(), line));
    out.push_back(
        data::parse_number(cells[col], fmt::format("{}:{}: column {} ({})", csv.string(), lineno, col + 1, name)));
  }
  return out;
}

std::vector<double> read_losses(const std::filesystem::path& csv) { return read_column(csv, "loss"); }

}  // namespace daug::train
