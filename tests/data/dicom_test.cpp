// DICOM decoding (libs/data/src/dicom.cpp) against fixtures written here with DCMTK's own writer and encoders
// (tests/support/dicom_file.h) from the NIH sample PNGs, whose pixels are read independently with libpng. The
// expected display values come from the PNG pixels or from the PS3.3 C.11.2.1 formulas written out here, with a
// few literal values computed by hand (python) for the window tests.
#include <daug/data/dicom.h>
#include <daug/data/image.h>
#include <daug/error.h>

#include "dicom_file.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include <png.h>

namespace {

using daug::data::DicomVoi;
using daug::testing::DicomLut;
using daug::testing::DicomSpec;
using daug::testing::DicomSyntax;
using daug::testing::expect_error_contains;
using daug::testing::TempDir;
using daug::testing::write_dicom_file;

const std::filesystem::path kNih = std::filesystem::path(DAUG_SOURCE_DIR) / "examples/data/nih-cxr14-sample/images";

struct Gray {
  int w = 0, h = 0;
  std::vector<uint8_t> px;
};

// The PNG's 8-bit gray pixels through libpng's simplified API (not daug's decoder).
Gray read_png(const std::filesystem::path& path) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  Gray g;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return g;
  img.format = PNG_FORMAT_GRAY;
  g.w = static_cast<int>(img.width);
  g.h = static_cast<int>(img.height);
  g.px.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, g.px.data(), 0, nullptr)) g.px.clear();
  return g;
}

// The decoded DICOM as 8-bit values (the loaders return value / 255).
std::vector<uint8_t> decoded_bytes(const std::filesystem::path& path) {
  at::Tensor t = daug::data::load_gray(path);
  EXPECT_EQ(t.dim(), 3);
  at::Tensor u = (t * 255.0f).round().to(at::kByte).contiguous();
  EXPECT_TRUE(at::equal(u.to(at::kFloat).div(255.0f), t)) << "not a multiple of 1/255: " << path;
  return std::vector<uint8_t>(u.data_ptr<uint8_t>(), u.data_ptr<uint8_t>() + u.numel());
}

daug::data::DicomGray8 decode_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return daug::data::decode_dicom(bytes.data(), bytes.size(), path.string());
}

// An 8-bit MONOCHROME2 image holding the PNG's pixels.
DicomSpec spec8(const Gray& g) {
  DicomSpec s;
  s.rows = static_cast<uint16_t>(g.h);
  s.cols = static_cast<uint16_t>(g.w);
  s.bytes = g.px;
  return s;
}

// 12 bits stored in 16: x = 16 p + (i mod 16), 0..4095, from the PNG's pixels p.
DicomSpec spec12(const Gray& g) {
  DicomSpec s = spec8(g);
  s.bytes.clear();
  s.bits_allocated = 16;
  s.bits_stored = 12;
  s.high_bit = 11;
  for (size_t i = 0; i < g.px.size(); ++i) s.words.push_back(static_cast<uint16_t>(16 * g.px[i] + i % 16));
  return s;
}

int round_half_up(double y) { return static_cast<int>(std::floor(y + 0.5)); }

// PS3.3 C.11.2.1.2.1, output [0, 255], rounded.
int linear_window(double x, double c, double w) {
  if (x <= c - 0.5 - (w - 1) / 2) return 0;
  if (x > c - 0.5 + (w - 1) / 2) return 255;
  return round_half_up(((x - (c - 0.5)) / (w - 1) + 0.5) * 255);
}

class Dicom : public ::testing::Test {
 protected:
  void SetUp() override {
    png = read_png(kNih / "00000075_000.png");
    ASSERT_EQ(png.w * png.h, static_cast<int>(png.px.size()));
    ASSERT_GT(png.w, 16);
  }
  std::filesystem::path write(const std::string& name, const DicomSpec& s,
                              DicomSyntax syntax = DicomSyntax::explicit_le) {
    const auto p = d / name;
    const std::string err = write_dicom_file(p, s, syntax);
    EXPECT_EQ(err, "") << name;
    return p;
  }
  TempDir d;
  Gray png;
};

