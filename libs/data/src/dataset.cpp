#include <daug/data/dataset.h>

#include <daug/error.h>
#include <daug/log.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

namespace daug::data {

SmallImages::SmallImages(std::string where) : where_(std::move(where)) {}

SmallImages::~SmallImages() {
  try {
    report();
  } catch (...) {  // a destructor must not throw; the warning is advisory
  }
}

void SmallImages::note(const std::string& key, int64_t h, int64_t w, int64_t need_h, int64_t need_w) {
  if (h >= need_h && w >= need_w) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (!seen_.insert(key).second) return;
  if (seen_.size() == 1)
    log::warn(
        "{}: image '{}' is {}x{}, smaller than the {}x{} model input; it is upsampled and carries little "
        "detail (further small images are counted, not listed)",
        where_, key, h, w, need_h, need_w);
  ++unreported_;
  if (smallest_.empty() || h * w < smallest_px_) {
    smallest_ = fmt::format("'{}' ({}x{})", key, h, w);
    smallest_px_ = h * w;
  }
  need_h_ = need_h;
  need_w_ = need_w;
}

void SmallImages::report() {
  std::lock_guard<std::mutex> lock(mu_);
  if (unreported_ == 0) return;
  log::warn("{}: {} image(s) smaller than the {}x{} model input were upsampled; smallest: {}", where_, unreported_,
            need_h_, need_w_, smallest_);
  unreported_ = 0;
}

int64_t SmallImages::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(seen_.size());
}

at::Tensor load_sample_image(const Sample& sample, int64_t h, int64_t w, Filter filter, bool rgb, bool reduced,
                             SmallImages* small) {
  DAUG_CHECK(h > 0 && w > 0, "load_sample_image: size must be positive, but got ", h, "x", w);
  DAUG_CHECK(!(rgb && reduced), "load_sample_image: `reduced` decoding is for gray images only");
  at::Tensor img;
  try {
    img = rgb ? load_rgb(sample.image) : reduced ? load_gray_reduced(sample.image, h, w) : load_gray(sample.image);
  } catch (const DataError& e) {
    throw DataError(fmt::format("sample '{}': {}", sample.id, e.what()));
  }
  if (small == nullptr) {
    // Callers without their own counter: one process-wide, never destroyed (so it never reports a total at exit).
    static SmallImages* const fallback = new SmallImages("images");
    small = fallback;
  }
  // A DCT-reduced JPEG decode is at least h×w exactly when the full image is.
  small->note(sample.id, img.size(1), img.size(2), h, w);
  if (img.size(1) != h || img.size(2) != w) img = resize(img, h, w, filter);
  return img;
}

at::Tensor load_images(const std::vector<const Sample*>& samples, int64_t h, int64_t w, Filter filter, bool rgb,
                       bool reduced, SmallImages* small) {
  DAUG_CHECK(!samples.empty(), "load_images: no samples given");
  at::Tensor out = at::empty({static_cast<int64_t>(samples.size()), rgb ? 3 : 1, h, w}, at::kFloat);
  for (size_t i = 0; i < samples.size(); ++i)
    out[static_cast<int64_t>(i)].copy_(load_sample_image(*samples[i], h, w, filter, rgb, reduced, small));
  return out;
}

at::Tensor class_labels(const std::vector<const Sample*>& samples) {
  const int64_t k = static_cast<int64_t>(kChexpertClasses.size());
  at::Tensor out = at::empty({static_cast<int64_t>(samples.size()), k}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (size_t i = 0; i < samples.size(); ++i) {
    DAUG_CHECK(static_cast<int64_t>(samples[i]->labels.size()) == k, "sample '", samples[i]->id, "' has ",
               samples[i]->labels.size(), " labels, expected ", k);
    for (int64_t j = 0; j < k; ++j) o[i * k + j] = samples[i]->labels[j];
  }
  return out;
}

at::Tensor superclass_labels(const std::vector<const Sample*>& samples, const SuperClassGrouping& grouping) {
  const int64_t k = grouping.size();
  at::Tensor out = at::empty({static_cast<int64_t>(samples.size()), k}, at::kFloat);
  float* o = out.data_ptr<float>();
  for (size_t i = 0; i < samples.size(); ++i) {
    auto pooled = grouping.pool(samples[i]->labels);
    for (int64_t j = 0; j < k; ++j) o[i * k + j] = pooled[j];
  }
  return out;
}

std::vector<const Sample*> pointers(const std::vector<Sample>& all) {
  std::vector<const Sample*> out;
  out.reserve(all.size());
  for (const auto& s : all) out.push_back(&s);
  return out;
}

}  // namespace daug::data
