#pragma once
/// Error types shared by the core and every plugin. They live in libdaug_sdk.so so that a plugin's throw is
/// caught by type in the host. Messages say what must hold, what was found, and where.
///
/// Example:
///   DAUG_CHECK(scale >= 0, "[guidance].scale must be >= 0, but got ", scale);
#include <daug/api.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace daug {

/// Base of every daug error.
class DAUG_SDK_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
};

/// A configuration problem: unknown key, wrong type, bad value, missing import. The message carries file:line:col.
class DAUG_SDK_API ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};

/// A problem with input data: an unreadable image, a malformed CSV, a corrupt .npy or checkpoint.
class DAUG_SDK_API DataError : public Error {
 public:
  using Error::Error;
  ~DataError() override;
};

/// A plugin could not be found, loaded, or built.
class DAUG_SDK_API PluginError : public Error {
 public:
  using Error::Error;
  ~PluginError() override;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace daug

/// Throws daug::Error with the concatenated arguments when `cond` is false.
#define DAUG_CHECK(cond, ...)                                         \
  do {                                                                \
    if (!(cond)) throw ::daug::Error(::daug::detail::concat(__VA_ARGS__)); \
  } while (0)

/// Same as DAUG_CHECK with a chosen error type (ConfigError, DataError, ...).
#define DAUG_CHECK_AS(ErrorType, cond, ...)                           \
  do {                                                                \
    if (!(cond)) throw ErrorType(::daug::detail::concat(__VA_ARGS__)); \
  } while (0)
