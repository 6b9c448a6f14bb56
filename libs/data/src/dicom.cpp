// DICOM grayscale decoding through DCMTK: parse with dcmdata, decompress the first frame with the registered
// codecs, then map stored values to 8-bit gray as documented in daug/data/dicom.h. The pixel pipeline is written
// here rather than taken from dcmimgle's DicomImage so that the min-max, "8-bit as stored" and rounding rules are
// the documented ones (DicomImage's default VOI maps the whole stored bit range, and its window code rounds
// differently).
#include <daug/data/dicom.h>
#include <daug/data/image.h>

#include <daug/error.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>

#ifdef DAUG_WITH_DCMTK
// DCMTK's configuration header must come first.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#endif

namespace daug::data {

bool is_dicom(const void* data, size_t size) {
  return size >= 132 && std::memcmp(static_cast<const char*>(data) + 128, "DICM", 4) == 0;
}

#ifndef DAUG_WITH_DCMTK
DicomGray8 decode_dicom(const void*, size_t, const std::string& name) {
  throw DataError(
      fmt::format("'{}' is a DICOM file, but this daug was built without DICOM support "
                  "(-DDAUG_DICOM=OFF; rebuild with libdcmtk-dev installed and DAUG_DICOM=ON)",
                  name));
}
#else
namespace {

void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs parse problems to stderr from any thread; they reach the caller as DataError text instead.
    OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();    // JPEG baseline, extended, lossless (dcmjpeg)
    DJLSDecoderRegistration::registerCodecs();  // JPEG-LS lossless and near-lossless (dcmjpls)
    DcmRLEDecoderRegistration::registerCodecs();
  });
}

// "(0028,0004) PhotometricInterpretation"
std::string tag_name(const DcmTagKey& key) {
  DcmTag tag(key);
  return fmt::format("({:04X},{:04X}) {}", key.getGroup(), key.getElement(), tag.getTagName());
}

class Reader {
 public:
  Reader(DcmItem* item, const std::string& file) : item_(item), file_(file) {}

  [[noreturn]] void fail(const DcmTagKey& key, const std::string& what) const {
    throw DataError(fmt::format("'{}': {} {}", file_, tag_name(key), what));
  }
  std::optional<Uint16> us(const DcmTagKey& key) const {
    Uint16 v = 0;
    if (!item_->tagExistsWithValue(key)) return std::nullopt;
    if (item_->findAndGetUint16(key, v).bad()) fail(key, "is not an unsigned 16-bit value (US)");
    return v;
  }
  Uint16 us_required(const DcmTagKey& key) const {
    auto v = us(key);
    if (!v) fail(key, "is missing (required for an image)");
    return *v;
  }
  std::optional<double> ds(const DcmTagKey& key, unsigned long pos = 0) const {
    if (!item_->tagExistsWithValue(key)) return std::nullopt;
    Float64 v = 0;
    OFString text;
    item_->findAndGetOFString(key, text, pos);
    if (item_->findAndGetFloat64(key, v, pos).bad() || !std::isfinite(v))
      fail(key, fmt::format("= '{}' is not a finite decimal number", text.c_str()));
    return v;
  }
  std::string str(const DcmTagKey& key) const {
    OFString v;
    if (item_->findAndGetOFString(key, v).bad()) return "";
    return v.c_str();
  }

 private:
  DcmItem* item_;
  const std::string& file_;
};

// A LUT of a Modality or VOI LUT Sequence item (PS3.3 C.11.1 / C.11.2): descriptor [entries, first mapped value,
// bits per entry] and LUTData.
struct Lut {
  std::vector<uint16_t> data;
  int64_t first = 0;
  int bits = 16;
  double operator()(double m) const {
    const double idx = std::floor(m + 0.5) - static_cast<double>(first);
    if (idx <= 0) return data.front();
    if (idx >= static_cast<double>(data.size() - 1)) return data.back();
    return data[static_cast<size_t>(idx)];
  }
};

[[noreturn]] void lut_fail(const std::string& file, const DcmTagKey& seq, const DcmTagKey& key,
                           const std::string& what) {
  throw DataError(fmt::format("'{}': {} item 1: {} {}", file, tag_name(seq), tag_name(key), what));
}

