// Image decoding against fixtures written here with libpng/libjpeg, resizing against hand-computed values and
// an independent implementation of PIL's separable antialiased bicubic, min-max, and PNG writing.
#include <daug/data/image.h>
#include <daug/error.h>

#include "jpeg_file.h"
#include "test_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include <png.h>
#include <sys/resource.h>
#include <zlib.h>

namespace {

using daug::testing::expect_error_contains;
using daug::testing::TempDir;

// A PNG being written with libpng: open() creates the file and sets the header (write any extra chunks such as
// PLTE, then png_write_info); close() ends the file.
struct PngFile {
  FILE* f = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
  bool open(const std::filesystem::path& path, int w, int h, int bit_depth, int color_type,
            int interlace = PNG_INTERLACE_NONE) {
    f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, bit_depth, color_type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    return true;
  }
  void close() {
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
  }
};

// Writes a PNG with libpng: `samples` holds h*w*channels values, interleaved, in the file's bit depth.
void write_png(const std::filesystem::path& path, int w, int h, int color_type, int bit_depth,
               const std::vector<uint16_t>& samples) {
  PngFile file;
  ASSERT_TRUE(file.open(path, w, h, bit_depth, color_type)) << path;
  png_structp png = file.png;
  png_infop info = file.info;
  png_write_info(png, info);
  const int channels = png_get_channels(png, info);
  const int bytes = bit_depth == 16 ? 2 : 1;
  // below 8 bits, `samples` holds the packed row bytes
  const int per_row = bit_depth < 8 ? (w * channels * bit_depth + 7) / 8 : w * channels;
  std::vector<unsigned char> row(static_cast<size_t>(per_row) * bytes);
  for (int y = 0; y < h; ++y) {
    for (int i = 0; i < per_row; ++i) {
      uint16_t v = samples[static_cast<size_t>(y) * per_row + i];
      if (bytes == 2) {
        row[2 * i] = static_cast<unsigned char>(v >> 8);  // PNG is big-endian
        row[2 * i + 1] = static_cast<unsigned char>(v & 0xff);
      } else {
        row[i] = static_cast<unsigned char>(v);
      }
    }
    png_write_row(png, row.data());
  }
  file.close();
}

void write_jpeg(const std::filesystem::path& path, int w, int h, int components, const std::vector<uint8_t>& px,
                int quality) {
  ASSERT_TRUE(daug::testing::write_jpeg_file(path, w, h, components, px.data(), quality)) << path;
}

void truncate_file(const std::filesystem::path& path, double keep_fraction) {
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, static_cast<uintmax_t>(size * keep_fraction));
}

float at2(const at::Tensor& t, int64_t c, int64_t y, int64_t x) { return t[c][y][x].item<float>(); }

TEST(Image, Png8BitGray) {
  TempDir d;
  write_png(d / "g.png", 2, 2, PNG_COLOR_TYPE_GRAY, 8, {0, 51, 255, 128});
  at::Tensor g = daug::data::load_gray(d / "g.png");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, 2, 2}));
  EXPECT_EQ(g.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 0), 0.0f);
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 1), 51.0f / 255.0f);
  EXPECT_FLOAT_EQ(at2(g, 0, 1, 0), 1.0f);
  EXPECT_FLOAT_EQ(at2(g, 0, 1, 1), 128.0f / 255.0f);
  at::Tensor rgb = daug::data::load_rgb(d / "g.png");
  ASSERT_EQ(rgb.sizes(), (at::IntArrayRef{3, 2, 2}));
  EXPECT_EQ(daug::testing::max_abs_diff(rgb[2], g[0]), 0.0);
}

TEST(Image, Png16BitGray) {
  TempDir d;
  write_png(d / "g16.png", 3, 1, PNG_COLOR_TYPE_GRAY, 16, {0, 1000, 65535});
  at::Tensor g = daug::data::load_gray(d / "g16.png");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, 1, 3}));
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 0), 0.0f);
  // 1000/65535 is not representable at 8 bits: a 16-bit decode keeps it.
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 1), 1000.0f / 65535.0f);
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 2), 1.0f);
}

