#pragma once
/// Logging for plugins and the core. One sink (spdlog inside libdaug_sdk.so) that the CLI configures:
/// console plus the run directory's log file. Library code logs; it never prints.
///
/// Example:
///   daug::log::info("step {}/{} loss={:.4f}", step, total, loss);
#include <daug/api.h>

#include <fmt/core.h>

#include <string>
#include <string_view>

namespace daug::log {

enum class Level { debug, info, warn, error };

DAUG_SDK_API void write(Level level, std::string_view message);
/// Adds a file sink (the run directory's log). Called by the core.
DAUG_SDK_API void add_file_sink(const std::string& path);
/// Removes file sinks (end of a run), and drops messages held by hold_for_file_sink().
DAUG_SDK_API void remove_file_sinks();
/// Holds the messages logged from now on in memory; the next add_file_sink() writes them first. The core checks a
/// whole config before it creates the run directory, and the run's log still starts at the beginning.
DAUG_SDK_API void hold_for_file_sink();
DAUG_SDK_API void set_level(Level level);

template <class... A>
void debug(fmt::format_string<A...> f, A&&... a) { write(Level::debug, fmt::format(f, std::forward<A>(a)...)); }
template <class... A>
void info(fmt::format_string<A...> f, A&&... a) { write(Level::info, fmt::format(f, std::forward<A>(a)...)); }
template <class... A>
void warn(fmt::format_string<A...> f, A&&... a) { write(Level::warn, fmt::format(f, std::forward<A>(a)...)); }
template <class... A>
void error(fmt::format_string<A...> f, A&&... a) { write(Level::error, fmt::format(f, std::forward<A>(a)...)); }

}  // namespace daug::log
