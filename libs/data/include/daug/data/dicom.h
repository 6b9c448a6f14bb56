#pragma once
/// DICOM (Part 10) grayscale radiographs, decoded through DCMTK (dcmdata + the dcmjpeg, dcmjpls and RLE
/// decoders). The image loaders of image.h call this for every file that starts with a DICOM preamble, so any
/// Source, `daug embed` and `daug query` read DICOM wherever they read PNG/JPEG; DCMTK stays out of this header.
///
/// The mapping from stored values to the 8-bit gray a PNG would hold (PS3.3 C.11 / PS3.4 N.2 grayscale pipeline):
///  1. stored value x: BitsAllocated 8 or 16, BitsStored/HighBit bits, two's complement when PixelRepresentation
///     = 1 (signed);
///  2. modality: the Modality LUT Sequence (0028,3000) when present, else m = RescaleSlope · x + RescaleIntercept
///     (default 1 and 0);
///  3. VOI, the first that applies:
///     * VOI LUT Sequence (0028,3010): its first LUT, indexed by round(m) (clamped to the LUT's range), scaled
///       from its 2^bits − 1 to 255;
///     * Window Center/Width (0028,1050)/(0028,1051), first pair, by the VOI LUT Function (0028,1056): LINEAR
///       (default; C.11.2.1.2.1), LINEAR_EXACT or SIGMOID, with output range [0, 255];
///     * 8-bit as stored: BitsStored = 8, unsigned, no rescale or LUT: y = x (the display values a PNG holds;
///       a MONOCHROME2 DICOM made from an 8-bit PNG gives exactly the PNG's pixels);
///     * otherwise min-max over the frame: y = 255 (m − min) / (max − min) (a constant image gives 0);
///  4. rounded to the nearest integer (halves up) and clamped to [0, 255]; MONOCHROME1 is inverted: 255 − y.
/// Presentation LUT Shape is ignored (DX images pair MONOCHROME1 with INVERSE; inverting twice would undo it).
/// Multi-frame images: the first frame is decoded (only that frame is decompressed); `frames` says how many.
///
/// Errors (all daug::DataError naming the file and the DICOM tag): a truncated or corrupt file, no PixelData
/// (e.g. a structured report: the SOP class is named), SamplesPerPixel ≠ 1 or a photometric interpretation
/// other than MONOCHROME1/2 (RGB, YBR_*, PALETTE COLOR are refused, not converted), BitsAllocated other than 8
/// or 16, inconsistent BitsStored/HighBit, a window width out of range, a malformed LUT, a transfer syntax
/// DCMTK cannot decode (JPEG 2000 in Debian's build), or Rows × Columns above max_image_pixels() (checked from
/// the header before any decompression).
///
/// Measured (decode_dicom of a 2544×3056 12-bit MONOCHROME1 frame with a window, 1 thread, 2-core machine shared
/// with other builds, so noisy): uncompressed 79 ms, RLE 97 ms, JPEG lossless 207 ms, JPEG-LS 394 ms.
///
/// Thread safety: reentrant. The decoders are registered once (std::call_once) on first use; DCMTK's log
/// output is switched off then (the errors come back as DataError text instead).
#include <daug/tensor.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug::data {

/// True when `data` starts like a DICOM Part 10 file: "DICM" at offset 128, after the 128-byte preamble.
bool is_dicom(const void* data, size_t size);

/// Which VOI step produced the display values (step 3 above).
enum class DicomVoi { voi_lut, window, as_stored, min_max };

/// One decoded frame as 8-bit gray.
struct DicomGray8 {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  ///< height × width, row-major
  DicomVoi voi = DicomVoi::min_max;
  std::string photometric;  ///< MONOCHROME1 or MONOCHROME2
  int64_t frames = 1;       ///< NumberOfFrames (0028,0008); only the first is decoded
};

/// Decodes the first frame of the DICOM file held in `data` (`name` is used in error messages).
DicomGray8 decode_dicom(const void* data, size_t size, const std::string& name);

/// The DICOM file at `path` as float32 [1,H,W] in [0,1] (the 8-bit values / 255, as an 8-bit PNG decodes).
at::Tensor load_dicom(const std::filesystem::path& path);

}  // namespace daug::data