Lut read_lut(DcmItem* seq_item, const DcmTagKey& seq, bool signed_input, const std::string& file) {
  auto fail = [&](const DcmTagKey& key, const std::string& what) { lut_fail(file, seq, key, what); };
  DcmElement* desc = nullptr;
  if (seq_item->findAndGetElement(DCM_LUTDescriptor, desc).bad() || desc->getVM() != 3)
    fail(DCM_LUTDescriptor, "is missing or does not hold 3 values");
  Uint16 d[3] = {0, 0, 0};
  for (unsigned long i = 0; i < 3; ++i) {
    Sint16 s = 0;
    if (desc->getUint16(d[i], i).bad()) {
      if (desc->getSint16(s, i).bad()) fail(DCM_LUTDescriptor, "is not US or SS");
      d[i] = static_cast<Uint16>(s);
    }
  }
  Lut lut;
  const size_t n = d[0] == 0 ? 65536 : d[0];
  lut.first = signed_input || desc->ident() == EVR_SS ? static_cast<int64_t>(static_cast<int16_t>(d[1])) : d[1];
  lut.bits = d[2];
  if (lut.bits < 1 || lut.bits > 16)
    fail(DCM_LUTDescriptor, fmt::format("declares {} bits per entry; expected 1 to 16", lut.bits));
  const Uint16* raw = nullptr;
  unsigned long count = 0;
  if (seq_item->findAndGetUint16Array(DCM_LUTData, raw, &count).bad() || raw == nullptr)
    fail(DCM_LUTData, "is missing or not US/OW");
  lut.data.resize(n);
  if (count >= n) {
    std::copy(raw, raw + n, lut.data.begin());
  } else if (lut.bits <= 8 && count == (n + 1) / 2) {
    // 8-bit entries packed two per 16-bit word, the first in the low byte (PS3.3 C.11.1.1.1).
    for (size_t i = 0; i < n; ++i) lut.data[i] = (raw[i / 2] >> (8 * (i % 2))) & 0xFF;
  } else {
    fail(DCM_LUTData, fmt::format("holds {} values, but (0028,3002) LUTDescriptor declares {} entries", count, n));
  }
  const uint32_t top = (uint32_t{1} << lut.bits) - 1;
  for (size_t i = 0; i < n; ++i)
    if (lut.data[i] > top)
      fail(DCM_LUTData, fmt::format("entry {} = {} exceeds the {} bits per entry of (0028,3002) LUTDescriptor", i,
                                    lut.data[i], lut.bits));
  return lut;
}

std::optional<Lut> lut_of(DcmItem* ds, const DcmTagKey& seq, bool signed_input, const std::string& file) {
  DcmItem* item = nullptr;
  if (ds->findAndGetSequenceItem(seq, item, 0).bad() || item == nullptr) return std::nullopt;
  return read_lut(item, seq, signed_input, file);
}

// DCMTK 3.6.7's dcmjpeg reads the bit depth with a marker walk (DJCodecDecoder::scanJpegDataForBitDepth) that
// never advances past a TEM marker (FF01): a fragment whose walk reaches one hangs the decoder forever (found by
// the mutation test). This repeats that walk and says whether it would reach a TEM before it stops.
bool dcmjpeg_walk_hangs(const Uint8* data, Uint32 length) {
  if (data == nullptr) return false;
  auto be16 = [&](Uint32 at) { return static_cast<unsigned>(data[at] << 8 | data[at + 1]); };
  Uint32 offset = 0;
  while (offset + 4 < length) {
    const unsigned m = be16(offset);
    if (m == 0xFF01) return true;
    if (m >= 0xFFC0 && m <= 0xFFCF && m != 0xFFC4 && m != 0xFFC8 && m != 0xFFCC) return false;  // SOF: stops
    if (m == 0xFFC4 || m == 0xFFC8 || m == 0xFFCC || (m >= 0xFFDA && m <= 0xFFFE)) {
      offset += be16(offset + 2) + 2;  // a marker segment with a length
    } else if (m >= 0xFFD0 && m <= 0xFFD9) {
      offset += 2;  // RSTn, SOI, EOI
    } else if (m == 0xFFFF) {
      offset += 1;  // a fill byte (newer DCMTK); 3.6.7 stops here, so walking on only rejects more
    } else if (data[offset] == 0xFF && data[offset + 1] > 2 && data[offset + 1] <= 0xBF) {
      offset += 2;  // reserved markers
    } else {
      return false;  // DCMTK stops with a syntax error
    }
  }
  return false;
}

