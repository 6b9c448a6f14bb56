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

#include <vector>

namespace daug::data {

/// Loads one sample's image as gray [1,h,w] (or RGB [3,h,w] with `rgb`) in [0,1], resized with `filter` when its
/// size differs (aspect not kept, as DAug's Resize([s,s])). With `reduced` (gray only), JPEGs are first decoded at
/// a DCT-reduced size >= h×w (load_gray_reduced). Errors name the sample id and the file.
at::Tensor load_sample_image(const Sample& sample, int64_t h, int64_t w, Filter filter = Filter::bicubic,
                             bool rgb = false, bool reduced = false);

/// Stacks load_sample_image over `samples`: [N,1,h,w] (or [N,3,h,w]), float32, CPU.
at::Tensor load_images(const std::vector<const Sample*>& samples, int64_t h, int64_t w,
                       Filter filter = Filter::bicubic, bool rgb = false, bool reduced = false);

/// [N,14] float32 labels in kChexpertClasses order (NaN where ignored).
at::Tensor class_labels(const std::vector<const Sample*>& samples);

/// [N,K] float32 super-class labels (max-pool of the members; NaN counts as 0).
at::Tensor superclass_labels(const std::vector<const Sample*>& samples, const SuperClassGrouping& grouping);

/// Every sample of `all`, as pointers (for the helpers above).
std::vector<const Sample*> pointers(const std::vector<Sample>& all);

}  // namespace daug::data
