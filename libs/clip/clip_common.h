#pragma once
/// Code shared by the CLIP fine-tuning plugins (composer_channel, criterion_clip, criterion_hybrid,
/// stage_train_clip, stage_evaluate, stage_report): CLIP pixel preprocessing as the released DAug code does it,
/// the released class prompts, the two losses and heatmap file lookup. (AdamW with per-parameter decay and the
/// HF cosine-with-warmup schedule are libs/train.) Static PIC library `daug_clip_shared`; no <torch/torch.h> here.
///
/// References: DAug (Jin et al.) and drjinying/DAug `daug/model.py`, `daug/mimic.py`, `daug/main.py`
/// (REFERENCE.md §1.3).
#include <daug/criterion.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug::clip {

/// CLIP's per-channel normalisation (openai/CLIP clip.py, HF CLIPImageProcessor).
inline constexpr std::array<double, 3> kClipMean = {0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kClipStd = {0.26862954, 0.26130258, 0.27577711};

/// The 14 class prompts of the released code (daug/main.py:37-55), verbatim: the punctuation is
/// inconsistent on purpose (some end with '.', some do not), as released. kChexpertClasses order.
const std::vector<std::string>& released_prompts();

/// Released image preprocessing on an already decoded image: `rgb` is [3,H,W] (or [1,H,W], gray replicated)
/// float in [0,1]. Direct resize to size×size (bicubic, antialiased, aspect NOT kept, no crop), re-quantised to
/// the 8-bit grid as PIL returns uint8, then (x − mean[c]) / std[c]. Returns float32 [3,size,size].
at::Tensor preprocess_pixels(const at::Tensor& rgb, int64_t size);

/// Resizes a raw heatmap ([H,W], [1,H,W] or [C,H,W]; channel 0 is used) to [1,size,size] float32 with
/// bicubic antialiased interpolation (clamped to the input's range). The min-max / uint8 / normalisation
/// steps are the composer's job (composer_channel).
at::Tensor resize_heatmap(const at::Tensor& heat, int64_t size);

/// The released heatmap loading (daug/mimic.py:191-199 + CLIPImageProcessor): channel 0 of a raw heatmap
/// ([H,W], [1,H,W] or [C,H,W]) min-maxed at its native size (a constant map → 0), truncated to uint8 as
/// `np.uint8(x*255)`, then resized to size×size with bicubic antialiasing as PIL does on the 8-bit image
/// (rounded and clamped to 0..255). Returns [1,size,size] float32 in [0,1] on the 1/255 grid.
at::Tensor quantize_resize_heatmap(const at::Tensor& heat, int64_t size);

/// Per-image min-max of [N,1,H,W] (a constant map → 0) followed by uint8 truncation as
/// `np.uint8(x*255)` does, returned in [0,1] on the 1/255 grid.
at::Tensor minmax_uint8(const at::Tensor& maps);

/// CLIP loss ½[CE(s·T·Iᵀ, arange) + CE(s·I·Tᵀ, arange)] on L2-normalised [B,D] embeddings; `scale` is s itself
/// (not its log), a scalar tensor or a double.
at::Tensor clip_loss(const at::Tensor& image_emb, const at::Tensor& text_emb, const at::Tensor& scale);
/// mean over B×K of BCEWithLogits(s·I·Cᵀ, labels) (daug/model.py:130,141).
at::Tensor class_bce_loss(const at::Tensor& image_emb, const at::Tensor& class_emb, const at::Tensor& labels,
                          const at::Tensor& scale);

/// The criterion evaluated on consecutive groups of `group` rows of the batch (the image, text and label rows; the
/// class embeddings are shared) and averaged: loss = mean over groups of the per-group loss, each part likewise.
/// This is what DDP does with a per-GPU contrastive loss (released: 8 GPUs × 32, gradients averaged), in one
/// process. `group` = 0 or the batch size = one group (the plain loss). The batch must be a multiple of `group`.
CriterionOutput grouped_criterion(Criterion& criterion, const CriterionInput& in, int64_t group);

/// L2-normalises the rows of [N,D].
at::Tensor l2_normalize(const at::Tensor& x);

/// [N,K] float labels from per-sample label vectors; NaN (unknown) → 0 as the released loader treats blank and
/// uncertain labels as negative. `nan_count` (optional) receives how many entries were NaN.
at::Tensor labels_tensor(const std::vector<const std::vector<float>*>& labels, int64_t* nan_count = nullptr);

}  // namespace daug::clip
