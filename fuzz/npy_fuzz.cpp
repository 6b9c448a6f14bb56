// .npy reader (libs/data/src/npy.cpp): magic, version, header length, header dict, dtype, shape, payload size.
#include "fuzz_target.h"

#include <daug/data/npy.h>

#include <ATen/ATen.h>

DAUG_FUZZ_TARGET(npy) {
  const auto path = daug::fuzz::write_scratch("array.npy", data, size);
  const at::Tensor t = daug::data::load_npy(path);
  DAUG_FUZZ_ASSERT(t.defined(), "npy");
  DAUG_FUZZ_ASSERT(static_cast<uint64_t>(t.numel()) * t.element_size() <= size, "npy");
}
