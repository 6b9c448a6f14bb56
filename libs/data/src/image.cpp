// PNG (libpng) and JPEG (libjpeg-turbo) decoding to float tensors (DICOM: dicom.cpp), resizing, min-max, PNG
// writing.
//
// Both C libraries report errors by longjmp. The decoders below keep every object that must survive an error
// in a plain struct owned by the caller (no C++ objects with destructors live between setjmp and longjmp), and
// the caller turns the recorded message into a daug::DataError.
#include <daug/data/image.h>

#include <daug/data/dicom.h>

#include <daug/checkpoint.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

namespace daug::data {
namespace {

std::string read_bytes(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw DataError(fmt::format("image file '{}' does not exist", path.string()));
  if (std::filesystem::is_directory(path, ec))
    throw DataError(fmt::format("image path '{}' is a directory, expected a PNG, JPEG or DICOM file", path.string()));
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(fmt::format("cannot open image file '{}' for reading", path.string()));
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw DataError(fmt::format("error while reading image file '{}'", path.string()));
  return data;
}

[[noreturn]] void throw_too_large(const std::filesystem::path& path, const char* format, uint64_t w, uint64_t h,
                                  int64_t limit) {
  throw DataError(
      fmt::format("'{}': the {} header declares {}x{} = {} pixels, more than the limit of {} "
                  "(daug::data::kDefaultMaxImagePixels; set DAUG_MAX_IMAGE_PIXELS to raise it for "
                  "genuinely large images)",
                  path.string(), format, w, h, w * h, limit));
}

// ------------------------------------------------------------------------------------------------ PNG
struct PngState {
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  char msg[256] = {0};
  unsigned char* pixels = nullptr;  // malloc'd, freed by the caller
  png_bytep* rows = nullptr;        // malloc'd, freed by the caller
  png_uint_32 width = 0, height = 0;
  int channels = 0;   // after expansion and alpha stripping: 1 (gray) or 3 (RGB)
  int bit_depth = 0;  // 8 or 16
  int color_type = 0; // as stored in the file
  int file_bit_depth = 0;
  int64_t max_pixels = 0;
  bool too_large = false;  // width × height > max_pixels (width/height hold the header's size)
};

void png_read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "truncated file: the data ends before the PNG stream does");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->msg, sizeof(s->msg), "%s", msg);
  png_longjmp(png, 1);
}

void png_warning_cb(png_structp, png_const_charp) {}

