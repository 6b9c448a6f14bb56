// Gaussian diffusion (guided-diffusion semantics). See diffusion.h and REFERENCE.md §2.3, §3.1–3.4.
#include <daug/adm/diffusion.h>

#include <daug/error.h>
#include <daug/int_range.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

namespace daug::adm {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

at::Tensor mean_flat(const at::Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
  return dims.empty() ? x : x.mean(dims);
}

int64_t parse_count(const std::string& s, const std::string& spec) {
  size_t pos = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  DAUG_CHECK_AS(ConfigError, pos == s.size() && !s.empty(),
                "timestep respacing '", spec, "': expected \"ddimN\", \"N\" or comma-separated counts like "
                "\"10,15,20\", but '", s, "' is not an integer");
  DAUG_CHECK_AS(ConfigError, v >= 1, "timestep respacing '", spec, "': step counts must be >= 1, but got ", v);
  return v;
}

// Python's round() for the non-negative doubles used here: round half to even on the exact binary value.
int64_t py_round(double x) {
  const int old = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  std::fesetround(old);
  return static_cast<int64_t>(r);
}

}  // namespace

std::vector<double> beta_schedule(const std::string& name, int64_t T) {
  DAUG_CHECK_AS(ConfigError, T >= 2, "diffusion_steps must be >= 2, but got ", T);
  std::vector<double> b(static_cast<size_t>(T));
  if (name == "linear") {
    const double scale = 1000.0 / static_cast<double>(T);
    const double start = scale * 0.0001, end = scale * 0.02;
    const double step = (end - start) / static_cast<double>(T - 1);
    for (int64_t i = 0; i < T; ++i) b[i] = start + static_cast<double>(i) * step;  // numpy.linspace
    b[T - 1] = end;
    DAUG_CHECK_AS(ConfigError, end <= 1.0, "linear schedule with T=", T, " gives beta_T=", end,
                  " > 1; use T >= 20");
  } else if (name == "cosine") {
    auto abar = [](double u) {
      const double c = std::cos((u + 0.008) / 1.008 * M_PI / 2.0);
      return c * c;
    };
    for (int64_t i = 0; i < T; ++i) {
      const double t1 = static_cast<double>(i) / T, t2 = static_cast<double>(i + 1) / T;
      b[i] = std::min(1.0 - abar(t2) / abar(t1), 0.999);
    }
  } else {
    throw ConfigError("noise_schedule must be one of: linear, cosine, but got '" + name + "'");
  }
  return b;
}

std::vector<int64_t> space_timesteps(int64_t T, const std::string& spec) {
  DAUG_CHECK_AS(ConfigError, T >= 1, "space_timesteps: T must be >= 1, but got ", T);
  std::vector<int64_t> out;
  if (spec.empty()) {
    for (int64_t i = 0; i < T; ++i) out.push_back(i);
    return out;
  }
  if (spec.rfind("ddim", 0) == 0) {
    const int64_t want = parse_count(spec.substr(4), spec);
    for (int64_t i = 1; i < T; ++i) {
      if ((T + i - 1) / i == want) {  // len(range(0, T, i))
        for (int64_t s = 0; s < T; s += i) out.push_back(s);
        return out;
      }
    }
    throw ConfigError("timestep respacing '" + spec + "': cannot create exactly " + std::to_string(want) +
                      " steps out of T=" + std::to_string(T) + " with an integer stride (guided-diffusion "
                      "space_timesteps); try a divisor-friendly N such as ddim" + std::to_string(T / 10) +
                      " or a section count like \"" + std::to_string(want) + "\"");
  }
  std::vector<int64_t> counts;
  size_t start = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    std::string part = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    part.erase(0, part.find_first_not_of(' '));
    if (!part.empty()) part.erase(part.find_last_not_of(' ') + 1);
    counts.push_back(parse_count(part, spec));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const int64_t n = static_cast<int64_t>(counts.size());
  const int64_t size_per = T / n, extra = T % n;
  int64_t start_idx = 0;
  std::set<int64_t> all;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    DAUG_CHECK_AS(ConfigError, size >= counts[i], "timestep respacing '", spec, "': cannot divide section ", i,
                  " of ", size, " steps (T=", T, " split into ", n, " sections) into ", counts[i], " steps");
    const double frac_stride =
        counts[i] <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(counts[i] - 1);
    double cur = 0.0;
    for (int64_t k = 0; k < counts[i]; ++k) {
      all.insert(start_idx + py_round(cur));
      cur += frac_stride;
    }
    start_idx += size;
  }
  return {all.begin(), all.end()};
}

