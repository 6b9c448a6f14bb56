#pragma once
/// RFC 4180 CSV reading (quoted fields, embedded commas/newlines/quotes, CRLF), with line numbers for errors.
#include <filesystem>
#include <string>
#include <vector>

namespace daug::data {

class CsvTable {
 public:
  /// Parses `path` (a `.gz` file is decompressed; if `path` is missing but `path.gz` exists, that is read);
  /// the first row is the header. Throws daug::DataError with file:line on a malformed row
  /// (unterminated quote, wrong field count).
  static CsvTable read(const std::filesystem::path& path);
  static CsvTable parse(const std::string& text, const std::string& name);

  const std::vector<std::string>& header() const { return header_; }
  size_t rows() const { return rows_.size(); }
  /// Column index of `name`; throws daug::DataError "<file>: missing column 'X'; columns: ..." if absent.
  size_t column(const std::string& name) const;
  bool has_column(const std::string& name) const;
  const std::string& at(size_t row, size_t col) const { return rows_[row][col]; }
  /// 1-based line number in the file where `row` starts (for messages).
  int line_of(size_t row) const { return lines_[row]; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<int> lines_;
};

}  // namespace daug::data
