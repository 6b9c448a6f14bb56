// RFC 4180 CSV: comma separator, CRLF or LF records, double-quoted fields with "" escapes and embedded commas,
// quotes and line breaks. The first record is the header. A UTF-8 BOM is skipped; blank lines are skipped.
#include <daug/data/csv.h>

#include <daug/error.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cmath>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <zlib.h>

namespace daug::data {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_gzip(const std::filesystem::path& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) throw DataError(fmt::format("cannot open gzip file '{}' for reading", path.string()));
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(gz, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(gz, &err);
      gzclose(gz);
      throw DataError(fmt::format("'{}': corrupt gzip data ({})", path.string(), msg));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  // gzread returns 0 both at a clean end and at a truncated stream; gzclose_r reports the latter.
  const int rc = gzclose_r(gz);
  if (rc != Z_OK)
    throw DataError(fmt::format("'{}': truncated or corrupt gzip stream (zlib error {})", path.string(), rc));
  return out;
}

}  // namespace

CsvTable CsvTable::read(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path file = path;
  if (!std::filesystem::exists(file, ec)) {
    // MIMIC-CXR-JPG (and NIH mirrors) ship their CSVs gzipped: x.csv may be present as x.csv.gz.
    std::filesystem::path gz = file;
    gz += ".gz";
    if (!std::filesystem::exists(gz, ec))
      throw DataError(fmt::format("CSV file '{}' does not exist (nor '{}')", path.string(), gz.filename().string()));
    file = gz;
  }
  std::string text;
  if (ends_with(file.string(), ".gz")) {
    text = read_gzip(file);
  } else {
    std::ifstream f(file, std::ios::binary);
    if (!f) throw DataError(fmt::format("cannot open CSV file '{}' for reading", file.string()));
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  return parse(text, file.string());
}

CsvTable CsvTable::parse(const std::string& text, const std::string& name) {
  CsvTable t;
  t.name_ = name;
  size_t i = 0;
  const size_t n = text.size();
  if (n >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int line = 1;
  bool have_header = false;

  std::vector<std::string> record;
  std::string field;
  while (i < n) {
    // One record.
    const int record_line = line;
    record.clear();
    bool end_of_record = false;
    // Blank line (only a line break): skipped.
    if (text[i] == '\n' || (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) {
      i += text[i] == '\r' ? 2 : 1;
      ++line;
      continue;
    }
    while (!end_of_record) {
      field.clear();
      const int field_line = line;
      const size_t field_start = i;
      if (i < n && text[i] == '"') {
        ++i;
        bool closed = false;
        while (i < n) {
          char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            closed = true;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++i;
        }
        if (!closed)
          throw DataError(fmt::format("{}:{}: unterminated quoted field (the quote opened here is never closed)", name,
                                      field_line));
        if (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') &&
            text[i] != '\r')
          throw DataError(fmt::format("{}:{}: unexpected character '{}' after a closing quote (expected ',' or the end "
                                      "of the line)",
                                      name, line, text[i]));
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
          if (text[i] == '"')
            throw DataError(fmt::format("{}:{}: a '\"' inside an unquoted field (column {}); quote the whole field and "
                                        "double the quote (RFC 4180)",
                                        name, line, record.size() + 1));
          ++i;
        }
        field.assign(text, field_start, i - field_start);
      }
      record.push_back(field);
      if (i >= n) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
      } else if (text[i] == '\n') {
        ++i;
        ++line;
        end_of_record = true;
      } else if (text[i] == '\r') {
        i += (i + 1 < n && text[i + 1] == '\n') ? 2 : 1;
        ++line;
        end_of_record = true;
      }
    }
    if (!have_header) {
      t.header_ = record;
      for (size_t a = 0; a < t.header_.size(); ++a)
        for (size_t b = a + 1; b < t.header_.size(); ++b)
          if (t.header_[a] == t.header_[b])
            throw DataError(fmt::format("{}:{}: duplicate column '{}' in the header (columns {} and {})", name,
                                        record_line, t.header_[a], a + 1, b + 1));
      have_header = true;
    } else {
      if (record.size() != t.header_.size())
        throw DataError(fmt::format("{}:{}: expected {} fields (as in the header), but found {}", name, record_line,
                                    t.header_.size(), record.size()));
      t.rows_.push_back(record);
      t.lines_.push_back(record_line);
    }
  }
  if (!have_header) throw DataError(fmt::format("{}: empty CSV file (expected a header row)", name));
  return t;
}

size_t CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return i;
  throw DataError(fmt::format("{}: missing column '{}'; columns: {}", name_, name, fmt::join(header_, ", ")));
}

double CsvTable::number(size_t row, size_t col) const {
  return parse_number(at(row, col), fmt::format("{}:{}: column '{}'", name_, line_of(row), header_.at(col)));
}

int64_t CsvTable::integer(size_t row, size_t col) const {
  return parse_integer(at(row, col), fmt::format("{}:{}: column '{}'", name_, line_of(row), header_.at(col)));
}

double parse_number(const std::string& text, const std::string& where, const std::string& what) {
  // strtod, not std::stod: no exception without context, and the end pointer rejects "1.5abc" (stod accepts it).
  if (!text.empty() && !std::isspace(static_cast<unsigned char>(text[0]))) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    // ERANGE with a finite result is underflow to a denormal or 0: a valid tiny number, kept.
    if (end == text.c_str() + text.size() && !(errno == ERANGE && std::isinf(v))) return v;
  }
  throw DataError(fmt::format("{} must be {}, but got '{}'", where, what, text));
}

int64_t parse_integer(const std::string& text, const std::string& where, const std::string& what) {
  if (!text.empty() && !std::isspace(static_cast<unsigned char>(text[0]))) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() + text.size() && errno != ERANGE) return static_cast<int64_t>(v);
  }
  throw DataError(fmt::format("{} must be {}, but got '{}'", where, what, text));
}

bool CsvTable::has_column(const std::string& name) const {
  for (const auto& h : header_)
    if (h == name) return true;
  return false;
}

}  // namespace daug::data