bool png_decode(PngState* s) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s, png_error_cb, png_warning_cb);
  if (png == nullptr) {
    std::snprintf(s->msg, sizeof(s->msg), "png_create_read_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(s->msg, sizeof(s->msg), "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, s, png_read_cb);
  png_read_info(png, info);
  // The IHDR size, checked before anything is allocated for the pixels.
  s->width = png_get_image_width(png, info);
  s->height = png_get_image_height(png, info);
  if (static_cast<int64_t>(s->width) * static_cast<int64_t>(s->height) > s->max_pixels) {
    s->too_large = true;
    png_error(png, "image too large");
  }
  s->color_type = png_get_color_type(png, info);
  s->file_bit_depth = png_get_bit_depth(png, info);
  if (s->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (s->color_type == PNG_COLOR_TYPE_GRAY && s->file_bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (s->color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);  // alpha is ignored by contract
  if (s->file_bit_depth == 16) png_set_swap(png);                     // host (little-endian) uint16
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  s->width = png_get_image_width(png, info);
  s->height = png_get_image_height(png, info);
  s->channels = png_get_channels(png, info);
  s->bit_depth = png_get_bit_depth(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  s->pixels = static_cast<unsigned char*>(std::malloc(rowbytes * s->height));
  s->rows = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * s->height));
  if (s->pixels == nullptr || s->rows == nullptr) png_error(png, "out of memory for the pixel buffer");
  for (png_uint_32 y = 0; y < s->height; ++y) s->rows[y] = s->pixels + y * rowbytes;
  png_read_image(png, s->rows);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// Returns [C,H,W] float in [0,1], C = 1 (gray) or 3 (RGB).
at::Tensor decode_png(const std::string& bytes, const std::filesystem::path& path) {
  PngState s;
  s.data = reinterpret_cast<const unsigned char*>(bytes.data());
  s.size = bytes.size();
  s.max_pixels = max_image_pixels();
  bool ok = png_decode(&s);
  struct Free {
    PngState& s;
    ~Free() { std::free(s.pixels); std::free(s.rows); }
  } free_guard{s};
  if (s.too_large) throw_too_large(path, "PNG", s.width, s.height, s.max_pixels);
  if (!ok) throw DataError(fmt::format("'{}': corrupt or truncated PNG ({})", path.string(), s.msg));
  if (s.channels != 1 && s.channels != 3)
    throw DataError(fmt::format("'{}': unsupported PNG layout ({} channels after expansion; expected gray, gray+alpha, "
                                "RGB or RGBA)", path.string(), s.channels));
  const int64_t h = s.height, w = s.width, c = s.channels;
  at::Tensor out = at::empty({c, h, w}, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t plane = h * w;
  if (s.bit_depth == 16) {
    for (int64_t y = 0; y < h; ++y) {
      const auto* row = reinterpret_cast<const uint16_t*>(s.rows[y]);
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) o[k * plane + y * w + x] = row[x * c + k] / 65535.0f;
    }
  } else if (s.bit_depth == 8) {
    for (int64_t y = 0; y < h; ++y) {
      const unsigned char* row = s.rows[y];
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) o[k * plane + y * w + x] = row[x * c + k] / 255.0f;
    }
  } else {
    throw DataError(fmt::format("'{}': unsupported PNG bit depth {} after expansion", path.string(), s.bit_depth));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ JPEG
struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
  int warnings;
};

void jpeg_error_exit_cb(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->msg);
  std::longjmp(e->jump, 1);
}

void jpeg_emit_message_cb(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  if (e->warnings == 0) (*cinfo->err->format_message)(cinfo, e->msg);
  e->warnings++;
}

struct JpegState {
  const unsigned char* data = nullptr;
  size_t size = 0;
  char msg[JMSG_LENGTH_MAX] = {0};
  int warnings = 0;
  unsigned char* pixels = nullptr;  // malloc'd, freed by the caller
  unsigned width = 0, height = 0;
  int channels = 0;
  bool unsupported_colour = false;
  unsigned min_w = 0, min_h = 0;  // > 0: DCT-scaled decode to the smallest size still >= these
  int64_t max_pixels = 0;
  bool too_large = false;  // the SOF header's width × height > max_pixels (width/height hold it)
};

bool jpeg_decode(JpegState* s) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  err.warnings = 0;
  err.msg[0] = 0;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit_cb;
  err.pub.emit_message = jpeg_emit_message_cb;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(s->msg, sizeof(s->msg), "%s", err.msg);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, s->data, static_cast<unsigned long>(s->size));
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<int64_t>(cinfo.image_width) * static_cast<int64_t>(cinfo.image_height) > s->max_pixels) {
    s->too_large = true;
    s->width = cinfo.image_width;
    s->height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    s->unsupported_colour = true;
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(s->msg, sizeof(s->msg), "CMYK/YCCK colour space");
    return false;
  } else {
    cinfo.out_color_space = JCS_RGB;
  }
  if (s->min_w > 0 || s->min_h > 0) {
    // libjpeg scales by M/8 in the DCT domain; 1/8, 1/4, 1/2 are the fast paths.
    for (unsigned denom : {8u, 4u, 2u}) {
      const unsigned w = (cinfo.image_width + denom - 1) / denom, h = (cinfo.image_height + denom - 1) / denom;
      if (w >= s->min_w && h >= s->min_h) {
        cinfo.scale_num = 1;
        cinfo.scale_denom = denom;
        break;
      }
    }
  }
  jpeg_start_decompress(&cinfo);
  s->width = cinfo.output_width;
  s->height = cinfo.output_height;
  s->channels = cinfo.output_components;
  const size_t stride = static_cast<size_t>(s->width) * s->channels;
  s->pixels = static_cast<unsigned char*>(std::malloc(stride * s->height));
  if (s->pixels == nullptr) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(s->msg, sizeof(s->msg), "out of memory for the pixel buffer");
    return false;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = s->pixels + static_cast<size_t>(cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  s->warnings = err.warnings;
  std::snprintf(s->msg, sizeof(s->msg), "%s", err.msg);
  return true;
}