TEST(Image, PngRgbToLuma601) {
  TempDir d;
  write_png(d / "rgb.png", 4, 1, PNG_COLOR_TYPE_RGB, 8, {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30});
  at::Tensor g = daug::data::load_gray(d / "rgb.png");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, 1, 4}));
  EXPECT_NEAR(at2(g, 0, 0, 0), 0.299, 1e-6);
  EXPECT_NEAR(at2(g, 0, 0, 1), 0.587, 1e-6);
  EXPECT_NEAR(at2(g, 0, 0, 2), 0.114, 1e-6);
  EXPECT_NEAR(at2(g, 0, 0, 3), (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255.0, 1e-6);
  at::Tensor rgb = daug::data::load_rgb(d / "rgb.png");
  EXPECT_FLOAT_EQ(at2(rgb, 0, 0, 3), 10.0f / 255.0f);
  EXPECT_FLOAT_EQ(at2(rgb, 1, 0, 3), 20.0f / 255.0f);
  EXPECT_FLOAT_EQ(at2(rgb, 2, 0, 3), 30.0f / 255.0f);
}

TEST(Image, PngRgb16Bit) {
  TempDir d;
  write_png(d / "rgb16.png", 1, 1, PNG_COLOR_TYPE_RGB, 16, {65535, 32768, 0});
  at::Tensor g = daug::data::load_gray(d / "rgb16.png");
  EXPECT_NEAR(at2(g, 0, 0, 0), 0.299 + 0.587 * 32768.0 / 65535.0, 1e-6);
}

TEST(Image, PngRgbaIgnoresAlpha) {
  TempDir d;
  write_png(d / "rgba.png", 2, 1, PNG_COLOR_TYPE_RGBA, 8, {100, 100, 100, 0, 200, 50, 25, 77});
  at::Tensor g = daug::data::load_gray(d / "rgba.png");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, 1, 2}));
  EXPECT_NEAR(at2(g, 0, 0, 0), 100.0 / 255.0, 1e-6);  // R=G=B: luma equals the gray value (alpha 0 ignored)
  EXPECT_NEAR(at2(g, 0, 0, 1), (0.299 * 200 + 0.587 * 50 + 0.114 * 25) / 255.0, 1e-6);
}

TEST(Image, PngGrayAlphaIgnoresAlpha) {
  TempDir d;
  write_png(d / "ga.png", 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {10, 255, 240, 3});
  at::Tensor g = daug::data::load_gray(d / "ga.png");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, 1, 2}));
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 0), 10.0f / 255.0f);
  EXPECT_FLOAT_EQ(at2(g, 0, 0, 1), 240.0f / 255.0f);
}

TEST(Image, PngGrayAlpha16Bit) {
  TempDir d;
  write_png(d / "ga16.png", 1, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, {4321, 0});
  EXPECT_FLOAT_EQ(at2(daug::data::load_gray(d / "ga16.png"), 0, 0, 0), 4321.0f / 65535.0f);
}

