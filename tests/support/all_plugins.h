#pragma once
/// The built plugins, loaded once per test process, for tests that compose real components through the core
/// (link daug_core). Never destroyed: plugin libraries are never unloaded.
#include <daug/core/plugin_loader.h>

namespace daug::testing {

inline const daug::core::PluginLoader& all_plugins() {
  static auto* l = [] {
    auto* p = new daug::core::PluginLoader();
    p->load_all();
    return p;
  }();
  return *l;
}

}  // namespace daug::testing
