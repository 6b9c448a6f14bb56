// DICOM decoding (libs/data dicom.h: DCMTK's parser and its JPEG / JPEG-LS / RLE decoders, then daug's modality,
// VOI and photometric mapping), from memory and through the image loader as a Source's .dcm file is read.
#include "fuzz_target.h"

#include <daug/data/dataset.h>
#include <daug/data/dicom.h>

#include <ATen/ATen.h>

DAUG_FUZZ_TARGET(dicom) {
  const daug::data::DicomGray8 g = daug::data::decode_dicom(data, size, "fuzz.dcm");
  DAUG_FUZZ_ASSERT(g.height > 0 && g.width > 0, "dicom");
  DAUG_FUZZ_ASSERT(g.pixels.size() == static_cast<size_t>(g.height * g.width), "dicom");
  DAUG_FUZZ_ASSERT(g.photometric == "MONOCHROME1" || g.photometric == "MONOCHROME2", "dicom");
  DAUG_FUZZ_ASSERT(g.frames >= 1, "dicom");
  // The same bytes as a file: decoded again (deterministic) and resized to a model input.
  daug::Sample s;
  s.id = "fuzz";
  s.image = daug::fuzz::write_scratch("image.dcm", data, size);
  const at::Tensor gray = daug::data::load_sample_image(s, 16, 16, daug::data::Filter::bilinear);
  DAUG_FUZZ_ASSERT(gray.sizes() == at::IntArrayRef({1, 16, 16}), "dicom");
  DAUG_FUZZ_ASSERT(gray.min().item<float>() >= 0.f && gray.max().item<float>() <= 1.f, "dicom");
}
