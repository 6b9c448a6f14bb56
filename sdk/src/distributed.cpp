// The process's communicator and the training step's batch part. See daug/communicator.h, daug/batch_part.h.
#include <daug/batch_part.h>
#include <daug/communicator.h>
#include <daug/error.h>

#include <ATen/ATen.h>

#include <mutex>

namespace daug {

Communicator::~Communicator() = default;

namespace {
std::mutex g_comm_mutex;
std::shared_ptr<Communicator>& installed() {
  static std::shared_ptr<Communicator> c = std::make_shared<SingleProcessCommunicator>();
  return c;
}
thread_local BatchPart t_part;
}  // namespace

Communicator& communicator() {
  std::lock_guard<std::mutex> lock(g_comm_mutex);
  return *installed();
}

void set_communicator(std::shared_ptr<Communicator> c) {
  std::lock_guard<std::mutex> lock(g_comm_mutex);
  installed() = c ? std::move(c) : std::make_shared<SingleProcessCommunicator>();
}

BatchPart current_batch_part() { return t_part; }

BatchPartScope::BatchPartScope(BatchPart part) : previous_(t_part) {
  DAUG_CHECK(part.total >= 0 && part.offset >= 0 && (part.total == 0 || part.offset < part.total),
             "BatchPartScope: offset ", part.offset, " must lie in a batch of ", part.total, " items");
  t_part = part;
}
BatchPartScope::~BatchPartScope() { t_part = previous_; }

namespace {
// Whether a part of n items needs a whole-batch draw; checks that it fits.
bool partial(int64_t n, const char* what) {
  const BatchPart p = t_part;
  if (p.total == 0 || (p.offset == 0 && p.total == n)) return false;
  DAUG_CHECK(p.offset + n <= p.total, what, ": a part of ", n, " items at offset ", p.offset,
             " does not fit in the step's batch of ", p.total);
  return true;
}
}  // namespace

at::Tensor randn_like_part(const at::Tensor& like) {
  DAUG_CHECK(like.dim() >= 1, "randn_like_part: needs a batch dimension, got a 0-dim tensor");
  const int64_t n = like.size(0);
  if (!partial(n, "randn_like_part")) return at::randn_like(like);
  std::vector<int64_t> shape = like.sizes().vec();
  shape[0] = t_part.total;
  return at::randn(shape, like.options()).narrow(0, t_part.offset, n);
}

at::Tensor randint_part(int64_t low, int64_t high, int64_t n, const at::TensorOptions& options) {
  if (!partial(n, "randint_part")) return at::randint(low, high, {n}, options);
  return at::randint(low, high, {t_part.total}, options).narrow(0, t_part.offset, n);
}

}  // namespace daug
