#pragma once
/// Fingerprints of files a component reads from outside the config (Component::fingerprint()), for the stage cache.
#include <daug/api.h>

#include <filesystem>
#include <string>
#include <vector>

namespace daug {

/// "<path> <size> <mtime-ns>" plus, for files up to `hash_limit` bytes, a content hash: an edited file changes
/// it even when its size and time stamp do not. A missing file gives "<path> missing".
DAUG_SDK_API std::string file_fingerprint(const std::filesystem::path& file, uintmax_t hash_limit = 64u << 20);

/// One hex digest over many files: content-hashed `meta_files` (labels, manifests) and size+mtime of `files`
/// (images; stat only, so 250k files cost seconds, not minutes).
DAUG_SDK_API std::string files_fingerprint(const std::vector<std::filesystem::path>& meta_files,
                                           const std::vector<std::filesystem::path>& files);

}  // namespace daug
