#pragma once
/// Backbone: an image tower and a text tower mapping into one embedding space (CLIP).
#include <daug/component.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstdint>
#include <string>
#include <vector>

namespace daug {

class DAUG_SDK_API Backbone : public Component, public Trainable {
 public:
  static constexpr const char* kInterface = "Backbone";
  ~Backbone() override;
  /// [N,3,S,S] preprocessed pixels (S = image_size()) → [N,D] embeddings, NOT L2-normalised.
  /// A wrong shape throws daug::Error naming expected and found shapes.
  virtual at::Tensor encode_image(const at::Tensor& pixels) = 0;
  /// [N,L] int64 token ids (L <= context_length()) → [N,D], NOT L2-normalised.
  virtual at::Tensor encode_text(const at::Tensor& tokens) = 0;
  /// Tokenises texts to [N,L] int64 (start/end tokens added, padded); texts longer than the context are
  /// truncated keeping the end token, and that is logged.
  virtual at::Tensor tokenize(const std::vector<std::string>& texts) = 0;
  virtual int64_t image_size() const = 0;
  virtual int64_t context_length() const = 0;
  virtual int64_t embed_dim() const = 0;
  /// log of the contrastive logit scale (scalar tensor; a parameter when learned).
  virtual at::Tensor logit_scale() = 0;
  /// Loads pretrained weights (format detected from the file); positions are resampled when sizes differ.
  virtual void load_weights(const std::string& path) = 0;
};

}  // namespace daug