// The JPEG transfer syntaxes dcmjpeg decodes: 1.2.840.10008.1.2.4.50 to .70 (not JPEG-LS .80/.81).
bool is_dcmjpeg_syntax(const DcmXfer& xfer) {
  const std::string id = xfer.getXferID();
  const std::string prefix = "1.2.840.10008.1.2.4.";
  if (id.compare(0, prefix.size(), prefix) != 0 || id.size() != prefix.size() + 2) return false;
  const int n = std::atoi(id.c_str() + prefix.size());
  return n >= 50 && n <= 70;
}

// DCMTK 3.6.7's RLE decoder trusts the segment offsets of the RLE header (PS3.5 G.3.1: the number of segments,
// 1 to 15, then 15 offsets, the first 64, increasing) and reads out of bounds on one past the fragment (found by
// the mutation test). Returns what is wrong with the header of `data`, or "".
std::string rle_header_problem(const Uint8* data, Uint32 length) {
  if (data == nullptr || length < 64) return fmt::format("{} bytes, shorter than the 64-byte RLE header", length);
  auto le32 = [&](Uint32 at) {
    return static_cast<Uint32>(data[at]) | static_cast<Uint32>(data[at + 1]) << 8 |
           static_cast<Uint32>(data[at + 2]) << 16 | static_cast<Uint32>(data[at + 3]) << 24;
  };
  const Uint32 segments = le32(0);
  if (segments < 1 || segments > 15) return fmt::format("{} segments, expected 1 to 15", segments);
  Uint32 previous = 0;
  for (Uint32 i = 0; i < segments; ++i) {
    const Uint32 offset = le32(4 + 4 * i);
    if ((i == 0 && offset != 64) || (i > 0 && offset <= previous) || offset >= length)
      return fmt::format(
          "segment {} starts at offset {} (the first must be 64, the others increasing and inside "
          "the {}-byte fragment)",
          i + 1, offset, length);
    previous = offset;
  }
  return "";
}

uint8_t to8(double y) {
  if (!(y > 0)) return 0;  // also NaN
  if (y >= 255) return 255;
  return static_cast<uint8_t>(std::floor(y + 0.5));
}

}  // namespace

