#pragma once
/// Checkpoints as safetensors files (readable by Python's `safetensors`), written atomically.
#include <daug/api.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <filesystem>
#include <map>
#include <string>

namespace daug {

/// Writes `tensors` (+ string metadata) to `path` as safetensors: write `path.tmp`, fsync, rename. A crash
/// leaves the previous file intact. Supported dtypes: F32, F16, BF16, F64, I64, I32, U8, BOOL.
DAUG_SDK_API void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                                   const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  NamedTensors tensors;                          ///< CPU tensors, in file order
  std::map<std::string, std::string> metadata;   ///< "__metadata__"
};

/// Reads a safetensors file with every offset and size bounds-checked. A truncated or malformed file throws
/// daug::DataError naming the file and the offending key.
DAUG_SDK_API SafetensorsFile load_safetensors(const std::filesystem::path& path);

/// Copies `src` into the tensors of `dst` (a model's state()) by key, converting dtype and device. Missing,
/// unexpected or mis-shaped keys throw daug::DataError naming `source`, the key and both shapes; nothing is
/// copied in that case. The usual body of Trainable::load_state.
DAUG_SDK_API void copy_state_checked(const NamedTensors& dst, const NamedTensors& src, const std::string& source);

/// Writes `text` to `path` atomically (temp file + rename).
DAUG_SDK_API void write_file_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace daug