TEST(Image, PngPaletteAndInterlacedAndLowBitDepth) {
  TempDir d;
  {  // palette (colour type 3) with 2 entries → RGB → luma
    PngFile file;
    ASSERT_TRUE(file.open(d / "pal.png", 2, 1, 8, PNG_COLOR_TYPE_PALETTE));
    png_color pal[2] = {{255, 0, 0}, {0, 0, 255}};
    png_set_PLTE(file.png, file.info, pal, 2);
    png_write_info(file.png, file.info);
    unsigned char row[2] = {1, 0};
    png_write_row(file.png, row);
    file.close();
  }
  at::Tensor p = daug::data::load_gray(d / "pal.png");
  EXPECT_NEAR(at2(p, 0, 0, 0), 0.114, 1e-6);
  EXPECT_NEAR(at2(p, 0, 0, 1), 0.299, 1e-6);
  {  // Adam7-interlaced 8-bit gray, 5x3
    PngFile file;
    ASSERT_TRUE(file.open(d / "adam7.png", 5, 3, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7));
    png_write_info(file.png, file.info);
    std::vector<unsigned char> px(15);
    for (int i = 0; i < 15; ++i) px[i] = static_cast<unsigned char>(i * 17);
    std::vector<png_bytep> rows = {px.data(), px.data() + 5, px.data() + 10};
    png_write_image(file.png, rows.data());
    file.close();
  }
  at::Tensor a = daug::data::load_gray(d / "adam7.png");
  ASSERT_EQ(a.sizes(), (at::IntArrayRef{1, 3, 5}));
  for (int i = 0; i < 15; ++i) EXPECT_FLOAT_EQ(at2(a, 0, i / 5, i % 5), i * 17 / 255.0f) << i;
  // 1-bit gray expands to 0/255
  write_png(d / "bits.png", 8, 1, PNG_COLOR_TYPE_GRAY, 1, {0b10100000});
  at::Tensor b = daug::data::load_gray(d / "bits.png");
  ASSERT_EQ(b.sizes(), (at::IntArrayRef{1, 1, 8}));
  EXPECT_FLOAT_EQ(at2(b, 0, 0, 0), 1.0f);
  EXPECT_FLOAT_EQ(at2(b, 0, 0, 1), 0.0f);
  EXPECT_FLOAT_EQ(at2(b, 0, 0, 2), 1.0f);
}

TEST(Image, JpegGrayWithinTolerance) {
  TempDir d;
  const int w = 32, h = 24;
  std::vector<uint8_t> px(w * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) px[y * w + x] = static_cast<uint8_t>(40 + 5 * x + 2 * y);  // smooth ramp
  write_jpeg(d / "g.jpg", w, h, 1, px, 95);
  at::Tensor g = daug::data::load_gray(d / "g.jpg");
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{1, h, w}));
  at::Tensor ref = at::from_blob(px.data(), {1, h, w}, at::kByte).to(at::kFloat) / 255.0;
  EXPECT_LT(daug::testing::max_abs_diff(g, ref), 4.0 / 255.0);
}

TEST(Image, JpegRgbWithinTolerance) {
  TempDir d;
  const int w = 16, h = 16;
  std::vector<uint8_t> px(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      px[(y * w + x) * 3 + 0] = static_cast<uint8_t>(100 + 4 * x);
      px[(y * w + x) * 3 + 1] = static_cast<uint8_t>(80 + 3 * y);
      px[(y * w + x) * 3 + 2] = 60;
    }
  write_jpeg(d / "c.jpg", w, h, 3, px, 98);
  at::Tensor rgb = daug::data::load_rgb(d / "c.jpg");
  ASSERT_EQ(rgb.sizes(), (at::IntArrayRef{3, h, w}));
  at::Tensor ref = at::from_blob(px.data(), {h, w, 3}, at::kByte).permute({2, 0, 1}).to(at::kFloat) / 255.0;
  EXPECT_LT(daug::testing::max_abs_diff(rgb, ref), 8.0 / 255.0);
  at::Tensor g = daug::data::load_gray(d / "c.jpg");
  at::Tensor luma = ref[0] * 0.299 + ref[1] * 0.587 + ref[2] * 0.114;
  EXPECT_LT(daug::testing::max_abs_diff(g[0], luma), 6.0 / 255.0);
}

