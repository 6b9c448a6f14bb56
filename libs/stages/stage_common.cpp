// Shared stage code: images, progress, AdamW, EMA, metrics, heatmap helpers. See daug/stages/common.h.
#include <daug/stages/common.h>

#include <daug/data/image.h>
#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace daug::stages {

const Choices<data::Filter> kResizeFilters = choices<data::Filter>({{"bilinear", data::Filter::bilinear},
                                                                     {"bicubic", data::Filter::bicubic},
                                                                     {"area", data::Filter::area},
                                                                     {"nearest", data::Filter::nearest}});
const Choices<Normalize> kNormalizations = choices<Normalize>(
    {{"minmax", Normalize::minmax}, {"minmax_pm1", Normalize::minmax_pm1}, {"none", Normalize::none}});

at::Tensor prepare_image(const at::Tensor& gray, const ImagePrep& prep) {
  DAUG_CHECK(prep.shape.size() == 3, "image shape must be {C,H,W}, but got ", prep.shape.size(), " dims");
  DAUG_CHECK(gray.dim() == 3 && gray.size(0) == 1, "expected a gray image [1,H,W], but got ", gray.sizes());
  const int64_t c = prep.shape[0], h = prep.shape[1], w = prep.shape[2];
  at::Tensor x = gray.to(at::kFloat);
  if (x.size(1) != h || x.size(2) != w) x = data::resize(x, h, w, prep.filter);
  switch (prep.normalize) {
    case Normalize::minmax: x = data::minmax(x); break;
    case Normalize::minmax_pm1: x = data::minmax(x) * 2.0 - 1.0; break;
    case Normalize::none: break;
  }
  if (c != 1) x = x.expand({c, h, w});
  return x.contiguous();
}

at::Tensor load_image(const Sample& sample, const ImagePrep& prep) {
  return prepare_image(data::load_gray(sample.image), prep);
}

ImageBatcher::ImageBatcher(std::vector<const Sample*> items, ImagePrep prep, bool cache)
    : items_(std::move(items)), prep_(std::move(prep)), cache_(cache) {
  if (cache_) cached_.resize(items_.size());
}

at::Tensor ImageBatcher::batch(const std::vector<int64_t>& indices, const c10::Device& device) {
  std::vector<at::Tensor> xs;
  xs.reserve(indices.size());
  for (int64_t i : indices) {
    DAUG_CHECK(i >= 0 && static_cast<size_t>(i) < items_.size(), "batch index ", i, " out of range [0, ",
               items_.size(), ")");
    if (cache_) {
      auto& slot = cached_[static_cast<size_t>(i)];
      if (!slot.defined()) slot = load_image(*items_[static_cast<size_t>(i)], prep_);
      xs.push_back(slot);
    } else {
      xs.push_back(load_image(*items_[static_cast<size_t>(i)], prep_));
    }
  }
  return at::stack(xs).to(device);
}

// ------------------------------------------------------------------------------------------------ progress

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<int64_t>(std::llround(s));
  int64_t h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  if (h > 0) return fmt::format("{}h{:02d}m{:02d}s", h, m, sec);
  return fmt::format("{}m{:02d}s", m, sec);
}

Progress::Progress(std::string what, int64_t total, int64_t already_done, double every_s, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), start_done_(already_done),
      done_(already_done), every_s_(every_s), start_(std::chrono::steady_clock::now()), last_log_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  double e = elapsed_s();
  return e > 0 ? static_cast<double>(done_ - start_done_) / e : 0.0;
}

bool Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  bool last = done_ >= total_;
  if (!last && std::chrono::duration<double>(now - last_log_).count() < every_s_) return false;
  last_log_ = now;
  double r = rate();
  double eta = r > 0 ? static_cast<double>(total_ - done_) / r : NAN;
  double pct = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  log::info("{}: {}/{} ({:.1f}%) {:.3g} {}/s elapsed {} ETA {}{}{}", what_, done_, total_, pct, r, unit_,
            format_duration(elapsed_s()), last ? "0s" : format_duration(eta), extra.empty() ? "" : " ", extra);
  return true;
}

// ------------------------------------------------------------------------------------------------ AdamW

