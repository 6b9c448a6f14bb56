#include <daug/int_range.h>

#include <daug/error.h>

#include <ATen/ATen.h>

#include <algorithm>

namespace daug {

IntRange int_range(const at::Tensor& t) {
  DAUG_CHECK(t.defined(), "int_range: expected a tensor, but got none");
  IntRange r;
  if (t.numel() == 0) return r;
  const at::Tensor h = t.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = h.data_ptr<int64_t>();
  const auto [lo, hi] = std::minmax_element(p, p + h.numel());
  r.min = *lo;
  r.max = *hi;
  return r;
}

}  // namespace daug
