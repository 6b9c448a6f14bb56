#pragma once
/// Gaussian diffusion math of guided-diffusion (openai/guided-diffusion gaussian_diffusion.py, respace.py,
/// losses.py) for ε-prediction models: schedules, respacing, q_sample, posterior, p_mean_variance, guided
/// DDPM/DDIM steps, DDIM inversion and the training loss. REFERENCE.md §2.3, §3.1–3.4.
///
/// Conventions (as guided-diffusion):
///  * index `t` of every step function is an index into THIS (possibly respaced) process, 0..num_steps()-1;
///    x at index t has noise level ᾱ_t, and "t = 0 means one step of diffusion": the clean image is below t=0.
///  * the model and the guidance are always called with ORIGINAL timesteps, timestep_map()[t]
///    (guided-diffusion's _WrappedModel; for the guidance this fixes Wolleb's condition_score2 latent bug).
///  * schedule arrays are float64; per-step coefficients are cast to x's dtype and broadcast to [N,1,1,1].
///  * no host syncs per step: each table is copied to a device (cast to a dtype) once, on first use, and indexed
///    there. Index tensors on the CPU are range-checked on the host; indices on a device are not checked (that
///    would wait for the device every step): callers build them from host values they checked (the sampler's step
///    index, the training sampler's draw in [0, S)).
#include <daug/tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace daug::adm {

/// β_1..β_T of a named schedule: "linear" (β = linspace(1e-4·1000/T, 0.02·1000/T, T)) or "cosine"
/// (Nichol & Dhariwal: β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999), ᾱ(u) = cos²((u+0.008)/1.008·π/2)).
/// Throws daug::ConfigError on an unknown name or T < 1.
std::vector<double> beta_schedule(const std::string& name, int64_t num_timesteps);

/// guided-diffusion's space_timesteps(T, spec), sorted ascending. `spec`: "" (all T steps), "ddimN" (the smallest
/// integer stride i ≥ 1 with len(range(0,T,i)) == N), or comma-separated section counts "250" / "10,15,20"
/// (T split into equal sections, each strided with Python round-half-to-even). Unsatisfiable specs throw
/// daug::ConfigError saying what was asked and why it cannot be done.
std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec);

/// How the reverse-process variance is obtained (guided-diffusion ModelVarType).
enum class VarianceType {
  learned_range,  ///< model outputs [ε | v], log σ² = frac·log β + (1−frac)·log β̃ (clipped), frac = (v+1)/2
  fixed_large,    ///< σ² = [β̃_1, β_1, β_2, ...]
  fixed_small,    ///< σ² = β̃ (log clipped)
};
VarianceType parse_variance_type(const std::string& name);  ///< "learned_range" | "fixed_large" | "fixed_small"

/// ε_θ(x, t_orig) → model output [N, C or 2C, H, W]. t_orig: int64 ORIGINAL timesteps [N].
using ModelFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t_orig)>;
/// Guidance gradient g(x, t_orig) = direction·scale·∇ₓ log p(y|x_t) (already scaled), x's shape.
using GradFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t_orig)>;

struct PMeanVar {
  at::Tensor mean;          ///< posterior mean from x̂0
  at::Tensor variance;      ///< Σ
  at::Tensor log_variance;  ///< log Σ
  at::Tensor pred_xstart;   ///< x̂0 (clamped to [-1,1] when clip_denoised)
  at::Tensor model_eps;     ///< the ε half of the model output (unclipped)
};

struct TrainingLoss {
  at::Tensor loss;  ///< [N] mse + vb
  at::Tensor mse;   ///< [N] mean_flat((ε − ε_θ)²)
  at::Tensor vb;    ///< [N] KL in bits/dim (decoder NLL at t = 0); zeros without learn_sigma
};

class GaussianDiffusion {
 public:
  /// `betas`: the ORIGINAL schedule (length T). `use_timesteps`: the kept original timesteps (sorted; empty =
  /// all), as space_timesteps() returns; β'_j = 1 − ᾱ_{τ_j}/ᾱ_{τ_{j−1}} (SpacedDiffusion).
  GaussianDiffusion(const std::vector<double>& betas, std::vector<int64_t> use_timesteps, VarianceType var_type);

  int64_t num_steps() const { return static_cast<int64_t>(betas_.size()); }       ///< S (respaced)
  int64_t original_num_steps() const { return original_T_; }                       ///< T
  const std::vector<int64_t>& timestep_map() const { return timestep_map_; }       ///< index → original t
  bool learned_sigma() const { return var_type_ == VarianceType::learned_range; }
  VarianceType variance_type() const { return var_type_; }