TEST(Image, ReducedJpegDecode) {
  TempDir d;
  const int w = 200, h = 160;
  std::vector<uint8_t> px(w * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) px[y * w + x] = static_cast<uint8_t>(30 + x / 2 + y / 3);  // smooth
  write_jpeg(d / "big.jpg", w, h, 1, px, 95);
  // smallest DCT scale still >= 40x40: 1/4 → 50x40
  at::Tensor r = daug::data::load_gray_reduced(d / "big.jpg", 40, 40);
  EXPECT_EQ(r.sizes(), (at::IntArrayRef{1, 40, 50}));
  EXPECT_EQ(daug::data::load_gray_reduced(d / "big.jpg", 41, 10).sizes(), (at::IntArrayRef{1, 80, 100}));  // 1/2
  EXPECT_EQ(daug::data::load_gray_reduced(d / "big.jpg", 20, 25).sizes(), (at::IntArrayRef{1, 20, 25}));   // 1/8
  EXPECT_EQ(daug::data::load_gray_reduced(d / "big.jpg", 161, 10).sizes(), (at::IntArrayRef{1, 160, 200})); // full
  // close to a full decode + area resize on a smooth image
  at::Tensor full = daug::data::resize(daug::data::load_gray(d / "big.jpg"), 40, 50, daug::data::Filter::area);
  EXPECT_LT(daug::testing::max_abs_diff(r, full), 3.0 / 255.0);
  // PNGs are decoded fully
  daug::data::save_png(d / "p.png", at::zeros({1, 64, 64}));
  EXPECT_EQ(daug::data::load_gray_reduced(d / "p.png", 8, 8).sizes(), (at::IntArrayRef{1, 64, 64}));
}

TEST(Image, DetectsFormatFromMagicNotExtension) {
  TempDir d;
  std::vector<uint8_t> px(8 * 8, 128);
  write_jpeg(d / "really_a_jpeg.png", 8, 8, 1, px, 90);
  at::Tensor g = daug::data::load_gray(d / "really_a_jpeg.png");
  EXPECT_NEAR(g.mean().item<double>(), 128.0 / 255.0, 2.0 / 255.0);
}

TEST(Image, TruncatedPngFails) {
  TempDir d;
  std::vector<uint16_t> v(64 * 64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>((i * 37) % 251);
  write_png(d / "t.png", 64, 64, PNG_COLOR_TYPE_GRAY, 8, v);
  truncate_file(d / "t.png", 0.5);
  expect_error_contains([&] { daug::data::load_gray(d / "t.png"); }, {"t.png", "corrupt or truncated PNG"});
  try {
    daug::data::load_gray(d / "t.png");
  } catch (const daug::DataError&) {
    SUCCEED();
  } catch (...) {
    ADD_FAILURE() << "expected daug::DataError";
  }
}

TEST(Image, TruncatedJpegFails) {
  TempDir d;
  std::vector<uint8_t> px(64 * 64);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 13) % 256);
  write_jpeg(d / "t.jpg", 64, 64, 1, px, 90);
  truncate_file(d / "t.jpg", 0.6);
  expect_error_contains([&] { daug::data::load_gray(d / "t.jpg"); }, {"t.jpg", "truncated JPEG"});
}

TEST(Image, WrongMagicFails) {
  TempDir d;
  daug::testing::write_text(d / "x.png", "GIF89a\x01\x00\x01\x00");
  expect_error_contains([&] { daug::data::load_gray(d / "x.png"); },
                        {"x.png", "not a PNG, JPEG or DICOM", "47 49 46 38 39 61"});
  daug::testing::write_text(d / "empty.jpg", "");
  expect_error_contains([&] { daug::data::load_gray(d / "empty.jpg"); }, {"empty.jpg", "empty"});
}

// A PNG assembled byte by byte (zlib for the CRCs and the IDAT stream), so that the IHDR can claim any size.
std::string png_chunk(const std::string& type, const std::string& data) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  const std::string body = type + data;
  const auto crc =
      static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(crc);
}

