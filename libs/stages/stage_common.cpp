// Shared stage code: images, metrics, heatmap helpers. See daug/stages/common.h.
#include <daug/stages/common.h>

#include <daug/communicator.h>
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

at::Tensor load_image(const Sample& sample, const ImagePrep& prep, data::SmallImages* small) {
  DAUG_CHECK(prep.shape.size() == 3, "image shape must be {C,H,W}, but got ", prep.shape.size(), " dims");
  at::Tensor gray = data::load_gray(sample.image);
  static data::SmallImages* const fallback = new data::SmallImages("images");  // never destroyed: no exit report
  (small ? small : fallback)->note(sample.id, gray.size(1), gray.size(2), prep.shape[1], prep.shape[2]);
  return prepare_image(gray, prep);
}

ImageBatcher::ImageBatcher(std::vector<const Sample*> items, ImagePrep prep, bool cache)
    : items_(std::move(items)),
      prep_(std::move(prep)),
      cache_(cache),
      small_(std::make_shared<data::SmallImages>(fmt::format("{} images", items_.size()))) {
  if (cache_) cached_.resize(items_.size());
}

at::Tensor ImageBatcher::image(int64_t i) {
  DAUG_CHECK(i >= 0 && static_cast<size_t>(i) < items_.size(), "batch index ", i, " out of range [0, ", items_.size(),
             ")");
  const auto u = static_cast<size_t>(i);
  if (!cache_) return load_image(*items_[u], prep_, small_.get());
  {
    std::lock_guard<std::mutex> lock(*cache_mu_);
    if (cached_[u].defined()) return cached_[u];
  }
  // Loaded unlocked; two workers may both load an index that two batches in flight share: same values either way.
  at::Tensor x = load_image(*items_[u], prep_, small_.get());
  std::lock_guard<std::mutex> lock(*cache_mu_);
  if (!cached_[u].defined()) cached_[u] = x;
  return cached_[u];
}

std::function<std::vector<at::Tensor>(int64_t)> ImageBatcher::item() {
  return [this](int64_t i) { return std::vector<at::Tensor>{image(i)}; };
}

at::Tensor ImageBatcher::batch(const std::vector<int64_t>& indices, const c10::Device& device) {
  std::vector<at::Tensor> xs;
  xs.reserve(indices.size());
  for (int64_t i : indices) xs.push_back(image(i));
  return at::stack(xs).to(device);
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

Check precision_choice() { return Check::choice({"", "fp32", "bf16", "fp16"}); }

Precision resolved_precision(const std::string& option) {
  return option.empty() ? Precision::fp32 : parse_precision(option, "precision");
}

void check_accumulate(int64_t batch_size, int64_t accumulate, const std::string& where,
                      const std::string& where_batch) {
  DAUG_CHECK_AS(ConfigError, accumulate >= 1 && batch_size % accumulate == 0, where, " = ", accumulate,
                ": must divide batch_size = ", batch_size, " (micro-batches of batch_size / accumulate images)");
  const int world = communicator().world_size();
  if (world == 1) return;
  DAUG_CHECK_AS(ConfigError, batch_size >= world, where_batch, " = ", batch_size,
                " must be at least the number of ranks (", world,
                "): batch_size is the global batch of a step, split over the ranks");
  DAUG_CHECK_AS(ConfigError, accumulate <= batch_size / world, where, " = ", accumulate,
                ": must be at most batch_size / ranks = ", batch_size, " / ", world, " = ", batch_size / world,
                " (each rank splits its share of the step's images into the micro-batches)");
}

void write_on_main_rank(const std::string& stage, const std::function<void()>& write) {
  Communicator& comm = communicator();
  if (comm.is_main()) write();
  comm.barrier(stage + ": rank 0 writes the results");
}

void set_precision_options(train::TrainerOptions& t, const std::string& precision, const std::string& device,
                           int64_t accumulate) {
  t.precision = resolved_precision(precision);
  t.device = device;
  t.accumulate = accumulate;
}

}  // namespace daug::stages
