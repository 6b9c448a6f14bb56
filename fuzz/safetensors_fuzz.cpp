// safetensors reader (sdk/src/checkpoint.cpp): header length, JSON header, dtypes, shapes, data_offsets.
#include "fuzz_target.h"

#include <daug/checkpoint.h>

#include <ATen/ATen.h>

DAUG_FUZZ_TARGET(safetensors) {
  const auto path = daug::fuzz::write_scratch("weights.safetensors", data, size);
  const daug::SafetensorsFile f = daug::load_safetensors(path);
  // Every accepted tensor lies inside the file: its bytes were read from it.
  uint64_t bytes = 0;
  for (const auto& [name, t] : f.tensors) {
    DAUG_FUZZ_ASSERT(t.defined() && t.is_contiguous(), "safetensors");
    bytes += static_cast<uint64_t>(t.numel()) * t.element_size();
    DAUG_FUZZ_ASSERT(bytes <= size, "safetensors");
  }
}