// An 8-bit gray PNG of w×h that claims `w`×`h` in IHDR and holds `rows` all-zero rows of that width in IDAT.
std::string gray_png_bytes(uint32_t w, uint32_t h, uint32_t rows) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  const std::string ihdr = be32(w) + be32(h) + std::string("\x08\x00\x00\x00\x00", 5);  // depth 8, gray
  z_stream z{};
  EXPECT_EQ(deflateInit(&z, 9), Z_OK);
  std::string idat;
  std::vector<unsigned char> row(w + 1, 0), out(1 << 16);  // filter byte 0 + w zero samples
  for (uint32_t y = 0; y <= rows; ++y) {
    const bool last = y == rows;
    z.next_in = row.data();
    z.avail_in = last ? 0 : static_cast<uInt>(row.size());
    do {
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      idat.append(reinterpret_cast<const char*>(out.data()), out.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) +
         png_chunk("IEND", "");
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(Image, DecompressionBombsAreRejectedFromTheHeader) {
  TempDir d;
  // Control: the hand-made writer makes PNGs the decoder reads.
  daug::testing::write_text(d / "small.png", gray_png_bytes(16, 8, 8));
  EXPECT_EQ(daug::data::load_gray(d / "small.png").sizes(), (at::IntArrayRef{1, 8, 16}));
  // The review's D_bomb: a real, complete 10000×10000 PNG of ~100 KB; decoding it allocated 750 MB.
  const std::string bomb = gray_png_bytes(10000, 10000, 10000);
  EXPECT_LT(bomb.size(), 200000u);
  daug::testing::write_text(d / "bomb.png", bomb);
  const long before = max_rss_kb();
  expect_error_contains([&] { daug::data::load_gray(d / "bomb.png"); },
                        {"bomb.png", "10000x10000 = 100000000 pixels", "limit of 67108864", "DAUG_MAX_IMAGE_PIXELS"});
  EXPECT_LT(max_rss_kb() - before, 50 * 1024) << "the decoder allocated the image before rejecting it";
  EXPECT_EQ(daug::data::max_image_pixels(), daug::data::kDefaultMaxImagePixels);
  // Just over the limit (8193² > 2^26) with one row of data: the size, not the missing data, is reported.
  daug::testing::write_text(d / "over.png", gray_png_bytes(8193, 8193, 1));
  expect_error_contains([&] { daug::data::load_gray(d / "over.png"); }, {"over.png", "8193x8193", "limit"});
  // At the limit (8192² = 2^26) the size is accepted: the decoder gets to the (missing) data.
  daug::testing::write_text(d / "at.png", gray_png_bytes(8192, 8192, 1));
  try {
    daug::data::load_gray(d / "at.png");
    ADD_FAILURE() << "at.png holds 1 of 8192 rows";
  } catch (const daug::DataError& e) {
    EXPECT_EQ(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }

  // JPEG: a valid 8×8 file whose SOF0 frame header is patched to claim 20000×20000.
  std::vector<uint8_t> px(8 * 8, 100);
  write_jpeg(d / "j.jpg", 8, 8, 1, px, 90);
  std::string jpg;
  {
    std::ifstream in(d / "j.jpg", std::ios::binary);
    jpg.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const size_t sof = jpg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  // FF C0, length (2), precision (1), height (2), width (2), big-endian
  jpg[sof + 5] = '\x4e';
  jpg[sof + 6] = '\x20';
  jpg[sof + 7] = '\x4e';
  jpg[sof + 8] = '\x20';
  daug::testing::write_text(d / "bomb.jpg", jpg);
  expect_error_contains([&] { daug::data::load_gray(d / "bomb.jpg"); },
                        {"bomb.jpg", "JPEG header declares 20000x20000 = 400000000 pixels", "limit of 67108864"});
  expect_error_contains([&] { daug::data::load_gray_reduced(d / "bomb.jpg", 64, 64); }, {"bomb.jpg", "limit"});
}

TEST(Image, MissingFileFails) {
  TempDir d;
  EXPECT_THROW(daug::data::load_gray(d / "nope.png"), daug::DataError);
  expect_error_contains([&] { daug::data::load_gray(d / "nope.png"); }, {"nope.png", "does not exist"});
}

TEST(Image, SavePngRoundTripAndAtomic) {
  TempDir d;
  at::Tensor img = at::tensor({0.0f, 0.2f, 0.5f, 1.0f, 1.5f, -0.1f}).reshape({1, 2, 3});
  daug::data::save_png(d / "out.png", img);
  at::Tensor back = daug::data::load_gray(d / "out.png");
  at::Tensor expect = (img.clamp(0, 1) * 255).round() / 255;
  EXPECT_LT(daug::testing::max_abs_diff(back, expect), 1e-6);
  // no temporary file left behind
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(d.path())) (void)e, ++files;
  EXPECT_EQ(files, 1);
  at::Tensor rgb = at::rand({3, 5, 4});
  daug::data::save_png(d / "rgb.png", rgb);
  EXPECT_LT(daug::testing::max_abs_diff(daug::data::load_rgb(d / "rgb.png"), (rgb * 255).round() / 255), 1e-6);
  at::Tensor u8 = at::arange(12, at::kByte).reshape({1, 3, 4});
  daug::data::save_png(d / "u8.png", u8);
  EXPECT_LT(daug::testing::max_abs_diff(daug::data::load_gray(d / "u8.png") * 255, u8.to(at::kFloat)), 1e-4);
  expect_error_contains([&] { daug::data::save_png(d / "bad.png", at::zeros({2, 3, 3})); }, {"[1,H,W]", "[2, 3, 3]"});
}

TEST(Image, ResizeBilinearHandComputed) {
  // align_corners=false: output 4 from input 2 samples at source -0.25, 0.25, 0.75, 1.25 (clamped to [0,1]).
  at::Tensor x = at::tensor({0.0f, 1.0f}).reshape({1, 1, 2});
  at::Tensor y = daug::data::resize(x, 1, 4, daug::data::Filter::bilinear);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{1, 1, 4}));
  std::vector<float> expect = {0.0f, 0.25f, 0.75f, 1.0f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[0][0][i].item<float>(), expect[i], 1e-6);
}

TEST(Image, ResizeAreaAndNearest) {
  at::Tensor x = at::arange(16, at::kFloat).reshape({1, 4, 4});
  at::Tensor a = daug::data::resize(x, 2, 2, daug::data::Filter::area);
  // block means: (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, 10.5, 12.5
  EXPECT_LT(daug::testing::max_abs_diff(a, at::tensor({2.5f, 4.5f, 10.5f, 12.5f}).reshape({1, 2, 2})), 1e-6);
  at::Tensor n = daug::data::resize(x, 2, 2, daug::data::Filter::nearest);
  EXPECT_LT(daug::testing::max_abs_diff(n, at::tensor({0.0f, 2.0f, 8.0f, 10.0f}).reshape({1, 2, 2})), 1e-6);
  // batched input keeps the batch dim
  EXPECT_EQ(daug::data::resize(at::zeros({3, 1, 8, 8}), 4, 2).sizes(), (at::IntArrayRef{3, 1, 4, 2}));
}

// PIL's separable antialiased resampling of one row with `filter` of half-width `filter_support`, written from
// Pillow's Resample.c precompute_coeffs.
template <class Filter>
std::vector<double> pil_resample_1d(const std::vector<double>& in, int out_size, double filter_support, Filter filter) {
  const int in_size = static_cast<int>(in.size());
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = filter_support * filterscale;
  std::vector<double> out(out_size);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0, acc = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double w = filter((x + xmin - center + 0.5) * ss);
      ww += w;
      acc += w * in[xmin + x];
    }
    out[xx] = acc / ww;
  }
  return out;
}

