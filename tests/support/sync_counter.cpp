#include "sync_counter.h"

#include <daug/error.h>

#include <ATen/record_function.h>
#include <ATen/core/ivalue.h>

#include <cstring>

namespace daug::testing {

namespace {

std::atomic<SyncCounter*> g_active{nullptr};

enum Kind { kItem = 0, kD2H = 1, kDynamic = 2, kH2D = 3 };

bool is(const char* name, const char* want) { return std::strcmp(name, want) == 0; }

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  SyncCounter* c = g_active.load();
  if (!c) return nullptr;
  const char* name = fn.name();
  if (!name) return nullptr;
  if (is(name, "aten::_local_scalar_dense")) {
    c->count(kItem);
  } else if (is(name, "aten::copy_")) {
    const auto in = fn.inputs();
    if (in.size() >= 2 && in[0].isTensor() && in[1].isTensor()) {
      const auto dst = in[0].toTensor().device(), src = in[1].toTensor().device();
      const bool non_blocking = in.size() >= 3 && in[2].isBool() && in[2].toBool();
      if (dst.is_cpu() && !src.is_cpu()) c->count(kD2H);
      else if (!dst.is_cpu() && src.is_cpu() && !non_blocking) c->count(kH2D);
    }
  } else if (is(name, "aten::nonzero") || is(name, "aten::nonzero_numpy") || is(name, "aten::masked_select") ||
             is(name, "aten::_unique") || is(name, "aten::_unique2") || is(name, "aten::unique_dim") ||
             is(name, "aten::unique_consecutive") || is(name, "aten::equal")) {
    c->count(kDynamic);
  }
  return nullptr;
}

}  // namespace

SyncCounter::SyncCounter() {
  SyncCounter* expected = nullptr;
  DAUG_CHECK(g_active.compare_exchange_strong(expected, this), "only one SyncCounter may be alive at a time");
  handle_ = at::addGlobalCallback(
      at::RecordFunctionCallback(&on_start).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
}

SyncCounter::~SyncCounter() {
  at::removeCallback(handle_);
  g_active.store(nullptr);
}

void SyncCounter::reset() {
  item_ = 0;
  d2h_ = 0;
  dynamic_ = 0;
  h2d_ = 0;
}

void SyncCounter::count(int kind) {
  switch (kind) {
    case kItem: ++item_; break;
    case kD2H: ++d2h_; break;
    case kDynamic: ++dynamic_; break;
    default: ++h2d_; break;
  }
}

std::string SyncCounter::summary() const {
  return "item=" + std::to_string(item()) + " d2h=" + std::to_string(d2h()) + " dynamic=" +
         std::to_string(dynamic()) + " (h2d=" + std::to_string(h2d()) + ")";
}

}  // namespace daug::testing
