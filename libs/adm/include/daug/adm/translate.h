#pragma once
/// The encode/decode schedule of a translation (DAug heatmaps, Wolleb's anomaly maps) as one pure function over
/// a GaussianDiffusion and a model callback: take x0 to noise level L (DDIM inversion or one q_sample draw), then
/// decode back to 0 (DDIM or DDPM ancestral steps) with optional guidance. Used by the `ddpm` generator and by
/// examples/compose_in_code; testable with a closed-form model_fn, no UNet needed.
///
/// Index patterns (J = the index of L in the respaced process, `diffusion.index_of(L)`):
///
///   IndexPattern::released (the released code; the generator's exact_index_pattern = true):
///     DDIM:  x = q_sample(x0, index 0, noise); reverse steps at 1..J-1; guided DDIM steps at J-2..0
///     DDPM:  x = q_sample(x0, index J-1, noise); guided p_sample at J-1..0
///   IndexPattern::matched (exact inverse levels; exact_index_pattern = false):
///     DDIM:  x = x0; reverse steps at 0..J-1; guided DDIM steps at J..1
///     DDPM:  x = q_sample(x0, index J, noise); guided p_sample at J..0
///
/// Random draws come from the global ATen generator, in this order: the q_sample noise (randn_like(x0)), then per
/// decode step the DDPM noise, or the DDIM noise when eta > 0. Every step records NaN/Inf per batch item on the
/// device; the record is read at the end of each phase (encode, decode: no host sync per step) and a non-finite
/// result names the batch items and the first step at which they went bad.
///
/// Example:
///   adm::TranslateOptions o;            // DDIM inversion, matched pattern, clip_denoised, eta 0
///   o.clip_denoised = false;
///   at::Tensor x_hat = adm::translate(diffusion, model, x0, /*noise_level=*/500, &grad, o);
#include <daug/adm/diffusion.h>
#include <daug/generator.h>
#include <daug/tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace daug::adm {

/// Where the encode and decode loops start and stop (see the file comment).
enum class IndexPattern {
  matched,   ///< encode 0..J-1, decode J..1 (DDIM): the decode steps invert the encode steps level for level
  released,  ///< the released code's off-by-one pattern: q_sample(x0, 0), encode 1..J-1, decode J-2..0 (DDIM)
};

struct TranslateOptions {
  EncodeMode encode = EncodeMode::ddim_inversion;  ///< DDIM inversion + DDIM decode, or q_sample + DDPM decode
  IndexPattern pattern = IndexPattern::matched;
  bool clip_denoised = true;  ///< clamp x̂0 to [-1, 1] in every step
  double eta = 0.0;           ///< DDIM η of the decode steps (0 = deterministic)
  /// Run the guidance gradient of each guided decode step on a second thread while the calling thread runs the
  /// model forward (both depend only on x_t). Same results: each side runs the same ops, only on its own thread.
  bool concurrent_guidance = false;
  /// Intra-op threads of the guidance thread when concurrent_guidance; the calling thread keeps
  /// max(1, at::get_num_threads() − guidance_threads) for the model (so with 1 thread in total it uses 2).
  int64_t guidance_threads = 1;
  // For error messages only:
  std::string what = "translate";  ///< prefix, e.g. "ddpm translate"
  std::string respacing;           ///< the respacing spec the process was built from, e.g. "ddim100"
};

/// Overlaps the model forward and the guidance gradient of one step (both are functions of the same x_t): calling
/// model()(x, t) hands grad(x, t) to a worker thread (with the caller's thread-local state: grad mode, autocast)
/// and then runs the model on the calling thread; the next grad()(x, t) for the same x returns the worker's
/// result (any other call computes directly). While it lives the calling thread runs with
/// max(1, n − guidance_threads) intra-op threads (n = at::get_num_threads() at construction), restored by the
/// destructor, which also joins the worker. The wrapped functions are for one thread (the sampler's).
class ConcurrentGuidance {
 public:
  ConcurrentGuidance(ModelFn model, GradFn grad, int64_t guidance_threads);
  ~ConcurrentGuidance();
  ConcurrentGuidance(const ConcurrentGuidance&) = delete;
  ConcurrentGuidance& operator=(const ConcurrentGuidance&) = delete;
  const ModelFn& model() const { return model_fn_; }
  const GradFn& grad() const { return grad_fn_; }

 private:
  struct Worker;
  std::unique_ptr<Worker> worker_;
  ModelFn model_fn_;
  GradFn grad_fn_;
  int caller_threads_ = 1;
};

/// J = diffusion.index_of(noise_level), after checking 1 <= noise_level < T (ConfigError "noise_level must be in
/// [1, T-1]") and that noise_level is a kept timestep (ConfigError naming the nearest kept timesteps).
int64_t noise_level_index(const GaussianDiffusion& diffusion, int64_t noise_level, const TranslateOptions& opts);

/// Encodes x0 [N,C,H,W] to ORIGINAL timestep `noise_level` and decodes it back with `grad` (nullptr: unguided).
/// `model` and `grad` receive ORIGINAL timesteps. Returns x̂0 [N,C,H,W] on x0's device. Throws
/// ConfigError for a bad noise level and DataError for non-finite input or a non-finite step result. Runs under
/// whatever grad mode the caller set (the generator and the example call it under at::NoGradGuard).
at::Tensor translate(const GaussianDiffusion& diffusion, const ModelFn& model, const at::Tensor& x0,
                     int64_t noise_level, const GradFn* grad, const TranslateOptions& opts = {});

}  // namespace daug::adm
