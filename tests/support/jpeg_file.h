#pragma once
// Header-only (no gtest, no daug libraries): writes JPEG fixtures with libjpeg, for tests and benchmarks that
// link JPEG::JPEG.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include <jpeglib.h>

namespace daug::testing {

/// Writes `px` (h·w·components bytes, interleaved; components 1 = gray, 3 = RGB) as a baseline JPEG of
/// `quality`. Returns false if the file cannot be created.
inline bool write_jpeg_file(const std::filesystem::path& path, int w, int h, int components, const uint8_t* px,
                            int quality) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = w;
  c.image_height = h;
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(px) + static_cast<size_t>(c.next_scanline) * w * components;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
  return true;
}

}  // namespace daug::testing