at::Tensor decode_jpeg(const std::string& bytes, const std::filesystem::path& path, int64_t min_h, int64_t min_w) {
  JpegState s;
  s.data = reinterpret_cast<const unsigned char*>(bytes.data());
  s.size = bytes.size();
  s.min_h = static_cast<unsigned>(std::max<int64_t>(min_h, 0));
  s.min_w = static_cast<unsigned>(std::max<int64_t>(min_w, 0));
  s.max_pixels = max_image_pixels();
  bool ok = jpeg_decode(&s);
  struct Free {
    JpegState& s;
    ~Free() { std::free(s.pixels); }
  } free_guard{s};
  if (s.too_large) throw_too_large(path, "JPEG", s.width, s.height, s.max_pixels);
  if (!ok && s.unsupported_colour)
    throw DataError(fmt::format("'{}': unsupported JPEG colour space (CMYK/YCCK); expected grayscale or YCbCr/RGB",
                                path.string()));
  if (!ok) throw DataError(fmt::format("'{}': corrupt JPEG ({})", path.string(), s.msg));
  // libjpeg only warns on a premature end of data (and pads the image with gray): treat any warning as an error.
  if (s.warnings > 0)
    throw DataError(fmt::format("'{}': corrupt or truncated JPEG ({}{})", path.string(), s.msg,
                                s.warnings > 1 ? fmt::format(", and {} more warnings", s.warnings - 1) : ""));
  const int64_t h = s.height, w = s.width, c = s.channels;
  if (c != 1 && c != 3)
    throw DataError(fmt::format("'{}': unsupported JPEG with {} output components", path.string(), c));
  at::Tensor hwc = at::from_blob(s.pixels, {h, w, c}, at::kByte);
  return hwc.permute({2, 0, 1}).to(at::kFloat).div_(255.0f).contiguous();
}

std::string hex_prefix(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) out += fmt::format("{}{:02x}", i ? " " : "", (unsigned char)bytes[i]);
  return out;
}

at::Tensor dicom_tensor(const std::string& bytes, const std::filesystem::path& path) {
  DicomGray8 g = decode_dicom(bytes.data(), bytes.size(), path.string());
  return at::from_blob(g.pixels.data(), {1, g.height, g.width}, at::kByte).to(at::kFloat).div_(255.0f);
}

// A DICOM file without the Part 10 preamble (older exports) is recognised by its extension only.
bool has_dicom_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".dcm" || ext == ".dicom";
}

at::Tensor decode_any(const std::filesystem::path& path, int64_t min_h = 0, int64_t min_w = 0) {
  std::string bytes = read_bytes(path);
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.empty()) throw DataError(fmt::format("'{}': image file is empty (0 bytes)", path.string()));
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return decode_png(bytes, path);
  if (bytes.size() >= 3 && (unsigned char)bytes[0] == 0xFF && (unsigned char)bytes[1] == 0xD8 &&
      (unsigned char)bytes[2] == 0xFF)
    return decode_jpeg(bytes, path, min_h, min_w);
  if (is_dicom(bytes.data(), bytes.size()) || has_dicom_extension(path)) return dicom_tensor(bytes, path);
  throw DataError(
      fmt::format("'{}': not a PNG, JPEG or DICOM file: expected the PNG signature 89 50 4e 47 0d 0a 1a "
                  "0a, the JPEG SOI ff d8 ff or 'DICM' at offset 128, but the file starts with {} ({} "
                  "bytes)",
                  path.string(), hex_prefix(bytes), bytes.size()));
}

