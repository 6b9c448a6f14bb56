#pragma once
/// Image decoding (PNG via libpng, JPEG via libjpeg-turbo, DICOM via DCMTK: dicom.h), resizing and normalisation.
/// Thread safety: every function is reentrant (no global state); decode images from several threads freely.
/// Measured (tests/data/data_bench, 1 thread, CPU time on a loaded 2-core machine): a 256² 8-bit PNG 1.1 ms,
/// a 2544×3056 gray JPEG (MIMIC-CXR size, 2.7 MB) 60–78 ms, its AA-bicubic resize to 512² 47–53 ms.
#include <daug/tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace daug::data {

/// The most pixels (width × height) a decoder accepts by default: 2^26 = 67,108,864 (e.g. 8192 × 8192; the
/// largest chest radiographs are about 4300 × 4300). The size is read from the PNG IHDR / JPEG SOF header before
/// any pixel buffer is allocated, so a small file that claims a huge image (a "decompression bomb": a 97 KB PNG
/// of 10000 × 10000 allocated 750 MB) is a DataError naming the file, its dimensions and the limit.
/// The environment variable DAUG_MAX_IMAGE_PIXELS overrides it (a positive integer, read once).
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{1} << 26;

/// The limit in force: DAUG_MAX_IMAGE_PIXELS when set (ConfigError if it is not a positive integer), otherwise
/// kDefaultMaxImagePixels.
int64_t max_image_pixels();

/// Decodes a PNG or JPEG (detected from the magic bytes, not the extension): 8- or 16-bit; gray, gray+alpha,
/// RGB or RGBA, converted to gray with ITU-R 601 luma (alpha ignored). Returns float32 [1,H,W] in [0,1].
/// A DICOM file ("DICM" at offset 128, or a .dcm/.dicom file without the preamble) is decoded by
/// decode_dicom (dicom.h) to 8-bit gray, as an 8-bit PNG; the pixel limit applies to its Rows × Columns.
/// A missing, truncated or unsupported file, or one larger than max_image_pixels(), throws daug::DataError naming
/// the file and what was found.
at::Tensor load_gray(const std::filesystem::path& path);

/// As load_gray, but a JPEG is decoded with libjpeg's DCT-domain scaling (1/8, 1/4 or 1/2) to the smallest size
/// that is still at least min_h × min_w (PNGs and DICOMs decode fully). Saves the IDCT and pixel work but not the entropy
/// decoding: a 2.7 MB 2544×3056 JPEG to 256² took 39 ms (decode+resize) vs 60 ms for the full decode alone
/// (data_bench, CPU time). Values differ slightly from a full decode + resize, so it is opt-in (dataset.h `reduced`).
at::Tensor load_gray_reduced(const std::filesystem::path& path, int64_t min_h, int64_t min_w);

/// As load_gray, but keeps colour: float32 [3,H,W] in [0,1] (gray replicated to 3 channels).
at::Tensor load_rgb(const std::filesystem::path& path);

enum class Filter { bilinear, bicubic, area, nearest };

/// Resizes [C,H,W] or [N,C,H,W] float images to h×w (aspect not kept), on the image's device.
///  * bilinear, bicubic: PIL's separable filters (triangle; cubic with a = -0.5), whose support widens by the
///    scale factor when shrinking (antialias), as PIL.Image.resize and torchvision's Resize on PIL images (DAug's
///    transforms) do; align_corners = false. bicubic is clamped to each image's [min,max] (overshoot).
///  * area: adaptive average pooling (F.interpolate mode="area"); nearest: F.interpolate mode="nearest".
at::Tensor resize(const at::Tensor& image, int64_t h, int64_t w, Filter filter = Filter::bilinear);

/// Per-image min-max to [0,1] over the last three dims of [C,H,W] or [N,C,H,W]; a constant image maps to 0.
at::Tensor minmax(const at::Tensor& image);

/// Writes an 8-bit PNG ([1,H,W] gray or [3,H,W] RGB, float in [0,1] or uint8) atomically.
void save_png(const std::filesystem::path& path, const at::Tensor& image);
/// The bytes save_png writes (e.g. to inline a thumbnail in HTML); `what` names the image in errors.
std::string encode_png(const at::Tensor& image, const std::string& what = "encode_png");

}  // namespace daug::data
