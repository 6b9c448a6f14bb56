#pragma once
/// Base of every plugin-provided object. Each interface (Guidance, Generator, ...) derives from it, so the
/// core can own components of any kind in build order and cast them back with dynamic_pointer_cast.
#include <daug/api.h>

#include <string>

namespace daug {

class DAUG_SDK_API Component {
 public:
  virtual ~Component();
  /// One line naming the plugin and its key options, for logs: "softmax(scale=100, classes=all)".
  virtual std::string describe() const = 0;
  /// Identity of what this component read from outside the config (data files, pretrained weights), for the
  /// stage cache: a changed file must change it. Empty (the default) when it reads nothing. Sources return a
  /// fingerprint of their label/manifest files and image list (daug/data/fingerprint.h helps).
  virtual std::string fingerprint() const { return {}; }
};

}  // namespace daug