// PNG writing to memory.
struct PngWriteState {
  std::string* out;
  char msg[256];
};

void png_write_cb(png_structp png, png_bytep data, png_size_t n) {
  auto* s = static_cast<PngWriteState*>(png_get_io_ptr(png));
  s->out->append(reinterpret_cast<const char*>(data), n);
}
void png_flush_cb(png_structp) {}

void png_write_error_cb(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngWriteState*>(png_get_error_ptr(png));
  std::snprintf(s->msg, sizeof(s->msg), "%s", msg);
  png_longjmp(png, 1);
}

// `rows` points at h row pointers of w*channels bytes.
bool png_encode(PngWriteState* s, png_bytep* rows, png_uint_32 w, png_uint_32 h, int channels) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, png_write_error_cb, png_warning_cb);
  if (png == nullptr) {
    std::snprintf(s->msg, sizeof(s->msg), "png_create_write_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(s->msg, sizeof(s->msg), "png_create_info_struct failed");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, s, png_write_cb, png_flush_cb);
  png_set_IHDR(png, info, w, h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

at::Tensor to_gray(const at::Tensor& chw) {
  if (chw.size(0) == 1) return chw;
  // ITU-R 601 luma (PIL's convert("L")): Y = 0.299 R + 0.587 G + 0.114 B.
  return (chw[0] * 0.299f + chw[1] * 0.587f + chw[2] * 0.114f).unsqueeze(0);
}

void check_image_dims(const at::Tensor& image, const char* what) {
  DAUG_CHECK(image.defined(), what, ": expected an image tensor, but got an undefined tensor");
  DAUG_CHECK(image.dim() == 3 || image.dim() == 4, what, ": expected [C,H,W] or [N,C,H,W], but got shape ",
             image.sizes());
}

}  // namespace

int64_t max_image_pixels() {
  static const int64_t limit = [] {
    const char* env = std::getenv("DAUG_MAX_IMAGE_PIXELS");
    if (env == nullptr || *env == '\0') return kDefaultMaxImagePixels;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(env, &end, 10);
    if (*end != '\0' || errno == ERANGE || v <= 0)
      throw ConfigError(fmt::format("DAUG_MAX_IMAGE_PIXELS must be a positive integer (pixels), but is '{}'", env));
    return static_cast<int64_t>(v);
  }();
  return limit;
}

at::Tensor load_dicom(const std::filesystem::path& path) { return dicom_tensor(read_bytes(path), path); }

at::Tensor load_gray(const std::filesystem::path& path) { return to_gray(decode_any(path)).contiguous(); }

at::Tensor load_gray_reduced(const std::filesystem::path& path, int64_t min_h, int64_t min_w) {
  DAUG_CHECK(min_h > 0 && min_w > 0, "load_gray_reduced: minimum size must be positive, but got ", min_h, "x", min_w);
  return to_gray(decode_any(path, min_h, min_w)).contiguous();
}

at::Tensor load_rgb(const std::filesystem::path& path) {
  at::Tensor img = decode_any(path);
  if (img.size(0) == 1) return img.expand({3, img.size(1), img.size(2)}).contiguous();
  return img;
}

at::Tensor resize(const at::Tensor& image, int64_t h, int64_t w, Filter filter) {
  check_image_dims(image, "resize");
  DAUG_CHECK(h > 0 && w > 0, "resize: target size must be positive, but got ", h, "x", w);
  DAUG_CHECK(at::isFloatingType(image.scalar_type()), "resize: expected a floating-point image, but got ",
             image.scalar_type());
  at::Tensor x = image.dim() == 3 ? image.unsqueeze(0) : image;
  const auto dtype = x.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble) x = x.to(at::kFloat);
  x = x.contiguous();
  at::Tensor y;
  switch (filter) {
    case Filter::bilinear:
      // PIL-style triangle filter whose support widens by the scale factor when shrinking (antialias), as
      // torchvision's Resize on PIL images (DAug's diffusion transform); equal to plain bilinear when enlarging.
      y = at::_upsample_bilinear2d_aa(x, {h, w}, /*align_corners=*/false);
      break;
    case Filter::bicubic: {
      // PIL-style bicubic (a = -0.5) whose support widens by the scale factor when shrinking (antialias).
      y = at::_upsample_bicubic2d_aa(x, {h, w}, /*align_corners=*/false);
      at::Tensor lo = x.amin({1, 2, 3}, /*keepdim=*/true);
      at::Tensor hi = x.amax({1, 2, 3}, /*keepdim=*/true);
      y = at::max(at::min(y, hi), lo);
      break;
    }
    case Filter::area:
      y = at::adaptive_avg_pool2d(x, {h, w});
      break;
    case Filter::nearest:
      y = at::upsample_nearest2d(x, {h, w});
      break;
  }
  if (y.scalar_type() != dtype) y = y.to(dtype);
  return image.dim() == 3 ? y.squeeze(0) : y;
}

at::Tensor minmax(const at::Tensor& image) {
  check_image_dims(image, "minmax");
  DAUG_CHECK(at::isFloatingType(image.scalar_type()), "minmax: expected a floating-point image, but got ",
             image.scalar_type());
  at::Tensor x = image.dim() == 3 ? image.unsqueeze(0) : image;
  at::Tensor lo = x.amin({1, 2, 3}, true);
  at::Tensor range = x.amax({1, 2, 3}, true) - lo;
  // A constant image maps to 0 (range 0 → divide by 1 after subtracting the minimum).
  at::Tensor y = (x - lo) / at::where(range > 0, range, at::ones_like(range));
  return image.dim() == 3 ? y.squeeze(0) : y;
}

std::string encode_png(const at::Tensor& image, const std::string& what) {
  DAUG_CHECK(image.defined() && image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
             what, ": expected [1,H,W] gray or [3,H,W] RGB, but got shape ",
             image.defined() ? image.sizes() : at::IntArrayRef{});
  DAUG_CHECK(image.size(1) > 0 && image.size(2) > 0, what, ": empty image ", image.sizes());
  at::Tensor u8;
  if (image.scalar_type() == at::kByte) {
    u8 = image.to(at::kCPU);
  } else {
    DAUG_CHECK(at::isFloatingType(image.scalar_type()), what, ": expected float in [0,1] or uint8, but got ",
               image.scalar_type());
    at::Tensor f = image.detach().to(at::kCPU, at::kFloat);
    DAUG_CHECK(!at::isnan(f).any().item<bool>(), what, ": the image contains NaN");
    u8 = (f.clamp(0.0, 1.0) * 255.0f).round().to(at::kByte);
  }
  at::Tensor hwc = u8.permute({1, 2, 0}).contiguous();
  const int64_t h = hwc.size(0), w = hwc.size(1), c = hwc.size(2);
  std::vector<png_bytep> rows(h);
  for (int64_t y = 0; y < h; ++y) rows[y] = hwc.data_ptr<uint8_t>() + y * w * c;
  std::string encoded;
  PngWriteState s{&encoded, {0}};
  if (!png_encode(&s, rows.data(), static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), static_cast<int>(c)))
    throw Error(fmt::format("{}: libpng failed: {}", what, s.msg));
  return encoded;
}

void save_png(const std::filesystem::path& path, const at::Tensor& image) {
  write_file_atomic(path, encode_png(image, "save_png('" + path.string() + "')"));
}

}  // namespace daug::data
