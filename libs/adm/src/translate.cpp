// The translate schedule: encode to a noise level, decode with optional guidance (see translate.h).
#include <daug/adm/translate.h>
#include <daug/error.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace daug::adm {

// One persistent thread (its OpenMP team and per-thread thread count survive between steps) that computes one
// guidance gradient at a time.
struct ConcurrentGuidance::Worker {
  GradFn grad;
  int threads = 1;
  std::mutex mu;
  std::condition_variable cv;
  bool queued = false, done = false, stop = false;
  const void* key = nullptr;  // identity of the x whose gradient is queued or done
  at::Tensor x, t, result;
  std::optional<at::ThreadLocalState> tls;
  std::exception_ptr error;
  std::thread th;

  Worker(GradFn g, int n) : grad(std::move(g)), threads(n) { th = std::thread([this] { loop(); }); }
  ~Worker() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    th.join();
  }

  void loop() {
    (void)at::get_num_threads();  // ATen's lazy per-thread init first: it would reset the count set below
    at::set_num_threads(threads);
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return queued || stop; });
      if (stop) return;
      at::Tensor xx = x, tt = t;
      at::ThreadLocalState state = *tls;
      lk.unlock();
      at::Tensor r;
      std::exception_ptr e;
      try {
        at::ThreadLocalStateGuard guard(state);
        r = grad(xx, tt);
      } catch (...) {
        e = std::current_exception();
      }
      lk.lock();
      result = std::move(r);
      error = e;
      queued = false;
      done = true;
      cv.notify_all();
    }
  }

  void submit(const at::Tensor& xx, const at::Tensor& tt) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return !queued; });  // a gradient nobody asked for (e.g. the step threw) is dropped
    x = xx;
    t = tt;
    key = xx.unsafeGetTensorImpl();
    tls.emplace();
    result = at::Tensor();
    error = nullptr;
    done = false;
    queued = true;
    cv.notify_all();
  }

  std::optional<at::Tensor> take(const at::Tensor& xx) {
    std::unique_lock<std::mutex> lk(mu);
    if (key != xx.unsafeGetTensorImpl() || (!queued && !done)) return std::nullopt;
    cv.wait(lk, [&] { return done; });
    done = false;
    key = nullptr;
    x = t = at::Tensor();
    if (error) std::rethrow_exception(error);
    return std::move(result);
  }
};

ConcurrentGuidance::ConcurrentGuidance(ModelFn model, GradFn grad, int64_t guidance_threads) {
  DAUG_CHECK(guidance_threads >= 1, "guidance_threads must be >= 1, but got ", guidance_threads);
  caller_threads_ = at::get_num_threads();
  const int mine = std::max<int>(1, caller_threads_ - static_cast<int>(guidance_threads));
  if (mine != caller_threads_) at::set_num_threads(mine);
  worker_ = std::make_unique<Worker>(grad, static_cast<int>(guidance_threads));
  model_fn_ = [this, model = std::move(model)](const at::Tensor& x, const at::Tensor& t) {
    worker_->submit(x, t);
    return model(x, t);
  };
  grad_fn_ = [this, grad = std::move(grad)](const at::Tensor& x, const at::Tensor& t) {
    if (auto r = worker_->take(x)) return *r;
    return grad(x, t);
  };
}

ConcurrentGuidance::~ConcurrentGuidance() {
  worker_.reset();
  if (at::get_num_threads() != caller_threads_) at::set_num_threads(caller_threads_);
}

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
    std::optional<ConcurrentGuidance> cg;
    if (opts.concurrent_guidance && grad) cg.emplace(model, *grad, opts.guidance_threads);
    for (int64_t j = released ? J - 2 : J; j >= (released ? 0 : 1); --j) {
      at::Tensor noise = opts.eta > 0 ? at::randn_like(x) : at::Tensor();
      x = cg ? diffusion.ddim_sample(cg->model(), x, idx(j), opts.clip_denoised, &cg->grad(), opts.eta, noise)
             : diffusion.ddim_sample(model, x, idx(j), opts.clip_denoised, grad, opts.eta, noise);
      record(x, j);
    }
    check("guided DDIM");
  } else {
    const int64_t start = released ? J - 1 : J;
    x = diffusion.q_sample(x0, idx(start), at::randn_like(x0));
    std::optional<ConcurrentGuidance> cg;
    if (opts.concurrent_guidance && grad) cg.emplace(model, *grad, opts.guidance_threads);
    for (int64_t j = start; j >= 0; --j) {
      at::Tensor noise = at::randn_like(x);
      x = cg ? diffusion.p_sample(cg->model(), x, idx(j), opts.clip_denoised, &cg->grad(), noise)
             : diffusion.p_sample(model, x, idx(j), opts.clip_denoised, grad, noise);
      record(x, j);
    }
    check("guided DDPM");
  }
  return x;
}

}  // namespace daug::adm
