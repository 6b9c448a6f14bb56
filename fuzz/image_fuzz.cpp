// PNG/JPEG decoding through the data layer (libs/data: load_sample_image -> load_gray / load_rgb /
// load_gray_reduced -> libpng / libjpeg-turbo, then resize), as a Source's image file is read.
#include "fuzz_target.h"

#include <daug/data/dataset.h>

#include <ATen/ATen.h>

DAUG_FUZZ_TARGET(image) {
  daug::Sample s;
  s.id = "fuzz";
  s.image = daug::fuzz::write_scratch("image.img", data, size);
  // gray full decode, DCT-reduced gray decode, RGB decode; each resized to the model input as a stage does.
  const at::Tensor gray = daug::data::load_sample_image(s, 24, 24, daug::data::Filter::bicubic);
  DAUG_FUZZ_ASSERT(gray.sizes() == at::IntArrayRef({1, 24, 24}), "image");
  DAUG_FUZZ_ASSERT(gray.isfinite().all().item<bool>(), "image");
  const at::Tensor reduced = daug::data::load_sample_image(s, 16, 16, daug::data::Filter::bilinear, false, true);
  DAUG_FUZZ_ASSERT(reduced.sizes() == at::IntArrayRef({1, 16, 16}), "image");
  const at::Tensor rgb = daug::data::load_sample_image(s, 8, 8, daug::data::Filter::area, true);
  DAUG_FUZZ_ASSERT(rgb.sizes() == at::IntArrayRef({3, 8, 8}), "image");
  DAUG_FUZZ_ASSERT(rgb.min().item<float>() >= 0.f && rgb.max().item<float>() <= 1.f, "image");
}