AdamW::AdamW(std::vector<at::Tensor> params, AdamWOptions options) : params_(std::move(params)), opts_(options) {
  DAUG_CHECK(!params_.empty(), "AdamW: the model has no trainable parameters");
  for (const auto& p : params_) {
    exp_avg_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(opts_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(opts_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (opts_.weight_decay != 0.0) p.mul_(1.0 - lr * opts_.weight_decay);
    exp_avg_[i].mul_(opts_.beta1).add_(g, 1.0 - opts_.beta1);
    exp_avg_sq_[i].mul_(opts_.beta2).addcmul_(g, g, 1.0 - opts_.beta2);
    at::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(opts_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bc1);
  }
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  out.emplace_back("adamw.step", at::scalar_tensor(step_, at::kLong));
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(fmt::format("adamw.exp_avg.{}", i), exp_avg_[i]);
    out.emplace_back(fmt::format("adamw.exp_avg_sq.{}", i), exp_avg_sq_[i]);
  }
  return out;
}

namespace {
const at::Tensor& find_key(const NamedTensors& state, const std::string& key, const std::string& source) {
  for (const auto& [k, v] : state)
    if (k == key) return v;
  throw DataError(source + ": missing key '" + key + "'");
}
void copy_checked(at::Tensor& dst, const at::Tensor& src, const std::string& key, const std::string& source) {
  if (dst.sizes() != src.sizes())
    throw DataError(fmt::format("{}: key '{}' has shape [{}], expected [{}]", source, key,
                                fmt::join(src.sizes(), ","), fmt::join(dst.sizes(), ",")));
  at::NoGradGuard g;
  dst.copy_(src);
}
}  // namespace

void AdamW::load_state(const NamedTensors& state, const std::string& source) {
  // Validate everything first so that a bad file modifies nothing.
  const at::Tensor& s = find_key(state, "adamw.step", source);
  for (size_t i = 0; i < params_.size(); ++i) {
    for (const char* kind : {"exp_avg", "exp_avg_sq"}) {
      std::string key = fmt::format("adamw.{}.{}", kind, i);
      const at::Tensor& t = find_key(state, key, source);
      if (t.sizes() != params_[i].sizes())
        throw DataError(fmt::format("{}: key '{}' has shape [{}], expected [{}]", source, key,
                                    fmt::join(t.sizes(), ","), fmt::join(params_[i].sizes(), ",")));
    }
  }
  std::string extra = fmt::format("adamw.exp_avg.{}", params_.size());
  for (const auto& kv : state)
    if (kv.first == extra)
      throw DataError(source + ": has more optimizer slots than the model has parameters (" +
                      std::to_string(params_.size()) + ")");
  step_ = s.item<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    copy_checked(exp_avg_[i], find_key(state, fmt::format("adamw.exp_avg.{}", i), source), "exp_avg", source);
    copy_checked(exp_avg_sq_[i], find_key(state, fmt::format("adamw.exp_avg_sq.{}", i), source), "exp_avg_sq",
                 source);
  }
}

double annealed_lr(double base, int64_t step, int64_t total) {
  if (total <= 0) return base;
  double frac = static_cast<double>(step) / static_cast<double>(total);
  return base * std::max(0.0, 1.0 - frac);
}

// ------------------------------------------------------------------------------------------------ EMA

Ema::Ema(std::vector<at::Tensor> params, double rate) : params_(std::move(params)), rate_(rate) {
  DAUG_CHECK(rate >= 0.0 && rate < 1.0, "ema rate must be in [0, 1), but got ", rate);
  at::NoGradGuard g;
  for (const auto& p : params_) shadow_.push_back(p.detach().clone());
}

void Ema::update() {
  at::NoGradGuard g;
  for (size_t i = 0; i < params_.size(); ++i) shadow_[i].mul_(rate_).add_(params_[i].detach(), 1.0 - rate_);
}

NamedTensors Ema::substitute(const NamedTensors& model_state) const {
  NamedTensors out = model_state;
  for (auto& [k, v] : out) {
    for (size_t i = 0; i < params_.size(); ++i) {
      if (v.unsafeGetTensorImpl() == params_[i].unsafeGetTensorImpl()) {
        v = shadow_[i];
        break;
      }
    }
  }
  return out;
}

NamedTensors Ema::state() const {
  NamedTensors out;
  for (size_t i = 0; i < shadow_.size(); ++i) out.emplace_back(fmt::format("ema.{}", i), shadow_[i]);
  return out;
}