// PIL's bicubic (a = -0.5, support 2).
std::vector<double> pil_bicubic_1d(const std::vector<double>& in, int out_size) {
  return pil_resample_1d(in, out_size, 2.0, [](double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
  });
}

TEST(Image, ResizeBicubicMatchesPilAntialias) {
  // A 1-in-4 impulse train shrunk 4x: antialiasing averages it (≈0.25 inside); a plain bicubic would sample
  // between two zeros and give ≈0.
  std::vector<double> in(32);
  for (int i = 0; i < 32; ++i) in[i] = (i % 4 == 0) ? 1.0 : 0.0;
  std::vector<double> ref = pil_bicubic_1d(in, 8);
  at::Tensor x = at::tensor(std::vector<float>(in.begin(), in.end())).reshape({1, 1, 32});
  at::Tensor y = daug::data::resize(x, 1, 8, daug::data::Filter::bicubic);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(y[0][0][i].item<float>(), ref[i], 1e-5) << "i=" << i;
  EXPECT_NEAR(y[0][0][4].item<float>(), 0.25, 0.05);
  // upsampling a ramp 5 -> 9 also follows PIL (support 2, a = -0.5), clamped to the input range
  std::vector<double> ramp = {0.0, 0.1, 0.5, 0.9, 1.0};
  std::vector<double> up = pil_bicubic_1d(ramp, 9);
  at::Tensor yr = daug::data::resize(at::tensor(std::vector<float>(ramp.begin(), ramp.end())).reshape({1, 1, 5}), 1,
                                     9, daug::data::Filter::bicubic);
  for (int i = 0; i < 9; ++i)
    EXPECT_NEAR(yr[0][0][i].item<float>(), std::clamp(up[i], 0.0, 1.0), 1e-5) << "i=" << i;
}

