#pragma once
// Header-only (no gtest, no daug libraries): writes DICOM fixtures with DCMTK itself (DcmFileFormat, its encoders
// for the compressed transfer syntaxes), for tests that link DCMTK::dcmdata, DCMTK::dcmjpeg and DCMTK::dcmjpls.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrss.h>
#include <dcmtk/dcmdata/dcvrus.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpeg/djrploss.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace daug::testing {

/// A LUT item of a Modality or VOI LUT Sequence.
struct DicomLut {
  uint16_t entries = 0;  ///< LUTDescriptor[0] (0 = 65536)
  uint16_t first = 0;    ///< LUTDescriptor[1] as written (an SS descriptor holds it as int16)
  uint16_t bits = 16;    ///< LUTDescriptor[2]
  bool ss_descriptor = false;
  std::vector<uint16_t> data;  ///< LUTData (US)
};

/// One grayscale image (or several frames) and the attributes a test varies.
struct DicomSpec {
  uint16_t rows = 0, cols = 0;
  uint16_t bits_allocated = 8, bits_stored = 8, high_bit = 7, pixel_representation = 0;
  uint16_t samples_per_pixel = 1;
  std::string photometric = "MONOCHROME2";
  int frames = 1;               ///< NumberOfFrames is written when > 1
  std::vector<uint8_t> bytes;   ///< BitsAllocated 8: rows·cols·frames values
  std::vector<uint16_t> words;  ///< BitsAllocated 16: rows·cols·frames words (bit patterns as stored)
  bool pixel_data = true;       ///< false: no PixelData (a non-image object)
  std::string sop_class = UID_SecondaryCaptureImageStorage;
  std::vector<std::pair<DcmTagKey, std::string>> strings;  ///< extra attributes, e.g. {DCM_WindowCenter, "40"}
  std::optional<DicomLut> voi_lut, modality_lut;
};

/// How the file is written.
enum class DicomSyntax {
  explicit_le,
  implicit_le,
  big_endian,
  deflated,
  jpeg_baseline,
  jpeg_lossless,
  jpeg_ls_lossless,
  rle,
  no_meta_header  ///< the bare dataset (explicit little endian), without preamble and meta header
};

inline void register_dicom_encoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

inline OFCondition put_lut(DcmDataset* ds, const DcmTagKey& seq, const DicomLut& lut) {
  DcmItem* item = nullptr;
  OFCondition c = ds->findOrCreateSequenceItem(seq, item, -2);
  if (c.bad()) return c;
  if (lut.ss_descriptor) {
    auto* e = new DcmSignedShort(DcmTag(DCM_LUTDescriptor, EVR_SS));
    const Sint16 d[3] = {static_cast<Sint16>(lut.entries), static_cast<Sint16>(lut.first),
                         static_cast<Sint16>(lut.bits)};
    e->putSint16Array(d, 3);
    c = item->insert(e, true);
  } else {
    auto* e = new DcmUnsignedShort(DcmTag(DCM_LUTDescriptor, EVR_US));
    const Uint16 d[3] = {lut.entries, lut.first, lut.bits};
    e->putUint16Array(d, 3);
    c = item->insert(e, true);
  }
  if (c.good()) {
    auto* e = new DcmUnsignedShort(DcmTag(DCM_LUTData, EVR_US));
    e->putUint16Array(lut.data.data(), static_cast<unsigned long>(lut.data.size()));
    c = item->insert(e, true);
  }
  return c;
}

/// Writes `spec` to `path` in `syntax`. Returns "" on success, else what failed.
inline std::string write_dicom_file(const std::filesystem::path& path, const DicomSpec& spec,
                                    DicomSyntax syntax = DicomSyntax::explicit_le) {
  register_dicom_encoders();
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  char uid[100];
  OFCondition c = EC_Normal;
  auto str = [&](const DcmTagKey& k, const std::string& v) {
    if (c.good()) c = ds->putAndInsertString(k, v.c_str());
  };
  auto us = [&](const DcmTagKey& k, uint16_t v) {
    if (c.good()) c = ds->putAndInsertUint16(k, v);
  };
  str(DCM_SOPClassUID, spec.sop_class);
  str(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  str(DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT));
  str(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT));
  str(DCM_Modality, spec.pixel_data ? "OT" : "SR");
  if (spec.pixel_data) {
    us(DCM_SamplesPerPixel, spec.samples_per_pixel);
    str(DCM_PhotometricInterpretation, spec.photometric);
    us(DCM_Rows, spec.rows);
    us(DCM_Columns, spec.cols);
    us(DCM_BitsAllocated, spec.bits_allocated);
    us(DCM_BitsStored, spec.bits_stored);
    us(DCM_HighBit, spec.high_bit);
    us(DCM_PixelRepresentation, spec.pixel_representation);
    if (spec.frames > 1) str(DCM_NumberOfFrames, std::to_string(spec.frames));
  }
  for (const auto& [k, v] : spec.strings) str(k, v);
  if (c.good() && spec.voi_lut) c = put_lut(ds, DCM_VOILUTSequence, *spec.voi_lut);
  if (c.good() && spec.modality_lut) c = put_lut(ds, DCM_ModalityLUTSequence, *spec.modality_lut);
  if (c.good() && spec.pixel_data) {
    if (spec.bits_allocated == 8)
      c = ds->putAndInsertUint8Array(DCM_PixelData, spec.bytes.data(), static_cast<unsigned long>(spec.bytes.size()));
    else
      c = ds->putAndInsertUint16Array(DCM_PixelData, spec.words.data(), static_cast<unsigned long>(spec.words.size()));
  }
  if (c.bad()) return std::string("building the dataset: ") + c.text();

  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  const DJ_RPLossy lossy(90);
  const DJ_RPLossless lossless(1, 0);
  const DJLSRepresentationParameter ls(0, OFTrue);
  const DcmRLERepresentationParameter rle;
  const DcmRepresentationParameter* param = nullptr;
  switch (syntax) {
    case DicomSyntax::explicit_le:
    case DicomSyntax::no_meta_header:
      break;
    case DicomSyntax::implicit_le:
      xfer = EXS_LittleEndianImplicit;
      break;
    case DicomSyntax::big_endian:
      xfer = EXS_BigEndianExplicit;
      break;
    case DicomSyntax::deflated:
      xfer = EXS_DeflatedLittleEndianExplicit;
      break;
    case DicomSyntax::jpeg_baseline:
      xfer = EXS_JPEGProcess1;
      param = &lossy;
      break;
    case DicomSyntax::jpeg_lossless:
      xfer = EXS_JPEGProcess14SV1;
      param = &lossless;
      break;
    case DicomSyntax::jpeg_ls_lossless:
      xfer = EXS_JPEGLSLossless;
      param = &ls;
      break;
    case DicomSyntax::rle:
      xfer = EXS_RLELossless;
      param = &rle;
      break;
  }
  if (param != nullptr) {
    c = ds->chooseRepresentation(xfer, param);
    if (c.bad()) return std::string("compressing: ") + c.text();
    if (!ds->canWriteXfer(xfer)) return "cannot write the compressed transfer syntax";
  }
  if (syntax == DicomSyntax::no_meta_header) c = ds->saveFile(path.c_str(), xfer);
  else c = file.saveFile(path.c_str(), xfer);
  return c.good() ? "" : std::string("saving: ") + c.text();
}

}  // namespace daug::testing
