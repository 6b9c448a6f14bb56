// daug's strict torch.save reader (sdk/src/torch_zip.cpp) on raw file bytes: zip store, data.pkl, storages,
// state-dict search. The TorchScript check (is_torchscript_zip) on the same bytes.
#include "fuzz_target.h"

#include <daug/torch_zip.h>

#include <ATen/ATen.h>

DAUG_FUZZ_TARGET(torch_save) {
  (void)daug::is_torchscript_zip(data, size);
  const daug::TorchStateDict sd = daug::parse_torch_zip(data, size, "fuzz.pt");
  for (const auto& [name, t] : sd.tensors) {
    DAUG_FUZZ_ASSERT(!name.empty() && t.defined() && t.is_contiguous() && t.device().is_cpu(), "torch_save");
  }
}