VarianceType parse_variance_type(const std::string& name) {
  if (name == "learned_range") return VarianceType::learned_range;
  if (name == "fixed_large") return VarianceType::fixed_large;
  if (name == "fixed_small") return VarianceType::fixed_small;
  throw ConfigError("variance type must be one of: learned_range, fixed_large, fixed_small, but got '" + name + "'");
}

struct GaussianDiffusion::DeviceTables {
  std::mutex mu;
  // (device type, device index, dtype, table) → the table on that device as that dtype; table -1 = timestep_map.
  std::map<std::tuple<int, int, int, int>, at::Tensor> tables;
};

GaussianDiffusion::GaussianDiffusion(const std::vector<double>& betas, std::vector<int64_t> use_timesteps,
                                     VarianceType var_type)
    : original_T_(static_cast<int64_t>(betas.size())), var_type_(var_type),
      device_(std::make_shared<DeviceTables>()) {
  DAUG_CHECK_AS(ConfigError, betas.size() >= 2, "a diffusion process needs >= 2 steps, but got ", betas.size());
  for (size_t i = 0; i < betas.size(); ++i)
    DAUG_CHECK_AS(ConfigError, betas[i] > 0.0 && betas[i] <= 1.0, "beta[", i, "] must be in (0, 1], but got ",
                  betas[i]);
  if (use_timesteps.empty())
    for (int64_t i = 0; i < original_T_; ++i) use_timesteps.push_back(i);
  std::sort(use_timesteps.begin(), use_timesteps.end());
  use_timesteps.erase(std::unique(use_timesteps.begin(), use_timesteps.end()), use_timesteps.end());
  DAUG_CHECK_AS(ConfigError, use_timesteps.size() >= 2, "a respaced process needs >= 2 kept timesteps, but got ",
                use_timesteps.size());
  DAUG_CHECK_AS(ConfigError, use_timesteps.front() >= 0 && use_timesteps.back() < original_T_,
                "kept timesteps must lie in [0, ", original_T_ - 1, "], but got ", use_timesteps.front(), "..",
                use_timesteps.back());
  // SpacedDiffusion: β'_j = 1 − ᾱ_{τ_j} / ᾱ_{τ_{j−1}}.
  std::vector<double> base_ac(betas.size());
  double acc = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) base_ac[i] = acc = acc * (1.0 - betas[i]);
  double last = 1.0;
  for (int64_t tau : use_timesteps) {
    betas_.push_back(1.0 - base_ac[tau] / last);
    last = base_ac[tau];
    timestep_map_.push_back(tau);
  }
  const size_t S = betas_.size();
  ac_.resize(S);
  acc = 1.0;
  for (size_t i = 0; i < S; ++i) ac_[i] = acc = acc * (1.0 - betas_[i]);
  ac_prev_.resize(S);
  ac_next_.resize(S);
  for (size_t i = 0; i < S; ++i) {
    ac_prev_[i] = i == 0 ? 1.0 : ac_[i - 1];
    ac_next_[i] = i + 1 < S ? ac_[i + 1] : 0.0;
  }
  sqrt_ac_.resize(S);
  sqrt_1m_ac_.resize(S);
  sqrt_recip_ac_.resize(S);
  sqrt_recipm1_ac_.resize(S);
  post_var_.resize(S);
  post_logvar_.resize(S);
  coef1_.resize(S);
  coef2_.resize(S);
  log_betas_.resize(S);
  fixed_large_var_.resize(S);
  fixed_large_logvar_.resize(S);
  for (size_t i = 0; i < S; ++i) {
    sqrt_ac_[i] = std::sqrt(ac_[i]);
    sqrt_1m_ac_[i] = std::sqrt(1.0 - ac_[i]);
    sqrt_recip_ac_[i] = std::sqrt(1.0 / ac_[i]);
    sqrt_recipm1_ac_[i] = std::sqrt(1.0 / ac_[i] - 1.0);
    post_var_[i] = betas_[i] * (1.0 - ac_prev_[i]) / (1.0 - ac_[i]);
    coef1_[i] = betas_[i] * std::sqrt(ac_prev_[i]) / (1.0 - ac_[i]);
    coef2_[i] = (1.0 - ac_prev_[i]) * std::sqrt(1.0 - betas_[i]) / (1.0 - ac_[i]);
    log_betas_[i] = std::log(betas_[i]);
  }
  for (size_t i = 0; i < S; ++i) {
    post_logvar_[i] = std::log(i == 0 ? post_var_[1] : post_var_[i]);
    fixed_large_var_[i] = i == 0 ? post_var_[1] : betas_[i];
    fixed_large_logvar_[i] = std::log(fixed_large_var_[i]);
  }
}

