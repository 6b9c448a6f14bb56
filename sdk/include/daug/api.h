#pragma once
/// Visibility macros and the SDK ABI version.
///
/// Bump DAUG_SDK_ABI_VERSION on any change to a class or struct in sdk/include/daug: the plugin loader refuses
/// plugins built against another value, because a changed vtable or struct layout would crash at run time.

#define DAUG_SDK_ABI_VERSION 4
#define DAUG_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define DAUG_SDK_API __declspec(dllexport)
#define DAUG_PLUGIN_EXPORT __declspec(dllexport)
#else
/// Marks SDK symbols (libdaug_sdk.so) that plugins and the core link against.
#define DAUG_SDK_API __attribute__((visibility("default")))
/// Marks the one symbol a plugin exports: daug_plugin_manifest.
#define DAUG_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif
