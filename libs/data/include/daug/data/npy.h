#pragma once
/// NumPy .npy files (format 1.0/2.0/3.0; float32, float64, uint8, int64, int32, bool; C order) for tensors
/// and heatmaps, readable with numpy.load.
#include <daug/tensor.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace daug::data {

/// Writes a CPU-convertible tensor as .npy, atomically (temp file + rename). Throws daug::Error on an
/// unsupported dtype.
void save_npy(const std::filesystem::path& path, const at::Tensor& tensor);

/// Reads a .npy file. Wrong magic, an unsupported dtype, Fortran order, big-endian data or a truncated payload
/// throw daug::DataError naming the file and what was expected vs found.
at::Tensor load_npy(const std::filesystem::path& path);

/// What a .npy file holds, read from its header alone (the payload is not read).
struct NpyInfo {
  std::vector<int64_t> shape;
  at::ScalarType dtype;
};

/// Reads and checks the header of a .npy file, and checks that the file size is exactly header + payload; cheap
/// (reads at most the header). Throws daug::DataError exactly as load_npy does for a bad magic/header/dtype or a
/// truncated or oversized payload: a file that passes loads with load_npy.
NpyInfo read_npy_info(const std::filesystem::path& path);

}  // namespace daug::data
