#pragma once
/// A structural check of the pickles inside a TorchScript zip (OpenAI's ViT-B-32.pt), run before torch::jit::load
/// sees the bytes (torch.save files are read by daug's own strict reader, daug/torch_zip.h). LibTorch 1.13's
/// unpickler trusts the stack discipline of its input (an opcode that pops from an empty stack or mark list reads
/// out of bounds, a LONG_BINPUT of 2^32-1 allocates 4 billion memo slots), so a malformed file could crash the
/// process instead of giving an error (fuzz/regressions/torch_pickle).
#include <cstddef>
#include <string>

namespace daug::plugins::clip {

/// Checks that `bytes` is a protocol-2 pickle made only of the opcodes Python's pickler writes for torch.save
/// (and TorchScript) data, with every argument inside the buffer, every pop backed by the stack or a MARK, memo
/// ids assigned in order and read only once assigned, containers nested at most 1000 deep, and ending at STOP with
/// one value. Throws daug::DataError naming `where`, the byte offset and the opcode.
void check_pickle(const char* bytes, size_t size, const std::string& where);

/// Opens the zip at `path` and checks every `*.pkl` record with check_pickle. A file that is not a readable zip
/// throws daug::DataError.
void check_torch_zip(const std::string& path);

}  // namespace daug::plugins::clip