DicomGray8 decode_dicom(const void* data, size_t size, const std::string& name) {
  init_dcmtk();
  if (!dcmDataDict.isDictionaryLoaded())
    throw Error(
        fmt::format("'{}': DCMTK's data dictionary is not loaded (libdcmtk17 ships it as "
                    "/usr/share/libdcmtk17/dicom.dic; DCMDICTPATH overrides the path)",
                    name));
  DcmInputBufferStream in;
  in.setBuffer(data, static_cast<offile_off_t>(size));
  in.setEos();
  DcmFileFormat file;
  file.transferInit();
  // The whole buffer is in memory already: no deferred loading of large elements.
  OFCondition cond = file.read(in, EXS_Unknown, EGL_noChange, std::numeric_limits<Uint32>::max());
  file.transferEnd();
  DcmDataset* ds = file.getDataset();
  if (cond.bad()) {
    // The element being read when the data ran out (or broke) is the last one DCMTK inserted.
    std::string where;
    DcmItem* part =
        ds != nullptr && ds->card() > 0 ? static_cast<DcmItem*>(ds) : static_cast<DcmItem*>(file.getMetaInfo());
    if (part != nullptr && part->card() > 0)
      where = fmt::format(" in or after {}", tag_name(part->getElement(part->card() - 1)->getTag()));
    throw DataError(fmt::format("'{}': corrupt or truncated DICOM file: the parse stopped{} (DCMTK: {})", name, where,
                                cond.text()));
  }
  Reader r(ds, name);

  DcmElement* pixel_elem = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, pixel_elem).bad() || pixel_elem == nullptr) {
    const std::string sop = r.str(DCM_SOPClassUID);
    const char* sop_name = sop.empty() ? nullptr : dcmFindNameOfUID(sop.c_str());
    throw DataError(fmt::format("'{}': {} is missing: not an image ((0008,0016) SOPClassUID = '{}'{})", name,
                                tag_name(DCM_PixelData), sop, sop_name ? fmt::format(", {}", sop_name) : ""));
  }
  const Uint16 samples = r.us(DCM_SamplesPerPixel).value_or(1);
  const std::string photometric = r.str(DCM_PhotometricInterpretation);
  if (photometric != "MONOCHROME1" && photometric != "MONOCHROME2")
    r.fail(DCM_PhotometricInterpretation,
           fmt::format("= '{}': expected MONOCHROME1 or MONOCHROME2 (grayscale radiographs; colour images are not "
                       "converted)",
                       photometric));
  if (samples != 1) r.fail(DCM_SamplesPerPixel, fmt::format("= {}: expected 1 for {}", samples, photometric));
  const Uint16 rows = r.us_required(DCM_Rows), cols = r.us_required(DCM_Columns);
  if (rows == 0 || cols == 0) r.fail(rows == 0 ? DCM_Rows : DCM_Columns, "= 0: the image is empty");
  const int64_t limit = max_image_pixels();
  if (int64_t{rows} * cols > limit)
    throw DataError(fmt::format(
        "'{}': the DICOM header declares {}x{} = {} pixels ((0028,0011) Columns x (0028,0010) Rows), more than "
        "the limit of {} (daug::data::kDefaultMaxImagePixels; set DAUG_MAX_IMAGE_PIXELS to raise it for "
        "genuinely large images)",
        name, cols, rows, int64_t{rows} * cols, limit));
  const Uint16 allocated = r.us_required(DCM_BitsAllocated);
  if (allocated != 8 && allocated != 16) r.fail(DCM_BitsAllocated, fmt::format("= {}: expected 8 or 16", allocated));
  const Uint16 stored = r.us(DCM_BitsStored).value_or(allocated);
  if (stored < 1 || stored > allocated)
    r.fail(DCM_BitsStored, fmt::format("= {}: expected 1 to (0028,0100) BitsAllocated = {}", stored, allocated));
  const Uint16 high = r.us(DCM_HighBit).value_or(stored - 1);
  if (high + 1 < stored || high >= allocated)
    r.fail(DCM_HighBit, fmt::format("= {}: expected {} to {} for (0028,0101) BitsStored = {} and (0028,0100) "
                                    "BitsAllocated = {}",
                                    high, stored - 1, allocated - 1, stored, allocated));
  const Uint16 representation = r.us(DCM_PixelRepresentation).value_or(0);
  if (representation > 1)
    r.fail(DCM_PixelRepresentation, fmt::format("= {}: expected 0 (unsigned) or 1 (signed)", representation));
  const bool is_signed = representation == 1;
  Sint32 frames = 1;
  if (ds->tagExistsWithValue(DCM_NumberOfFrames) &&
      (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1))
    r.fail(DCM_NumberOfFrames, fmt::format("= '{}': expected a positive integer", r.str(DCM_NumberOfFrames)));

  // The first frame, decompressed by the registered codec when the transfer syntax is encapsulated.
  const size_t frame_bytes = static_cast<size_t>(rows) * cols * (allocated / 8);
  const DcmXfer xfer(ds->getOriginalXfer());
  if (!xfer.isEncapsulated() && pixel_elem->getLength() < frame_bytes)
    throw DataError(
        fmt::format("'{}': {} holds {} bytes, less than one frame of (0028,0010) Rows x (0028,0011) "
                    "Columns x (0028,0100) BitsAllocated / 8 = {} x {} x {} = {} bytes",
                    name, tag_name(DCM_PixelData), pixel_elem->getLength(), rows, cols, allocated / 8, frame_bytes));
  // Checks of the compressed fragments that DCMTK 3.6.7's decoders get wrong (a hang, an out-of-bounds read).
  const bool jpeg = is_dcmjpeg_syntax(xfer), rle = xfer.getXfer() == EXS_RLELossless;
  DcmPixelSequence* seq = nullptr;
  if ((jpeg || rle) &&
      static_cast<DcmPixelData*>(pixel_elem)->getEncapsulatedRepresentation(xfer.getXfer(), nullptr, seq).good() &&
      seq != nullptr) {
    for (unsigned long i = 1; i < seq->card(); ++i) {  // item 0 is the offset table
      DcmPixelItem* item = nullptr;
      Uint8* bytes = nullptr;
      if (seq->getItem(item, i).bad() || item->getUint8Array(bytes).bad()) continue;
      if (jpeg && dcmjpeg_walk_hangs(bytes, item->getLength()))
        throw DataError(
            fmt::format("'{}': {} fragment {}: the JPEG stream has a TEM marker (FF01) before its "
                        "frame header, which DCMTK 3.6.7's JPEG decoder cannot get past; not a valid "
                        "DICOM JPEG stream",
                        name, tag_name(DCM_PixelData), i));
      if (rle) {
        const std::string problem = rle_header_problem(bytes, item->getLength());
        if (!problem.empty())
          throw DataError(
              fmt::format("'{}': {} fragment {}: invalid RLE header: {}", name, tag_name(DCM_PixelData), i, problem));
      }
    }
  }
  std::vector<Uint8> buffer(frame_bytes + (frame_bytes & 1));
  OFString colour;
  Uint32 fragment = 0;
  cond = static_cast<DcmPixelData*>(pixel_elem)
             ->getUncompressedFrame(ds, 0, fragment, buffer.data(), static_cast<Uint32>(buffer.size()), colour);
  if (cond.bad())
    throw DataError(
        fmt::format("'{}': cannot decode the first frame of {} (transfer syntax {} = '{}'; this build "
                    "decodes uncompressed, deflated, JPEG, JPEG-LS and RLE): DCMTK: {}",
                    name, tag_name(DCM_PixelData), xfer.getXferID(), xfer.getXferName(), cond.text()));

  DicomGray8 out;
  out.height = rows;
  out.width = cols;
  out.photometric = photometric;
  out.frames = frames;
  const size_t n = static_cast<size_t>(rows) * cols;
  const int shift = high + 1 - stored;
  const uint32_t mask = (uint32_t{1} << stored) - 1;
  const uint32_t sign_bit = uint32_t{1} << (stored - 1);
  // Every step below depends on the stored value only, so it fills a table over the 2^BitsStored levels (at most
  // 65536) that the pixels then index: the same values as mapping each pixel, without per-pixel arithmetic.
  auto raw_at = [&](size_t i) -> uint32_t {
    uint32_t raw;
    if (allocated == 8) {
      raw = buffer[i];
    } else {
      uint16_t v;
      std::memcpy(&v, buffer.data() + 2 * i, 2);  // host byte order (getUncompressedFrame swaps)
      raw = v;
    }
    return (raw >> shift) & mask;
  };
  auto value_of = [&](uint32_t raw) -> int32_t {  // two's complement when signed
    if (is_signed && (raw & sign_bit)) return static_cast<int32_t>(raw) - static_cast<int32_t>(mask) - 1;
    return static_cast<int32_t>(raw);
  };
  const size_t levels = size_t{mask} + 1;
  std::vector<uint8_t> table(levels);

  // Modality transform.
  const std::optional<Lut> modality_lut = lut_of(ds, DCM_ModalityLUTSequence, is_signed, name);
  const double slope = r.ds(DCM_RescaleSlope).value_or(1.0), intercept = r.ds(DCM_RescaleIntercept).value_or(0.0);
  auto modality = [&](uint32_t raw) -> double {
    const int32_t x = value_of(raw);
    if (modality_lut) return (*modality_lut)(x);
    return slope * x + intercept;
  };
  // A VOI LUT is indexed by modality values: signed when a rescale can make them negative.
  const bool modality_signed = modality_lut ? false : (is_signed || intercept < 0 || slope < 0);

  if (const std::optional<Lut> voi = lut_of(ds, DCM_VOILUTSequence, modality_signed, name)) {
    out.voi = DicomVoi::voi_lut;
    const double scale = 255.0 / static_cast<double>((uint32_t{1} << voi->bits) - 1);
    for (uint32_t v = 0; v < levels; ++v) table[v] = to8((*voi)(modality(v)) * scale);
  } else if (ds->tagExistsWithValue(DCM_WindowCenter) || ds->tagExistsWithValue(DCM_WindowWidth)) {
    out.voi = DicomVoi::window;
    const auto c = r.ds(DCM_WindowCenter), w = r.ds(DCM_WindowWidth);
    if (!c) r.fail(DCM_WindowCenter, "is missing, but (0028,1051) WindowWidth is present");
    if (!w) r.fail(DCM_WindowWidth, "is missing, but (0028,1050) WindowCenter is present");
    std::string function = r.str(DCM_VOILUTFunction);
    if (function.empty()) function = "LINEAR";
    const double center = *c, width = *w;
    if (function == "LINEAR") {
      if (width < 1) r.fail(DCM_WindowWidth, fmt::format("= {}: expected >= 1 for a LINEAR window", width));
      // PS3.3 C.11.2.1.2.1, output range [0, 255].
      const double lo = center - 0.5 - (width - 1) / 2, hi = center - 0.5 + (width - 1) / 2;
      for (uint32_t v = 0; v < levels; ++v) {
        const double x = modality(v);
        table[v] = x <= lo ? 0 : x > hi ? 255 : to8(((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0);
      }
    } else if (function == "LINEAR_EXACT") {
      if (!(width > 0)) r.fail(DCM_WindowWidth, fmt::format("= {}: expected > 0 for a LINEAR_EXACT window", width));
      // C.11.2.1.3.2
      for (uint32_t v = 0; v < levels; ++v) {
        const double x = modality(v);
        table[v] = x <= center - width / 2  ? 0
                   : x > center + width / 2 ? 255
                                            : to8(((x - center) / width + 0.5) * 255.0);
      }
    } else if (function == "SIGMOID") {
      if (!(width > 0)) r.fail(DCM_WindowWidth, fmt::format("= {}: expected > 0 for a SIGMOID window", width));
      // C.11.2.1.3.1
      for (uint32_t v = 0; v < levels; ++v)
        table[v] = to8(255.0 / (1.0 + std::exp(-4.0 * (modality(v) - center) / width)));
    } else {
      r.fail(DCM_VOILUTFunction, fmt::format("= '{}': expected LINEAR, LINEAR_EXACT or SIGMOID", function));
    }
  } else if (stored == 8 && !is_signed && !modality_lut && slope == 1.0 && intercept == 0.0) {
    out.voi = DicomVoi::as_stored;
    for (uint32_t v = 0; v < levels; ++v) table[v] = static_cast<uint8_t>(v);
  } else {
    // Min-max over the levels that occur in the frame.
    out.voi = DicomVoi::min_max;
    std::vector<uint8_t> seen(levels, 0);
    for (size_t i = 0; i < n; ++i) seen[raw_at(i)] = 1;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (uint32_t v = 0; v < levels; ++v)
      if (seen[v]) {
        const double m = modality(v);
        lo = std::min(lo, m);
        hi = std::max(hi, m);
      }
    const double range = hi - lo;
    for (uint32_t v = 0; v < levels; ++v) table[v] = range > 0 ? to8((modality(v) - lo) / range * 255.0) : 0;
  }
  if (photometric == "MONOCHROME1")
    for (auto& t : table) t = static_cast<uint8_t>(255 - t);
  out.pixels.resize(n);
  for (size_t i = 0; i < n; ++i) out.pixels[i] = table[raw_at(i)];
  return out;
}
#endif  // DAUG_WITH_DCMTK

}  // namespace daug::data
