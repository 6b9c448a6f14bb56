#pragma once
/// RFC 4180 CSV reading (quoted fields, embedded commas/newlines/quotes, CRLF), with line numbers for errors.
#include <cstdint>
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
  /// The cell as a number (parse_number); DataError "<file>:<line>: column '<c>' must be a number, but got '<v>'".
  double number(size_t row, size_t col) const;
  /// The cell as an integer (parse_integer); DataError "<file>:<line>: column '<c>' must be an integer, but got ...".
  int64_t integer(size_t row, size_t col) const;
  /// 1-based line number in the file where `row` starts (for messages).
  int line_of(size_t row) const { return lines_[row]; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<int> lines_;
};

/// Parses all of `text` as a number (strtod syntax: "3", "-1.5e3", "nan", "inf"; no surrounding spaces or trailing
/// characters). Anything else throws DataError "<where> must be <what>, but got '<text>'"; `where` names the place,
/// e.g. "labels.csv:7: column 'x'".
double parse_number(const std::string& text, const std::string& where, const std::string& what = "a number");
/// As parse_number for a base-10 int64 ("12", "-3"; not "1.0", "1e3" or out-of-range values).
int64_t parse_integer(const std::string& text, const std::string& where, const std::string& what = "an integer");

}  // namespace daug::data
