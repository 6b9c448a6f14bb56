// RFC 4180 CSV parsing: quoting, embedded separators/newlines, CRLF, BOM, and error messages with line numbers.
#include <daug/data/csv.h>
#include <daug/error.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <zlib.h>

#include <cmath>

namespace {

using daug::data::CsvTable;
using daug::testing::expect_error_contains;

TEST(Csv, PlainAndQuotedFields) {
  CsvTable t = CsvTable::parse("a,b,c\n1,\"x,y\",\"say \"\"hi\"\"\"\n,,\n", "t.csv");
  ASSERT_EQ(t.header(), (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.at(0, 0), "1");
  EXPECT_EQ(t.at(0, 1), "x,y");
  EXPECT_EQ(t.at(0, 2), "say \"hi\"");
  EXPECT_EQ(t.at(1, 0), "");
  EXPECT_EQ(t.at(1, 2), "");
  EXPECT_EQ(t.line_of(0), 2);
  EXPECT_EQ(t.line_of(1), 3);
  EXPECT_EQ(t.column("c"), 2u);
  EXPECT_TRUE(t.has_column("b"));
  EXPECT_FALSE(t.has_column("B"));
}

TEST(Csv, EmbeddedNewlinesCrlfBomAndNoFinalNewline) {
  CsvTable t = CsvTable::parse("\xEF\xBB\xBFid,report\r\n1,\"line one\r\nline two\"\r\n\r\n2,plain", "r.csv");
  ASSERT_EQ(t.header()[0], "id");  // BOM stripped
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.at(0, 1), "line one\r\nline two");
  EXPECT_EQ(t.line_of(0), 2);
  EXPECT_EQ(t.line_of(1), 5);  // the quoted newline and the blank line both count
  EXPECT_EQ(t.at(1, 1), "plain");
}

TEST(Csv, WrongFieldCountNamesLine) {
  expect_error_contains([] { CsvTable::parse("a,b\n1,2\n3\n", "bad.csv"); },
                        {"bad.csv:3", "expected 2 fields", "found 1"});
  expect_error_contains([] { CsvTable::parse("a,b\n1,\"2\n\n3\",4\n", "bad2.csv"); }, {"bad2.csv:2", "found 3"});
}

TEST(Csv, QuoteErrors) {
  expect_error_contains([] { CsvTable::parse("a,b\n1,\"open\n", "q.csv"); }, {"q.csv:2", "unterminated"});
  expect_error_contains([] { CsvTable::parse("a,b\n1,\"x\"y\n", "q2.csv"); }, {"q2.csv:2", "after a closing quote"});
  expect_error_contains([] { CsvTable::parse("a,b\n1,x\"y\n", "q3.csv"); }, {"q3.csv:2", "unquoted field"});
}

TEST(Csv, HeaderProblemsAndMissingColumn) {
  expect_error_contains([] { CsvTable::parse("", "e.csv"); }, {"e.csv", "empty"});
  expect_error_contains([] { CsvTable::parse("a,b,a\n", "d.csv"); }, {"d.csv:1", "duplicate column 'a'"});
  CsvTable t = CsvTable::parse("image,split\nx.png,train\n", "m.csv");
  expect_error_contains([&] { t.column("Cardiomegaly"); }, {"m.csv", "missing column 'Cardiomegaly'", "image, split"});
  try {
    t.column("nope");
    ADD_FAILURE();
  } catch (const daug::DataError&) {
  }
}

TEST(Csv, ReadFromFile) {
  daug::testing::TempDir d;
  daug::testing::write_text(d / "f.csv", "x,y\n1,2\n");
  CsvTable t = CsvTable::read(d / "f.csv");
  EXPECT_EQ(t.rows(), 1u);
  EXPECT_EQ(t.name(), (d / "f.csv").string());
  expect_error_contains([&] { CsvTable::read(d / "none.csv"); }, {"none.csv", "does not exist"});
}

TEST(Csv, GzipFilesAndFallbackName) {
  daug::testing::TempDir d;
  const std::string text = "dicom_id,split\r\nabc,train\r\ndef,validate\r\n";
  gzFile gz = gzopen((d / "mimic-cxr-2.0.0-split.csv.gz").c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(gz);
  // asked for the .csv, found the .csv.gz
  CsvTable t = CsvTable::read(d / "mimic-cxr-2.0.0-split.csv");
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.at(1, 0), "def");
  EXPECT_NE(t.name().find(".csv.gz"), std::string::npos);
  EXPECT_EQ(CsvTable::read(d / "mimic-cxr-2.0.0-split.csv.gz").rows(), 2u);
  // a truncated gzip stream is an error, not a short table
  auto size = std::filesystem::file_size(d / "mimic-cxr-2.0.0-split.csv.gz");
  std::filesystem::copy_file(d / "mimic-cxr-2.0.0-split.csv.gz", d / "cut.csv.gz");
  std::filesystem::resize_file(d / "cut.csv.gz", size - 6);
  expect_error_contains([&] { CsvTable::read(d / "cut.csv.gz"); }, {"cut.csv.gz", "gzip"});
  expect_error_contains([&] { CsvTable::read(d / "absent.csv"); }, {"absent.csv", "does not exist", "absent.csv.gz"});
}

}  // namespace

TEST(Csv, NumberAndIntegerCellsNameFileLineAndColumn) {
  auto t = CsvTable::parse("id,x,n\na,1.5e3,7\nb,1.5abc,-3\nc, 2,1.0\nd,nan,99999999999999999999\ne,1e999,\n", "t.csv");
  EXPECT_EQ(t.number(0, 1), 1500.0);
  EXPECT_EQ(t.integer(0, 2), 7);
  EXPECT_EQ(t.integer(1, 2), -3);
  EXPECT_TRUE(std::isnan(t.number(3, 1)));  // syntax is strtod's; finiteness is the caller's rule
  // std::stod would return 1.5 here and std::stoll 1: trailing characters are an error.
  expect_error_contains([&] { t.number(1, 1); }, {"t.csv:3: column 'x' must be a number, but got '1.5abc'"});
  expect_error_contains([&] { t.number(2, 1); }, {"t.csv:4: column 'x' must be a number, but got ' 2'"});
  expect_error_contains([&] { t.integer(2, 2); }, {"t.csv:4: column 'n' must be an integer, but got '1.0'"});
  expect_error_contains([&] { t.integer(3, 2); }, {"t.csv:5: column 'n'", "99999999999999999999"});
  expect_error_contains([&] { t.number(4, 1); }, {"t.csv:6: column 'x' must be a number, but got '1e999'"});
  expect_error_contains([&] { t.integer(4, 2); }, {"t.csv:6: column 'n' must be an integer, but got ''"});
  EXPECT_EQ(daug::data::parse_number("1e-320", "w"), 1e-320);  // underflow to a denormal is a number
  expect_error_contains([&] { daug::data::parse_integer("x", "losses.csv:3: the first column", "an integer step"); },
                        {"losses.csv:3: the first column must be an integer step, but got 'x'"});
}
