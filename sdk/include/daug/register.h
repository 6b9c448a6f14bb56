#pragma once
/// DAUG_REGISTER_PLUGIN(Interface, "name", Class, "one-line summary"): use once, at the end of the plugin's .cpp.
///
/// Requires: Class derives from Interface; Class::Options has `void visit(daug::OptionVisitor&)`;
///           `static std::shared_ptr<Interface> Class::create(Options, daug::BuildContext&)`.
/// A second registration in the same library is a duplicate-symbol link error (one plugin per library).
///
/// Example:
///   DAUG_REGISTER_PLUGIN(daug::Guidance, "softmax", daug::plugins::SoftmaxGuidance,
///                        "∇ log softmax(f(x_t,t))[y] (DAug: softmax for testing)")
#include <daug/api.h>
#include <daug/build_context.h>
#include <daug/manifest.h>
#include <daug/options.h>

#include <torch/version.h>

#include <memory>
#include <type_traits>

namespace daug::detail {

template <class T, class = void>
struct has_visit : std::false_type {};
template <class T>
struct has_visit<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<OptionVisitor&>()))>>
    : std::true_type {};

template <class Interface, class Class>
std::shared_ptr<Component> create_plugin(const ConfigView& cfg, BuildContext& ctx) {
  auto opts = read_options<typename Class::Options>(cfg);
  std::shared_ptr<Interface> made = Class::create(std::move(opts), ctx);
  return std::static_pointer_cast<Component>(made);
}

template <class Class>
std::string effective_options(const ConfigView& cfg, OptionScope scope) {
  auto opts = read_options<typename Class::Options>(cfg);
  return dump_options(opts, scope);
}

template <class Interface, class Class>
PluginManifest make_manifest(const char* name, const char* summary) {
  return PluginManifest{static_cast<uint32_t>(sizeof(PluginManifest)),
                        DAUG_SDK_ABI_VERSION,
                        TORCH_VERSION,
                        _GLIBCXX_USE_CXX11_ABI,
                        Interface::kInterface,
                        name,
                        summary,
                        &create_plugin<Interface, Class>,
                        &describe_options<typename Class::Options>,
                        &effective_options<Class>};
}

}  // namespace daug::detail

#define DAUG_REGISTER_PLUGIN(Interface, Name, Class, Summary)                                         \
  /* READ ME: if this fails, your plugin class does not derive from the interface you register it as. */ \
  static_assert(std::is_base_of_v<Interface, Class>,                                                  \
                "DAUG_REGISTER_PLUGIN: " #Class " must derive from " #Interface);                     \
  /* READ ME: if this fails, add `void visit(daug::OptionVisitor& v)` to " #Class "::Options. */        \
  static_assert(::daug::detail::has_visit<typename Class::Options>::value,                            \
                "DAUG_REGISTER_PLUGIN: " #Class "::Options must have void visit(daug::OptionVisitor&)"); \
  extern "C" DAUG_PLUGIN_EXPORT const ::daug::PluginManifest* daug_plugin_manifest() {                \
    static const ::daug::PluginManifest manifest =                                                    \
        ::daug::detail::make_manifest<Interface, Class>(Name, Summary);                               \
    return &manifest;                                                                                 \
  }
