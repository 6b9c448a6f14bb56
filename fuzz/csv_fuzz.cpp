// RFC 4180 CSV reader (libs/data/src/csv.cpp), plain text and gzip (an input starting with 1f 8b is read as x.csv.gz).
#include "fuzz_target.h"

#include <daug/data/csv.h>

DAUG_FUZZ_TARGET(csv) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  daug::data::CsvTable t =
      gz ? daug::data::CsvTable::read(daug::fuzz::write_scratch("table.csv.gz", data, size))
         : daug::data::CsvTable::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv");
  // Every row has the header's width and a line number inside the text.
  int last_line = 0;
  for (size_t r = 0; r < t.rows(); ++r) {
    for (size_t c = 0; c < t.header().size(); ++c) (void)t.at(r, c).size();
    DAUG_FUZZ_ASSERT(t.line_of(r) > last_line, "csv");
    last_line = t.line_of(r);
  }
  if (!t.header().empty()) DAUG_FUZZ_ASSERT(t.column(t.header().back()) < t.header().size(), "csv");
}
