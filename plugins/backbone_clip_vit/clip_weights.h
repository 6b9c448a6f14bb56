#pragma once
/// Reading CLIP weights into OpenAI-named float32 tensors, from
///  * the OpenAI TorchScript archive (ViT-B-32.pt; fp16 cast to fp32; input_resolution / context_length /
///    vocab_size entries ignored), or any torch.save'd state dict in the zip format (an OpenAI/open_clip
///    state_dict() or a Hugging Face pytorch_model.bin; HF names are mapped as below),
///  * a Hugging Face CLIPModel safetensors file (REFERENCE §4.2 key table: q/k/v concatenated into
///    in_proj, projections transposed, position_ids ignored, "pre_layrnorm" spelling),
///  * daug's own safetensors checkpoints (Trainable::state() names = OpenAI names).
#include "clip_model.h"

#include <daug/trainable.h>

#include <string>

namespace daug::plugins::clip {

enum class WeightsFormat { automatic, openai, hf, daug };
WeightsFormat parse_weights_format(const std::string& s);
const char* weights_format_name(WeightsFormat f);

/// Detects the format from the file: a zip archive ("PK\3\4") is openai (TorchScript or torch.save); a safetensors file
/// with vision_model./text_model. keys is hf, otherwise daug. A missing file throws daug::DataError.
WeightsFormat detect_weights_format(const std::string& path);

/// Reads `path` in format `fmt` (automatic = detect) into OpenAI-named float32 CPU tensors. Any unknown key,
/// incomplete q/k/v triple or unreadable file throws daug::DataError naming the file and the key.
NamedTensors read_clip_weights(const std::string& path, WeightsFormat fmt, WeightsFormat* used = nullptr);

/// Maps Hugging Face CLIPModel tensors to OpenAI names (`source` names the file in errors).
NamedTensors hf_to_openai(const NamedTensors& hf, const std::string& source);

/// Copies OpenAI-named `src` into `model`: positional tables whose length differs from the model's are
/// resampled first (vision grid g0×g0 -> g×g keeping the class token; text 1×L0 -> 1×L). With
/// `take_logit_scale` false the model keeps its current logit_scale. Missing / unexpected / mis-shaped keys
/// throw daug::DataError naming `source` and the key; nothing is modified then.
void load_openai_state(ClipModel& model, NamedTensors src, const std::string& source, PosInterp interp,
                       bool take_logit_scale);

}  // namespace daug::plugins::clip