  // float64 arrays, all of length S (names as guided-diffusion).
  const std::vector<double>& betas() const { return betas_; }
  const std::vector<double>& alphas_cumprod() const { return ac_; }
  const std::vector<double>& alphas_cumprod_prev() const { return ac_prev_; }
  const std::vector<double>& alphas_cumprod_next() const { return ac_next_; }
  const std::vector<double>& posterior_variance() const { return post_var_; }
  const std::vector<double>& posterior_log_variance_clipped() const { return post_logvar_; }
  const std::vector<double>& posterior_mean_coef1() const { return coef1_; }
  const std::vector<double>& posterior_mean_coef2() const { return coef2_; }

  /// Index of ORIGINAL timestep `t_orig` in this process, or -1 if it is not kept.
  int64_t index_of(int64_t t_orig) const;
  /// arr[t] as x's dtype/device, shaped [N,1,...,1] for broadcasting against x (guided-diffusion _extract_into_tensor).
  /// `arr` is one of this process's tables (cached on like's device and dtype) or any array of length S.
  at::Tensor extract(const std::vector<double>& arr, const at::Tensor& t, const at::Tensor& like) const;
  /// ORIGINAL timesteps for indices t (int64, on t's device).
  at::Tensor map_timesteps(const at::Tensor& t) const;

  /// √ᾱ_t·x0 + √(1−ᾱ_t)·noise (t: indices of this process).
  at::Tensor q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) const;
  /// Mean, variance and clipped log-variance of q(x_{t−1} | x_t, x0).
  void q_posterior(const at::Tensor& x0, const at::Tensor& xt, const at::Tensor& t, at::Tensor* mean,
                   at::Tensor* var, at::Tensor* log_var) const;
  at::Tensor predict_xstart_from_eps(const at::Tensor& xt, const at::Tensor& t, const at::Tensor& eps) const;
  at::Tensor predict_eps_from_xstart(const at::Tensor& xt, const at::Tensor& t, const at::Tensor& x0) const;

  /// Splits a raw model output and computes p(x_{t−1}|x_t). Checks the output has C (or 2C with learn_sigma)
  /// channels and throws daug::Error naming both shapes otherwise.
  PMeanVar p_mean_variance_from_output(const at::Tensor& model_out, const at::Tensor& x, const at::Tensor& t,
                                       bool clip_denoised) const;
  PMeanVar p_mean_variance(const ModelFn& model, const at::Tensor& x, const at::Tensor& t, bool clip_denoised) const;

  /// μ' = μ + Σ·g (condition_mean).
  at::Tensor condition_mean(const GradFn& grad, const PMeanVar& out, const at::Tensor& x, const at::Tensor& t) const;
  /// ε' = ε(x̂0) − √(1−ᾱ_t)·g; x̂0 and μ recomputed from ε' (condition_score). Returns the updated PMeanVar.
  PMeanVar condition_score(const GradFn& grad, const PMeanVar& out, const at::Tensor& x, const at::Tensor& t) const;

  /// DDPM ancestral step x_t → x_{t−1} = μ (+ Σ·g if guided) + 1[t≠0]·exp(½ log Σ)·noise.
  at::Tensor p_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t, bool clip_denoised,
                      const GradFn* grad, const at::Tensor& noise) const;
  /// DDIM step x_t → x_{t−1} with η (guidance via condition_score). `noise` may be undefined when eta == 0.
  at::Tensor ddim_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t, bool clip_denoised,
                         const GradFn* grad, double eta, const at::Tensor& noise) const;
  /// Deterministic DDIM inversion step x_t → x_{t+1} (η = 0).
  at::Tensor ddim_reverse_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                 bool clip_denoised) const;

  /// guided-diffusion training_losses with loss_type MSE: mean_flat((ε − ε_θ)²) plus, with learn_sigma, the
  /// VB term computed on a frozen mean (normal_kl in bits/dim; discretized Gaussian decoder NLL at t = 0).
  TrainingLoss training_losses(const ModelFn& model, const at::Tensor& x0, const at::Tensor& t,
                               const at::Tensor& noise) const;

 private:
  std::vector<double> betas_, ac_, ac_prev_, ac_next_, sqrt_ac_, sqrt_1m_ac_, sqrt_recip_ac_, sqrt_recipm1_ac_;
  std::vector<double> post_var_, post_logvar_, coef1_, coef2_, log_betas_, fixed_large_var_, fixed_large_logvar_;
  std::vector<int64_t> timestep_map_;
  int64_t original_T_ = 0;
  VarianceType var_type_;
  struct DeviceTables;                     // the tables above on each device/dtype used so far (thread-safe)
  std::shared_ptr<DeviceTables> device_;
  at::Tensor device_table(const std::vector<double>& arr, const at::Device& device, at::ScalarType dtype) const;
};

/// 0.5·(−1 + logvar2 − logvar1 + exp(logvar1 − logvar2) + (mean1 − mean2)²·exp(−logvar2)) (losses.py normal_kl).
at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2);
/// log-likelihood of x ∈ [−1,1] discretised to 1/255 bins under N(means, exp(log_scales)²) (losses.py).
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales);

}  // namespace daug::adm