TEST_F(Dicom, Monochrome2EightBitEqualsThePng) {
  const auto p = write("m2.dcm", spec8(png));
  EXPECT_EQ(decoded_bytes(p), png.px);
  // The same tensor as the PNG path gives, for every loader.
  const auto png_path = kNih / "00000075_000.png";
  EXPECT_TRUE(at::equal(daug::data::load_gray(p), daug::data::load_gray(png_path)));
  EXPECT_TRUE(at::equal(daug::data::load_rgb(p), daug::data::load_rgb(png_path)));
  EXPECT_TRUE(at::equal(daug::data::load_dicom(p), daug::data::load_gray(png_path)));
  EXPECT_TRUE(at::equal(daug::data::load_gray_reduced(p, 64, 64), daug::data::load_gray(png_path)));
  const auto g = decode_file(p);
  EXPECT_EQ(g.voi, DicomVoi::as_stored);
  EXPECT_EQ(g.photometric, "MONOCHROME2");
  EXPECT_EQ(g.height, png.h);
  EXPECT_EQ(g.width, png.w);
}

TEST_F(Dicom, Monochrome1IsInverted) {
  DicomSpec s = spec8(png);
  s.photometric = "MONOCHROME1";
  const auto got = decoded_bytes(write("m1.dcm", s));
  ASSERT_EQ(got.size(), png.px.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], 255 - png.px[i]) << i;
}

TEST_F(Dicom, DetectedByContentNotExtension) {
  const auto p = write("scan.png", spec8(png));  // a DICOM named .png
  EXPECT_EQ(decoded_bytes(p), png.px);
  std::filesystem::copy_file(p, d / "scan");
  EXPECT_EQ(decoded_bytes(d / "scan"), png.px);
  // Without preamble and meta header: only a .dcm/.dicom extension marks it.
  const auto bare = write("bare.dcm", spec8(png), DicomSyntax::no_meta_header);
  EXPECT_EQ(decoded_bytes(bare), png.px);
  std::filesystem::copy_file(bare, d / "bare.bin");
  expect_error_contains([&] { daug::data::load_gray(d / "bare.bin"); },
                        {"bare.bin", "not a PNG, JPEG or DICOM", "'DICM' at offset 128"});
}

TEST_F(Dicom, TwelveBitRescaleAndLinearWindow) {
  DicomSpec s = spec12(png);
  // Hand-picked stored values in the first row, m = 2x - 1024 = -1024, 1400, 1402, 1476, 1500, 1576, 1598, 1600,
  // 7166; expected with center 1500, width 200 (python, PS3.3 C.11.2.1.2.1 rounded half up).
  const uint16_t xs[] = {0, 1212, 1213, 1250, 1262, 1300, 1311, 1312, 4095};
  const uint8_t linear[] = {0, 0, 3, 97, 128, 226, 254, 255, 255};
  const uint8_t exact[] = {0, 0, 3, 97, 128, 224, 252, 255, 255};
  const uint8_t sigmoid[] = {0, 30, 31, 97, 128, 209, 224, 225, 255};
  for (size_t i = 0; i < 9; ++i) s.words[i] = xs[i];
  s.strings = {{DCM_RescaleSlope, "2"},
               {DCM_RescaleIntercept, "-1024"},
               {DCM_WindowCenter, "1500\\40"},
               {DCM_WindowWidth, "200\\400"}};
  const auto got = decoded_bytes(write("w.dcm", s));
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(got[i], linear[i]) << "pixel " << i << ", stored " << xs[i];
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], linear_window(2.0 * s.words[i] - 1024, 1500, 200)) << i;
  EXPECT_EQ(decode_file(d / "w.dcm").voi, DicomVoi::window);

  s.strings.push_back({DCM_VOILUTFunction, "LINEAR_EXACT"});
  const auto ex = decoded_bytes(write("exact.dcm", s));
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(ex[i], exact[i]) << "pixel " << i;
  s.strings.back().second = "SIGMOID";
  const auto sg = decoded_bytes(write("sigmoid.dcm", s));
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(sg[i], sigmoid[i]) << "pixel " << i;

  // MONOCHROME1: the window's output inverted.
  s.strings.pop_back();
  s.photometric = "MONOCHROME1";
  const auto inv = decoded_bytes(write("w1.dcm", s));
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(inv[i], 255 - linear[i]) << "pixel " << i;
}

