// CLIP weight files as `backbone_clip_vit` reads them (plugins/backbone_clip_vit/clip_weights.cpp), format
// detected from the bytes: a zip goes to torch::jit::load, then torch::jit::pickle_load (TorchScript archive or
// torch.save'd state dict); anything else to the safetensors reader and the Hugging Face name mapping.
#include "fuzz_target.h"

#include "clip_weights.h"

DAUG_FUZZ_TARGET(clip_weights) {
  const auto path = daug::fuzz::write_scratch("weights.pt", data, size);
  namespace clip = daug::plugins::clip;
  clip::WeightsFormat used{};
  const daug::NamedTensors t = clip::read_clip_weights(path.string(), clip::WeightsFormat::automatic, &used);
  DAUG_FUZZ_ASSERT(used != clip::WeightsFormat::automatic, "clip_weights");
}