// PIL's bilinear (triangle) filter, support 1.
std::vector<double> pil_bilinear_1d(const std::vector<double>& in, int out_size) {
  return pil_resample_1d(in, out_size, 1.0, [](double x) { return std::max(0.0, 1.0 - std::fabs(x)); });
}

TEST(Image, ResizeBilinearMatchesPilAntialias) {
  std::vector<double> in(30);
  for (int i = 0; i < 30; ++i) in[i] = (i % 3 == 0) ? 1.0 : 0.1 * i / 30.0;
  for (int out : {7, 10, 45}) {
    std::vector<double> ref = pil_bilinear_1d(in, out);
    at::Tensor y = daug::data::resize(at::tensor(std::vector<float>(in.begin(), in.end())).reshape({1, 1, 30}), 1,
                                      out, daug::data::Filter::bilinear);
    for (int i = 0; i < out; ++i) EXPECT_NEAR(y[0][0][i].item<float>(), ref[i], 1e-5) << out << " " << i;
  }
}

TEST(Image, ResizeBicubicClampsOvershoot) {
  // A step edge upsampled with a cubic kernel overshoots; the result must stay within the input's range.
  at::Tensor x = at::cat({at::zeros({1, 4, 4}), at::ones({1, 4, 4})}, 2);
  at::Tensor y = daug::data::resize(x, 16, 32, daug::data::Filter::bicubic);
  EXPECT_GE(y.min().item<float>(), 0.0f);
  EXPECT_LE(y.max().item<float>(), 1.0f);
  at::Tensor c = daug::data::resize(at::full({1, 7, 9}, 0.3f), 5, 4, daug::data::Filter::bicubic);
  EXPECT_LT(daug::testing::max_abs_diff(c, at::full({1, 5, 4}, 0.3f)), 1e-6);
}

TEST(Image, ResizeRejectsBadInput) {
  expect_error_contains([] { daug::data::resize(at::zeros({4, 4}), 2, 2); }, {"[C,H,W]", "[4, 4]"});
  expect_error_contains([] { daug::data::resize(at::zeros({1, 4, 4}), 0, 2); }, {"positive"});
}

TEST(Image, MinMax) {
  at::Tensor x = at::tensor({2.0f, 4.0f, 6.0f, 10.0f}).reshape({1, 2, 2});
  EXPECT_LT(daug::testing::max_abs_diff(daug::data::minmax(x),
                                        at::tensor({0.0f, 0.25f, 0.5f, 1.0f}).reshape({1, 2, 2})),
            1e-6);
  at::Tensor c = daug::data::minmax(at::full({1, 3, 3}, 7.0f));
  EXPECT_EQ(c.abs().max().item<float>(), 0.0f);
  // per image in a batch
  at::Tensor b = at::stack({x, x * 3 + 1});
  at::Tensor m = daug::data::minmax(b);
  EXPECT_LT(daug::testing::max_abs_diff(m[0], m[1]), 1e-6);
}

}  // namespace