TEST_F(Dicom, TwelveBitWithoutVoiIsMinMax) {
  DicomSpec s = spec12(png);
  s.strings = {{DCM_RescaleSlope, "0.5"}, {DCM_RescaleIntercept, "100"}};
  const auto got = decoded_bytes(write("mm.dcm", s));
  double lo = 1e9, hi = -1e9;
  for (uint16_t x : s.words) lo = std::min(lo, 0.5 * x + 100), hi = std::max(hi, 0.5 * x + 100);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], round_half_up((0.5 * s.words[i] + 100 - lo) / (hi - lo) * 255)) << i;
  EXPECT_EQ(decode_file(d / "mm.dcm").voi, DicomVoi::min_max);
  // 8 bits stored with a rescale is min-max too, not "as stored".
  DicomSpec e = spec8(png);
  for (auto& v : e.bytes) v = static_cast<uint8_t>(v / 2 + 10);  // 10..137
  e.strings = {{DCM_RescaleSlope, "1"}, {DCM_RescaleIntercept, "-10"}};
  const auto mm8 = decoded_bytes(write("mm8.dcm", e));
  for (size_t i = 0; i < mm8.size(); ++i) ASSERT_EQ(mm8[i], round_half_up((e.bytes[i] - 10) / 127.0 * 255)) << i;
}

TEST_F(Dicom, SignedPixelsAndHighBit) {
  // 16 bits stored, signed: x = 200 (p - 128) in [-25600, 25400]; min-max gives p back (the PNG spans 0..255).
  ASSERT_EQ(*std::min_element(png.px.begin(), png.px.end()), 0);
  ASSERT_EQ(*std::max_element(png.px.begin(), png.px.end()), 255);
  DicomSpec s = spec8(png);
  s.bytes.clear();
  s.bits_allocated = s.bits_stored = 16;
  s.high_bit = 15;
  s.pixel_representation = 1;
  for (uint8_t p : png.px) s.words.push_back(static_cast<uint16_t>(static_cast<int16_t>(200 * (p - 128))));
  EXPECT_EQ(decoded_bytes(write("s16.dcm", s)), png.px);
  // 12 bits stored at bits 2..13 (HighBit 13), two's complement, with set bits around them that must be ignored:
  // x = 16 (p - 128) in [-2048, 2032].
  s.bits_stored = 12;
  s.high_bit = 13;
  for (size_t i = 0; i < png.px.size(); ++i) {
    const int x = 16 * (png.px[i] - 128);
    s.words[i] = static_cast<uint16_t>(((x & 0xFFF) << 2) | 0xC003);
  }
  EXPECT_EQ(decoded_bytes(write("s12.dcm", s)), png.px);
  // The same data read as unsigned is a different image.
  s.pixel_representation = 0;
  EXPECT_NE(decoded_bytes(write("u12.dcm", s)), png.px);
}

TEST_F(Dicom, VoiLutSequence) {
  DicomSpec s = spec12(png);
  DicomLut lut;
  lut.entries = 4096;
  lut.bits = 16;
  for (uint32_t i = 0; i < 4096; ++i) lut.data.push_back(static_cast<uint16_t>((i * i) >> 8));
  s.voi_lut = lut;
  s.strings = {{DCM_WindowCenter, "100"}, {DCM_WindowWidth, "10"}};  // the LUT wins over the window
  const uint16_t xs[] = {0, 1000, 2048, 4095};
  const uint8_t want[] = {0, 15, 64, 255};  // round(((x^2) >> 8) * 255 / 65535)
  for (size_t i = 0; i < 4; ++i) s.words[i] = xs[i];
  const auto got = decoded_bytes(write("lut.dcm", s));
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(got[i], want[i]) << "stored " << xs[i];
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], round_half_up(lut.data[s.words[i]] * 255.0 / 65535)) << i;
  EXPECT_EQ(decode_file(d / "lut.dcm").voi, DicomVoi::voi_lut);

  // 8-bit entries for 1024..3071; values outside map to the first / last entry.
  DicomLut l8;
  l8.entries = 2048;
  l8.first = 1024;
  l8.bits = 8;
  for (uint32_t i = 0; i < 2048; ++i) l8.data.push_back(static_cast<uint16_t>(i >> 3));
  s.voi_lut = l8;
  const auto g8 = decoded_bytes(write("lut8.dcm", s));
  for (size_t i = 0; i < g8.size(); ++i) {
    const int idx = std::clamp(static_cast<int>(s.words[i]) - 1024, 0, 2047);
    ASSERT_EQ(g8[i], idx >> 3) << i;
  }

  // Signed input, SS descriptor with a negative first value: x = 16 (p - 128) in [-2048, 2032], LUT from -2048.
  DicomSpec t = spec8(png);
  t.bytes.clear();
  t.bits_allocated = t.bits_stored = 16;
  t.high_bit = 15;
  t.pixel_representation = 1;
  for (uint8_t p : png.px) t.words.push_back(static_cast<uint16_t>(static_cast<int16_t>(16 * (p - 128))));
  DicomLut ls;
  ls.entries = 4096;
  ls.first = static_cast<uint16_t>(static_cast<int16_t>(-2048));
  ls.ss_descriptor = true;
  ls.bits = 12;
  for (uint32_t i = 0; i < 4096; ++i) ls.data.push_back(static_cast<uint16_t>(4095 - i));  // inverting LUT
  t.voi_lut = ls;
  const auto gs = decoded_bytes(write("luts.dcm", t));
  for (size_t i = 0; i < gs.size(); ++i) ASSERT_EQ(gs[i], round_half_up((4095 - 16 * png.px[i]) * 255.0 / 4095)) << i;
}

