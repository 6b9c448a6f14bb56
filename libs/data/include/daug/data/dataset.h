#pragma once
/// Turning Source samples into tensors: images at a given size, 14-class labels, super-class labels.
///
/// Example:
///   auto src = ctx.component<daug::Source>("data");
///   auto items = src->split("train");
///   at::Tensor x = daug::data::load_images(items, 256, 256);              // [N,1,256,256] in [0,1]
///   at::Tensor y = daug::data::superclass_labels(items, src->superclasses()); // [N,7]
#include <daug/data/image.h>
#include <daug/labels.h>
#include <daug/source.h>
#include <daug/tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace daug::data {

/// Images smaller than the model input: they are upsampled, so the model sees little real detail (a 1×1 image
/// gives a meaningless heatmap). One warning for the first such image, then a count (report()) instead of a line
/// per image. Thread-safe; an image (by key, e.g. the sample id) counts once however often it is loaded.
class SmallImages {
 public:
  /// `where` starts the messages, e.g. "heatmaps" or "[data] images".
  explicit SmallImages(std::string where);
  /// Calls report().
  ~SmallImages();
  SmallImages(const SmallImages&) = delete;
  SmallImages& operator=(const SmallImages&) = delete;
  /// An image `key` decoded at h×w for a model input of need_h×need_w: counted when h < need_h or w < need_w.
  void note(const std::string& key, int64_t h, int64_t w, int64_t need_h, int64_t need_w);
  /// Logs the count of images noted small since the last report (nothing when none).
  void report();
  /// Images noted small so far.
  int64_t count() const;

 private:
  std::string where_;
  mutable std::mutex mu_;
  std::unordered_set<std::string> seen_;
  int64_t unreported_ = 0;
  std::string smallest_;
  int64_t smallest_px_ = 0, need_h_ = 0, need_w_ = 0;
};

/// Loads one sample's image as gray [1,h,w] (or RGB [3,h,w] with `rgb`) in [0,1], resized with `filter` when its
/// size differs (aspect not kept, as DAug's Resize([s,s])). With `reduced` (gray only), JPEGs are first decoded at
/// a DCT-reduced size >= h×w (load_gray_reduced). Errors name the sample id and the file.
/// Images smaller than h×w are noted in `small` (or, when it is null, in one process-wide SmallImages that warns
/// about the first only).
at::Tensor load_sample_image(const Sample& sample, int64_t h, int64_t w, Filter filter = Filter::bicubic,
                             bool rgb = false, bool reduced = false, SmallImages* small = nullptr);

/// Stacks load_sample_image over `samples`: [N,1,h,w] (or [N,3,h,w]), float32, CPU.
at::Tensor load_images(const std::vector<const Sample*>& samples, int64_t h, int64_t w, Filter filter = Filter::bicubic,
                       bool rgb = false, bool reduced = false, SmallImages* small = nullptr);

/// [N,14] float32 labels in kChexpertClasses order (NaN where ignored).
at::Tensor class_labels(const std::vector<const Sample*>& samples);

/// [N,K] float32 super-class labels (max-pool of the members; NaN counts as 0).
at::Tensor superclass_labels(const std::vector<const Sample*>& samples, const SuperClassGrouping& grouping);

/// Every sample of `all`, as pointers (for the helpers above).
std::vector<const Sample*> pointers(const std::vector<Sample>& all);

}  // namespace daug::data