int64_t GaussianDiffusion::index_of(int64_t t_orig) const {
  auto it = std::lower_bound(timestep_map_.begin(), timestep_map_.end(), t_orig);
  if (it == timestep_map_.end() || *it != t_orig) return -1;
  return static_cast<int64_t>(it - timestep_map_.begin());
}

at::Tensor GaussianDiffusion::device_table(const std::vector<double>& arr, const at::Device& device,
                                           at::ScalarType dtype) const {
  const std::vector<double>* mine[] = {&betas_,   &ac_,         &ac_prev_,     &ac_next_,         &sqrt_ac_,
                                       &sqrt_1m_ac_, &sqrt_recip_ac_, &sqrt_recipm1_ac_, &post_var_, &post_logvar_,
                                       &coef1_,   &coef2_,      &log_betas_,   &fixed_large_var_, &fixed_large_logvar_};
  auto build = [&] {  // copy=true: never alias `arr` (a float64 CPU table would otherwise be the vector's memory)
    return at::from_blob(const_cast<double*>(arr.data()), {static_cast<int64_t>(arr.size())}, at::kDouble)
        .to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  };
  const auto it = std::find(std::begin(mine), std::end(mine), &arr);
  if (it == std::end(mine)) return build();  // not one of ours: nothing to key a cache entry on
  const auto key = std::make_tuple(static_cast<int>(device.type()), static_cast<int>(device.index()),
                                   static_cast<int>(dtype), static_cast<int>(it - std::begin(mine)));
  std::lock_guard<std::mutex> lock(device_->mu);
  at::Tensor& t = device_->tables[key];
  if (!t.defined()) t = build();
  return t;
}

at::Tensor GaussianDiffusion::extract(const std::vector<double>& arr, const at::Tensor& t,
                                      const at::Tensor& like) const {
  DAUG_CHECK(t.dim() == 1 && t.size(0) == like.size(0), "timesteps must be [N] with N = ", like.size(0),
             ", but got ", shape_str(t.sizes()));
  const int64_t S = static_cast<int64_t>(arr.size());
  if (t.is_cpu())  // free on the host; device indices come from checked host values (see the header)
    DAUG_CHECK(int_range(t).within(0, S - 1), "timestep index out of range [0, ", S - 1, "]");
  // Casting the float64 table once and then indexing gives the same values as indexing, then casting.
  at::Tensor v = device_table(arr, like.device(), like.scalar_type())
                     .index_select(0, t.to(like.device(), at::kLong, /*non_blocking=*/true));
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = like.size(0);
  return v.view(shape);
}

at::Tensor GaussianDiffusion::map_timesteps(const at::Tensor& t) const {
  const int64_t S = static_cast<int64_t>(timestep_map_.size());
  if (t.is_cpu())
    DAUG_CHECK(int_range(t).within(0, S - 1), "timestep index out of range [0, ", S - 1, "]");
  const auto key = std::make_tuple(static_cast<int>(t.device().type()), static_cast<int>(t.device().index()),
                                   static_cast<int>(at::kLong), -1);
  at::Tensor table;
  {
    std::lock_guard<std::mutex> lock(device_->mu);
    at::Tensor& cached = device_->tables[key];
    if (!cached.defined())
      cached = at::from_blob(const_cast<int64_t*>(timestep_map_.data()), {S}, at::kLong)
                   .to(t.device(), at::kLong, /*non_blocking=*/false, /*copy=*/true);
    table = cached;
  }
  return table.index_select(0, t.to(at::kLong));
}

at::Tensor GaussianDiffusion::q_sample(const at::Tensor& x0, const at::Tensor& t, const at::Tensor& noise) const {
  DAUG_CHECK(noise.sizes() == x0.sizes(), "q_sample: noise shape ", shape_str(noise.sizes()),
             " must equal x0 shape ", shape_str(x0.sizes()));
  return extract(sqrt_ac_, t, x0) * x0 + extract(sqrt_1m_ac_, t, x0) * noise;
}

void GaussianDiffusion::q_posterior(const at::Tensor& x0, const at::Tensor& xt, const at::Tensor& t,
                                    at::Tensor* mean, at::Tensor* var, at::Tensor* log_var) const {
  if (mean) *mean = extract(coef1_, t, xt) * x0 + extract(coef2_, t, xt) * xt;
  if (var) *var = extract(post_var_, t, xt);
  if (log_var) *log_var = extract(post_logvar_, t, xt);
}