TEST_F(Dicom, ModalityLutSequence) {
  DicomSpec s = spec12(png);
  DicomLut lut;
  lut.entries = 4096;
  for (uint32_t i = 0; i < 4096; ++i) lut.data.push_back(static_cast<uint16_t>(4095 - i));
  s.modality_lut = lut;
  s.strings = {{DCM_WindowCenter, "2048"}, {DCM_WindowWidth, "4096"}};
  const auto got = decoded_bytes(write("mlut.dcm", s));
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], linear_window(4095 - s.words[i], 2048, 4096)) << i;
}

TEST_F(Dicom, CompressedTransferSyntaxes) {
  // 8-bit: lossless syntaxes give the PNG's pixels exactly.
  for (auto [name, syntax] : {std::pair{"implicit", DicomSyntax::implicit_le},
                              {"deflated", DicomSyntax::deflated},
                              {"jpeg_lossless", DicomSyntax::jpeg_lossless},
                              {"jpeg_ls", DicomSyntax::jpeg_ls_lossless},
                              {"rle", DicomSyntax::rle}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(decoded_bytes(write(std::string(name) + "8.dcm", spec8(png), syntax)), png.px);
  }
  // JPEG baseline (quality 90) is lossy: close to the PNG.
  const auto jb = decoded_bytes(write("baseline8.dcm", spec8(png), DicomSyntax::jpeg_baseline));
  ASSERT_EQ(jb.size(), png.px.size());
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < jb.size(); ++i) {
    const int e = std::abs(jb[i] - png.px[i]);
    sum += e;
    worst = std::max(worst, e);
  }
  EXPECT_LT(sum / jb.size(), 1.5);
  EXPECT_LE(worst, 24);
  EXPECT_GT(sum, 0);  // it did go through the lossy codec

  // 12 bits with rescale and window: every lossless syntax decodes to the uncompressed file's values.
  DicomSpec s = spec12(png);
  s.strings = {
      {DCM_RescaleSlope, "2"}, {DCM_RescaleIntercept, "-1024"}, {DCM_WindowCenter, "2500"}, {DCM_WindowWidth, "5000"}};
  const auto ref = decoded_bytes(write("ref12.dcm", s));
  for (auto [name, syntax] : {std::pair{"big_endian", DicomSyntax::big_endian},
                              {"jpeg_lossless", DicomSyntax::jpeg_lossless},
                              {"jpeg_ls", DicomSyntax::jpeg_ls_lossless},
                              {"rle", DicomSyntax::rle}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(decoded_bytes(write(std::string(name) + "12.dcm", s, syntax)), ref);
  }
}

TEST_F(Dicom, MultiFrameDecodesTheFirstFrame) {
  const Gray other = read_png(kNih / "00000100_000.png");
  ASSERT_EQ(other.px.size(), png.px.size());
  DicomSpec s = spec8(png);
  s.frames = 2;
  s.bytes.insert(s.bytes.end(), other.px.begin(), other.px.end());
  for (auto syntax : {DicomSyntax::explicit_le, DicomSyntax::rle}) {
    const auto p = write("mf.dcm", s, syntax);
    EXPECT_EQ(decoded_bytes(p), png.px);
    EXPECT_EQ(decode_file(p).frames, 2);
  }
}

TEST_F(Dicom, TruncatedAndCorruptFilesNameFileAndTag) {
  const auto p = write("t.dcm", spec8(png));
  const auto size = std::filesystem::file_size(p);
  std::filesystem::resize_file(p, size * 6 / 10);
  expect_error_contains([&] { daug::data::load_gray(p); },
                        {"t.dcm", "corrupt or truncated DICOM", "(7FE0,0010) PixelData"});
  // A valid preamble and meta header followed by garbage.
  const auto q = write("c.dcm", spec8(png));
  std::string bytes;
  {
    std::ifstream f(q, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  bytes.resize(400);
  for (size_t i = 300; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xFF - i % 7);
  daug::testing::write_text(q, bytes);
  expect_error_contains([&] { daug::data::load_gray(q); }, {"c.dcm", "DICOM"});
}

TEST_F(Dicom, JpegTemMarkerIsRejectedNotAHang) {
  // DCMTK 3.6.7's JPEG bit-depth scan loops forever on a TEM marker (FF01) before the frame header.
  const auto p = write("tem.dcm", spec8(png), DicomSyntax::jpeg_baseline);
  std::string bytes;
  {
    std::ifstream f(p, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  const size_t soi = bytes.find("\xFF\xD8\xFF", 132);
  ASSERT_NE(soi, std::string::npos);
  bytes[soi + 1] = '\x01';
  daug::testing::write_text(p, bytes);
  expect_error_contains([&] { daug::data::load_gray(p); },
                        {"tem.dcm", "(7FE0,0010) PixelData fragment 1", "TEM marker (FF01)"});
}

TEST_F(Dicom, RleSegmentOffsetOutsideTheFragmentIsRejected) {
  // DCMTK 3.6.7's RLE decoder reads out of bounds at a segment offset past the fragment.
  const auto p = write("rle.dcm", spec8(png), DicomSyntax::rle);
  std::string bytes;
  {
    std::ifstream f(p, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  const std::string header("\x01\x00\x00\x00\x40\x00\x00\x00", 8);  // 1 segment, at offset 64
  const size_t at = bytes.find(header, 132);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at + 4, 4, std::string(4, '\xFF'));
  daug::testing::write_text(p, bytes);
  expect_error_contains(
      [&] { daug::data::load_gray(p); },
      {"rle.dcm", "(7FE0,0010) PixelData fragment 1: invalid RLE header", "segment 1 starts at offset 4294967295"});
}

TEST_F(Dicom, NonImageAndUnsupportedNameTheTag) {
  DicomSpec sr;
  sr.pixel_data = false;
  sr.sop_class = UID_BasicTextSRStorage;
  expect_error_contains([&] { daug::data::load_gray(write("sr.dcm", sr)); },
                        {"sr.dcm", "(7FE0,0010) PixelData is missing", "not an image", UID_BasicTextSRStorage});

  DicomSpec rgb = spec8(png);
  rgb.samples_per_pixel = 3;
  rgb.photometric = "RGB";
  rgb.bytes.resize(3 * png.px.size());
  expect_error_contains([&] { daug::data::load_rgb(write("rgb.dcm", rgb)); },
                        {"rgb.dcm", "(0028,0004) PhotometricInterpretation = 'RGB'", "MONOCHROME1 or MONOCHROME2"});
  rgb.photometric = "YBR_FULL";
  expect_error_contains([&] { daug::data::load_rgb(write("ybr.dcm", rgb)); },
                        {"(0028,0004) PhotometricInterpretation = 'YBR_FULL'"});

  DicomSpec two = spec8(png);
  two.samples_per_pixel = 2;
  expect_error_contains([&] { daug::data::load_gray(write("two.dcm", two)); },
                        {"two.dcm", "(0028,0002) SamplesPerPixel = 2"});

  DicomSpec w0 = spec12(png);
  w0.strings = {{DCM_WindowCenter, "100"}, {DCM_WindowWidth, "0"}};
  expect_error_contains([&] { daug::data::load_gray(write("w0.dcm", w0)); },
                        {"w0.dcm", "(0028,1051) WindowWidth = 0", ">= 1"});
  w0.strings = {{DCM_WindowCenter, "100"}, {DCM_WindowWidth, "10"}, {DCM_VOILUTFunction, "CUBIC"}};
  expect_error_contains([&] { daug::data::load_gray(write("f.dcm", w0)); },
                        {"f.dcm", "(0028,1056) VOILUTFunction = 'CUBIC'"});

  DicomSpec hb = spec12(png);
  hb.bits_stored = 12;
  hb.high_bit = 16;
  expect_error_contains([&] { daug::data::load_gray(write("hb.dcm", hb)); }, {"hb.dcm", "(0028,0102) HighBit = 16"});

  DicomSpec lut = spec12(png);
  DicomLut l;
  l.entries = 4096;
  l.data.assign(100, 0);
  lut.voi_lut = l;
  expect_error_contains([&] { daug::data::load_gray(write("lut.dcm", lut)); },
                        {"lut.dcm", "(0028,3010) VOILUTSequence", "(0028,3006) LUTData", "holds 100 values"});

  // Pixel data shorter than Rows x Columns.
  DicomSpec shortpx = spec8(png);
  shortpx.bytes.resize(1000);
  expect_error_contains([&] { daug::data::load_gray(write("short.dcm", shortpx)); },
                        {"short.dcm", "(7FE0,0010) PixelData holds 1000 bytes", "256 x 256 x 1 = 65536 bytes"});
}

TEST_F(Dicom, PixelLimitFromTheHeader) {
  DicomSpec s;
  s.rows = s.cols = 65535;
  s.bytes.assign(64, 7);  // a few bytes claiming 4.3 gigapixels
  expect_error_contains([&] { daug::data::load_gray(write("big.dcm", s)); },
                        {"big.dcm", "65535x65535", "4294836225 pixels", "limit of 67108864"});
}

TEST_F(Dicom, ConcurrentDecodes) {
  // Decoders registered and files decoded from several threads at once (prefetch workers do this).
  std::vector<std::filesystem::path> files = {
      write("a.dcm", spec8(png), DicomSyntax::jpeg_lossless), write("b.dcm", spec8(png), DicomSyntax::jpeg_ls_lossless),
      write("c.dcm", spec8(png), DicomSyntax::rle), write("e.dcm", spec8(png), DicomSyntax::implicit_le)};
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 6; ++k) {
        const auto g = decode_file(files[(t + k) % files.size()]);
        if (g.pixels != png.px) ++bad[t];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

}  // namespace

namespace {

// A quick, deterministic mutation pass over the fuzz seeds (fuzz/corpus/dicom): truncations, flipped bytes and
// 32-bit fields overwritten with extreme values (element lengths, LUT descriptors, dimensions). Every input must
// decode or be rejected with a daug::Error; the libFuzzer target (fuzz/dicom_fuzz.cpp) goes much further.
TEST(DicomMutations, SeedsMutatedAreDecodedOrRejected) {
  const auto dir = std::filesystem::path(DAUG_SOURCE_DIR) / "fuzz/corpus/dicom";
  std::vector<std::filesystem::path> seeds;
  for (const auto& e : std::filesystem::directory_iterator(dir)) seeds.push_back(e.path());
  std::sort(seeds.begin(), seeds.end());
  ASSERT_GE(seeds.size(), 5u);
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  // DAUG_DICOM_MUTATIONS=N runs N per seed (a longer local hunt) and names each input on stderr first.
  const char* env = std::getenv("DAUG_DICOM_MUTATIONS");
  const int mutations = env ? std::atoi(env) : 300;
  size_t accepted = 0, rejected = 0;
  for (const auto& seed : seeds) {
    std::ifstream f(seed, std::ios::binary);
    const std::string original((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    for (int k = 0; k < mutations; ++k) {
      std::string b = original;
      switch (k % 3) {
        case 0:
          b.resize(next() % (b.size() + 1));
          break;
        case 1:
          for (int j = 0; j < 4; ++j) b[next() % b.size()] = static_cast<char>(next());
          break;
        case 2: {
          const uint32_t v[] = {0xFFFFFFFFu, 0xFFFFFFFEu, 0x7FFFFFFFu, 0u, 0x00010000u, 0xFFFF0000u};
          const size_t at = 132 + next() % (b.size() - 136);
          std::memcpy(&b[at], &v[next() % 6], 4);
          break;
        }
      }
      if (env) std::cerr << seed.filename().string() << " " << k << "\n";
      try {
        const auto g = daug::data::decode_dicom(b.data(), b.size(), seed.filename().string());
        ASSERT_EQ(g.pixels.size(), static_cast<size_t>(g.width * g.height));
        ++accepted;
      } catch (const daug::Error&) {
        ++rejected;
      } catch (const std::exception& e) {
        FAIL() << seed.filename() << " mutation " << k << ": " << e.what();
      }
    }
  }
  EXPECT_GT(accepted, 0u);
  EXPECT_GT(rejected, 0u);
}

}  // namespace
