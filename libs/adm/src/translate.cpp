// The translate schedule: encode to a noise level, decode with optional guidance (see translate.h).
#include <daug/adm/translate.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <string>
#include <vector>

namespace daug::adm {

int64_t noise_level_index(const GaussianDiffusion& diffusion, int64_t noise_level, const TranslateOptions& opts) {
  const int64_t T = diffusion.original_num_steps(), L = noise_level;
  DAUG_CHECK_AS(ConfigError, L >= 1 && L < T, opts.what, ": noise_level must be in [1, ", T - 1, "] (T = ", T,
                "), but got ", L);
  const int64_t J = diffusion.index_of(L);
  if (J < 0) {
    const auto& kept = diffusion.timestep_map();
    auto hi = std::lower_bound(kept.begin(), kept.end(), L);
    std::string near = hi == kept.end() ? std::to_string(kept.back())
                       : hi == kept.begin() ? std::to_string(*hi)
                                            : fmt::format("{} or {}", *(hi - 1), *hi);
    throw ConfigError(fmt::format(
        "{}: noise_level {} is not one of the timesteps kept by timestep_respacing '{}' ({} steps); "
        "the nearest kept timesteps are {}",
        opts.what, L, opts.respacing, diffusion.num_steps(), near));
  }
  return J;
}

at::Tensor translate(const GaussianDiffusion& diffusion, const ModelFn& model, const at::Tensor& x0,
                     int64_t noise_level, const GradFn* grad, const TranslateOptions& opts) {
  const int64_t L = noise_level;
  const int64_t J = noise_level_index(diffusion, L, opts);
  DAUG_CHECK_AS(DataError, at::isfinite(x0).all().item<bool>(), opts.what, ": the input batch contains NaN/Inf");
  const int64_t n = x0.size(0);
  auto idx = [&](int64_t j) { return at::full({n}, j, at::TensorOptions().dtype(at::kLong).device(x0.device())); };
  // NaN/Inf record kept on the device (reading it every step would wait for the device every step): per batch
  // item, the position in `steps` of its first non-finite step, or -1. Read once at the end of each phase.
  at::Tensor first_bad;
  std::vector<int64_t> steps;  // the step index j of each recorded step of this phase
  auto record = [&](const at::Tensor& x, int64_t j) {
    if (!first_bad.defined()) first_bad = at::full({n}, -1, at::TensorOptions().dtype(at::kLong).device(x.device()));
    const at::Tensor bad = (~at::isfinite(x)).flatten(1).any(1);
    first_bad.masked_fill_(bad & first_bad.lt(0), static_cast<int64_t>(steps.size()));
    steps.push_back(j);
  };
  auto check = [&](const char* phase) {  // one device-to-host read per phase
    if (steps.empty()) return;
    const at::Tensor f = first_bad.to(at::kCPU).contiguous();
    const int64_t* p = f.data_ptr<int64_t>();
    int64_t first = -1;
    for (int64_t i = 0; i < n; ++i)
      if (p[i] >= 0 && (first < 0 || p[i] < first)) first = p[i];
    first_bad = at::Tensor();
    const std::vector<int64_t> phase_steps = std::move(steps);
    steps.clear();
    if (first < 0) return;
    std::vector<int64_t> items;  // the items that went bad at the first bad step, as the per-step check named them
    for (int64_t i = 0; i < n; ++i)
      if (p[i] == first) items.push_back(i);
    throw DataError(fmt::format(
        "{}: NaN/Inf in batch item(s) [{}] after the {} step at original timestep {} (noise_level {}, "
        "respacing '{}'); check the checkpoint, the guidance scale and the input range",
        opts.what, fmt::join(items, ", "), phase, diffusion.timestep_map()[phase_steps[first]], L, opts.respacing));
  };
  const bool released = opts.pattern == IndexPattern::released;
  at::Tensor x;
  if (opts.encode == EncodeMode::ddim_inversion) {
    x = released ? diffusion.q_sample(x0, idx(0), at::randn_like(x0)) : x0;
    for (int64_t j = released ? 1 : 0; j <= J - 1; ++j) {
      x = diffusion.ddim_reverse_sample(model, x, idx(j), opts.clip_denoised);
      record(x, j);
    }
    check("DDIM inversion");
    for (int64_t j = released ? J - 2 : J; j >= (released ? 0 : 1); --j) {
      at::Tensor noise = opts.eta > 0 ? at::randn_like(x) : at::Tensor();
      x = diffusion.ddim_sample(model, x, idx(j), opts.clip_denoised, grad, opts.eta, noise);
      record(x, j);
    }
    check("guided DDIM");
  } else {
    const int64_t start = released ? J - 1 : J;
    x = diffusion.q_sample(x0, idx(start), at::randn_like(x0));
    for (int64_t j = start; j >= 0; --j) {
      x = diffusion.p_sample(model, x, idx(j), opts.clip_denoised, grad, at::randn_like(x));
      record(x, j);
    }
    check("guided DDPM");
  }
  return x;
}

}  // namespace daug::adm