at::Tensor GaussianDiffusion::predict_xstart_from_eps(const at::Tensor& xt, const at::Tensor& t,
                                                      const at::Tensor& eps) const {
  return extract(sqrt_recip_ac_, t, xt) * xt - extract(sqrt_recipm1_ac_, t, xt) * eps;
}

at::Tensor GaussianDiffusion::predict_eps_from_xstart(const at::Tensor& xt, const at::Tensor& t,
                                                      const at::Tensor& x0) const {
  return (extract(sqrt_recip_ac_, t, xt) * xt - x0) / extract(sqrt_recipm1_ac_, t, xt);
}

PMeanVar GaussianDiffusion::p_mean_variance_from_output(const at::Tensor& model_out, const at::Tensor& x,
                                                        const at::Tensor& t, bool clip_denoised) const {
  const int64_t C = x.size(1);
  const int64_t want = learned_sigma() ? 2 * C : C;
  DAUG_CHECK(model_out.dim() == x.dim() && model_out.size(0) == x.size(0) && model_out.size(1) == want &&
                 model_out.sizes().slice(2) == x.sizes().slice(2),
             "model output has shape ", shape_str(model_out.sizes()), ", but x has shape ", shape_str(x.sizes()),
             " so ", want, " output channels were expected", learned_sigma() ? " (learn_sigma: [eps | v])" : "");
  PMeanVar o;
  if (learned_sigma()) {
    o.model_eps = model_out.narrow(1, 0, C);
    at::Tensor v = model_out.narrow(1, C, C);
    at::Tensor min_log = extract(post_logvar_, t, x);
    at::Tensor max_log = extract(log_betas_, t, x);
    at::Tensor frac = (v + 1) / 2;
    o.log_variance = frac * max_log + (1 - frac) * min_log;
    o.variance = o.log_variance.exp();
  } else {
    o.model_eps = model_out;
    if (var_type_ == VarianceType::fixed_large) {
      o.variance = extract(fixed_large_var_, t, x).expand_as(x);
      o.log_variance = extract(fixed_large_logvar_, t, x).expand_as(x);
    } else {
      o.variance = extract(post_var_, t, x).expand_as(x);
      o.log_variance = extract(post_logvar_, t, x).expand_as(x);
    }
  }
  o.pred_xstart = predict_xstart_from_eps(x, t, o.model_eps);
  if (clip_denoised) o.pred_xstart = o.pred_xstart.clamp(-1, 1);
  q_posterior(o.pred_xstart, x, t, &o.mean, nullptr, nullptr);
  return o;
}

PMeanVar GaussianDiffusion::p_mean_variance(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                            bool clip_denoised) const {
  return p_mean_variance_from_output(model(x, map_timesteps(t)), x, t, clip_denoised);
}

at::Tensor GaussianDiffusion::condition_mean(const GradFn& grad, const PMeanVar& out, const at::Tensor& x,
                                             const at::Tensor& t) const {
  at::Tensor g = grad(x, map_timesteps(t));
  DAUG_CHECK(g.sizes() == x.sizes(), "guidance gradient has shape ", shape_str(g.sizes()), ", expected x's ",
             shape_str(x.sizes()));
  return out.mean + out.variance * g.to(out.mean.scalar_type());
}

PMeanVar GaussianDiffusion::condition_score(const GradFn& grad, const PMeanVar& out, const at::Tensor& x,
                                            const at::Tensor& t) const {
  at::Tensor alpha_bar = extract(ac_, t, x);
  at::Tensor eps = predict_eps_from_xstart(x, t, out.pred_xstart);
  at::Tensor g = grad(x, map_timesteps(t));
  DAUG_CHECK(g.sizes() == x.sizes(), "guidance gradient has shape ", shape_str(g.sizes()), ", expected x's ",
             shape_str(x.sizes()));
  eps = eps - (1 - alpha_bar).sqrt() * g.to(eps.scalar_type());
  PMeanVar r = out;
  r.pred_xstart = predict_xstart_from_eps(x, t, eps);
  q_posterior(r.pred_xstart, x, t, &r.mean, nullptr, nullptr);
  return r;
}

