#pragma once
/// INTERNAL (core only): what the console log sink shows. Not in daug/log.h so that plugins do not depend on it.
#include <daug/api.h>
#include <daug/log.h>

#include <string>

namespace daug::log {

/// The console (stderr) shows messages at `min_level` and above, each line starting with `prefix`. The core calls
/// it on the ranks > 0 of a distributed run (warnings and errors, "[rank R] "); their full log goes to their own
/// file. set_console(Level::debug, "") restores the default.
DAUG_SDK_API void set_console(Level min_level, const std::string& prefix);

}  // namespace daug::log