void Ema::load_state(const NamedTensors& state, const std::string& source) {
  for (size_t i = 0; i < shadow_.size(); ++i) {
    std::string key = fmt::format("ema.{}", i);
    const at::Tensor& t = find_key(state, key, source);
    if (t.sizes() != shadow_[i].sizes())
      throw DataError(fmt::format("{}: key '{}' has shape [{}], expected [{}]", source, key,
                                  fmt::join(t.sizes(), ","), fmt::join(shadow_[i].sizes(), ",")));
  }
  for (size_t i = 0; i < shadow_.size(); ++i)
    copy_checked(shadow_[i], find_key(state, fmt::format("ema.{}", i), source), "ema", source);
}

// ------------------------------------------------------------------------------------------------ metrics

std::vector<double> pos_weights(const std::vector<std::vector<float>>& labels, std::vector<int64_t>* positives) {
  DAUG_CHECK(!labels.empty(), "pos_weights: no labels");
  const size_t k = labels.front().size();
  std::vector<int64_t> pos(k, 0);
  for (const auto& row : labels) {
    DAUG_CHECK(row.size() == k, "pos_weights: label rows must all have ", k, " columns, but got ", row.size());
    for (size_t j = 0; j < k; ++j)
      if (row[j] > 0.5f) ++pos[j];
  }
  std::vector<double> w(k, 1.0);
  const auto n = static_cast<int64_t>(labels.size());
  for (size_t j = 0; j < k; ++j)
    if (pos[j] > 0) w[j] = static_cast<double>(n - pos[j]) / static_cast<double>(pos[j]);
  if (positives) *positives = pos;
  return w;
}

double average_precision(const std::vector<double>& scores, const std::vector<float>& labels) {
  DAUG_CHECK(scores.size() == labels.size(), "average_precision: ", scores.size(), " scores but ", labels.size(),
             " labels");
  int64_t total_pos = 0;
  for (float l : labels)
    if (l > 0.5f) ++total_pos;
  if (total_pos == 0) return NAN;
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  double ap = 0.0, prev_recall = 0.0;
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (labels[order[i]] > 0.5f) ++tp; else ++fp;
    bool group_end = i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]];
    if (!group_end) continue;
    double recall = static_cast<double>(tp) / static_cast<double>(total_pos);
    double precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return ap;
}

// ------------------------------------------------------------------------------------------------ heatmaps

std::vector<int64_t> shard_indices(int64_t n, int index, int count) {
  DAUG_CHECK_AS(ConfigError, count >= 1 && index >= 0 && index < count, "--shard must be k/N with 0 <= k < N, but got ",
                index, "/", count);
  std::vector<int64_t> out;
  for (int64_t i = index; i < n; i += count) out.push_back(i);
  return out;
}

at::Tensor hot_colormap(const at::Tensor& x) {
  DAUG_CHECK(x.dim() == 2, "hot_colormap expects [H,W], but got ", x.sizes());
  at::Tensor v = x.to(at::kFloat).clamp(0.0, 1.0);
  // matplotlib _hot_data: red (0,0.0416)→(0.365079,1); green (0.365079,0)→(0.746032,1); blue (0.746032,0)→(1,1).
  at::Tensor r = (0.0416 + v * ((1.0 - 0.0416) / 0.365079)).clamp(0.0, 1.0);
  at::Tensor g = ((v - 0.365079) / (0.746032 - 0.365079)).clamp(0.0, 1.0);
  at::Tensor b = ((v - 0.746032) / (1.0 - 0.746032)).clamp(0.0, 1.0);
  return at::stack({r, g, b});
}

at::Tensor overlay_panel(const at::Tensor& input, const at::Tensor& translated, const at::Tensor& heat) {
  auto show = [](const at::Tensor& img) {
    at::Tensor c0 = img.to(at::kCPU).to(at::kFloat).select(0, 0);
    return data::minmax(c0.unsqueeze(0)).expand({3, c0.size(0), c0.size(1)});
  };
  return at::cat({show(input), show(translated), hot_colormap(heat.to(at::kCPU))}, 2).contiguous();
}

std::string heatmap_file_name(const std::string& id, int direction, const std::string& tag) {
  return id + "_" + (direction >= 0 ? "+" : "-") + tag + ".npy";
}

}  // namespace daug::stages

#include <fstream>
#include <sstream>

namespace daug::stages {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<int>(c));
        else out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "null"; }

std::string read_text_if_exists(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t resolve_seed(int64_t option, uint64_t run_seed) {
  DAUG_CHECK_AS(ConfigError, option >= -1, "seed must be >= 0, or -1 for the run seed, but got ", option);
  return option < 0 ? run_seed : static_cast<uint64_t>(option);
}

}  // namespace daug::stages