at::Tensor GaussianDiffusion::p_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                       bool clip_denoised, const GradFn* grad, const at::Tensor& noise) const {
  PMeanVar out = p_mean_variance(model, x, t, clip_denoised);
  at::Tensor mean = grad ? condition_mean(*grad, out, x, t) : out.mean;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  at::Tensor nonzero = (t != 0).to(x.scalar_type()).view(shape);
  return mean + nonzero * (0.5 * out.log_variance).exp() * noise;
}

at::Tensor GaussianDiffusion::ddim_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                          bool clip_denoised, const GradFn* grad, double eta,
                                          const at::Tensor& noise) const {
  PMeanVar out = p_mean_variance(model, x, t, clip_denoised);
  if (grad) out = condition_score(*grad, out, x, t);
  at::Tensor eps = predict_eps_from_xstart(x, t, out.pred_xstart);
  at::Tensor ab = extract(ac_, t, x), abp = extract(ac_prev_, t, x);
  at::Tensor sigma = eta * ((1 - abp) / (1 - ab)).sqrt() * (1 - ab / abp).sqrt();
  at::Tensor mean_pred = out.pred_xstart * abp.sqrt() + (1 - abp - sigma * sigma).sqrt() * eps;
  if (eta == 0.0) return mean_pred;
  DAUG_CHECK(noise.defined() && noise.sizes() == x.sizes(), "ddim_sample with eta > 0 needs noise of x's shape");
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  at::Tensor nonzero = (t != 0).to(x.scalar_type()).view(shape);
  return mean_pred + nonzero * sigma * noise;
}

at::Tensor GaussianDiffusion::ddim_reverse_sample(const ModelFn& model, const at::Tensor& x, const at::Tensor& t,
                                                  bool clip_denoised) const {
  PMeanVar out = p_mean_variance(model, x, t, clip_denoised);
  at::Tensor eps = (extract(sqrt_recip_ac_, t, x) * x - out.pred_xstart) / extract(sqrt_recipm1_ac_, t, x);
  at::Tensor abn = extract(ac_next_, t, x);
  return out.pred_xstart * abn.sqrt() + (1 - abn).sqrt() * eps;
}

TrainingLoss GaussianDiffusion::training_losses(const ModelFn& model, const at::Tensor& x0, const at::Tensor& t,
                                                const at::Tensor& noise) const {
  at::Tensor xt = q_sample(x0, t, noise);
  at::Tensor out = model(xt, map_timesteps(t));
  const int64_t C = x0.size(1);
  const int64_t want = learned_sigma() ? 2 * C : C;
  DAUG_CHECK(out.dim() == x0.dim() && out.size(1) == want, "model output has shape ", shape_str(out.sizes()),
             ", but ", want, " channels were expected for input ", shape_str(x0.sizes()));
  TrainingLoss r;
  at::Tensor eps = out.narrow(1, 0, C);
  if (learned_sigma()) {
    at::Tensor frozen = at::cat({eps.detach(), out.narrow(1, C, C)}, 1);
    PMeanVar p = p_mean_variance_from_output(frozen, xt, t, /*clip_denoised=*/false);
    at::Tensor true_mean, true_logvar;
    q_posterior(x0, xt, t, &true_mean, nullptr, &true_logvar);
    at::Tensor kl = mean_flat(normal_kl(true_mean, true_logvar, p.mean, p.log_variance)) / std::log(2.0);
    at::Tensor nll =
        mean_flat(-discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / std::log(2.0);
    r.vb = at::where(t.to(kl.device()) == 0, nll, kl);
  } else {
    r.vb = at::zeros({x0.size(0)}, x0.options());
  }
  r.mse = mean_flat((noise - eps).pow(2));
  r.loss = r.mse + r.vb;
  return r;
}

at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + (logvar1 - logvar2).exp() + (mean1 - mean2).pow(2) * (-logvar2).exp());
}

namespace {
at::Tensor approx_standard_normal_cdf(const at::Tensor& x) {
  return 0.5 * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
}
}  // namespace

at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales) {
  at::Tensor centered = x - means;
  at::Tensor inv_stdv = (-log_scales).exp();
  at::Tensor cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0));
  at::Tensor cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0));
  at::Tensor log_cdf_plus = cdf_plus.clamp_min(1e-12).log();
  at::Tensor log_one_minus_cdf_min = (1.0 - cdf_min).clamp_min(1e-12).log();
  at::Tensor cdf_delta = cdf_plus - cdf_min;
  return at::where(x < -0.999, log_cdf_plus,
                   at::where(x > 0.999, log_one_minus_cdf_min, cdf_delta.clamp_min(1e-12).log()));
}

}  // namespace daug::adm
