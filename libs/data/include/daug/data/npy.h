#pragma once
/// NumPy .npy files (format 1.0/2.0/3.0; float32, float64, uint8, int64, int32, bool; C order) for tensors
/// and heatmaps, readable with numpy.load.
#include <daug/tensor.h>

#include <filesystem>

namespace daug::data {

/// Writes a CPU-convertible tensor as .npy, atomically (temp file + rename). Throws daug::Error on an
/// unsupported dtype.
void save_npy(const std::filesystem::path& path, const at::Tensor& tensor);

/// Reads a .npy file. Wrong magic, an unsupported dtype, Fortran order, big-endian data or a truncated payload
/// throw daug::DataError naming the file and what was expected vs found.
at::Tensor load_npy(const std::filesystem::path& path);

}  // namespace daug::data
