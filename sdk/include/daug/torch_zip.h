#pragma once
/// A strict reader of files written by Python's `torch.save` (the zip format of PyTorch >= 1.6): the zip store,
/// `<archive>/data.pkl` (a pickle) and the storages `<archive>/data/<key>`. Only data is rebuilt: the pickle
/// subset torch.save writes (dicts, OrderedDicts, lists, tuples, numbers, strings, tensors through
/// torch._utils._rebuild_tensor_v2 / _rebuild_parameter and persistent storage ids) is interpreted, any other
/// class is kept as an opaque value and nothing is ever called. Every read is bounds-checked; a malformed file
/// throws daug::DataError naming the source, the zip record or pickle byte offset, and what was expected.
#include <daug/api.h>
#include <daug/tensor.h>
#include <daug/trainable.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace daug {

/// The tensors of a torch.save'd state dict.
struct TorchStateDict {
  NamedTensors tensors;         ///< contiguous CPU tensors in file order, keys without the stripped prefix
  std::string container;        ///< "" for a bare state dict, else the checkpoint entry it came from ("state_dict")
  std::string stripped_prefix;  ///< "module." (DDP / DataParallel) or "_orig_mod." when every key had it, else ""
  std::vector<std::string> locations;  ///< distinct storage locations as saved ("cpu", "cuda:0"); all load on CPU
};

/// Parses a torch.save zip held in memory. The state dict is the top-level dict when all its values are tensors,
/// else its "state_dict", "model_state_dict", "model" or "module" entry (searched two levels deep), as training
/// checkpoints store it. `source` names the buffer in errors. The entry point the fuzz harness calls.
DAUG_SDK_API TorchStateDict parse_torch_zip(const uint8_t* data, size_t size, const std::string& source = "<buffer>");

/// Reads `path` and parses it with parse_torch_zip.
DAUG_SDK_API TorchStateDict load_torch_zip(const std::filesystem::path& path);

/// True when the buffer is a zip whose records include TorchScript's `constants.pkl` or `code/` (a
/// torch.jit.save archive, which parse_torch_zip does not read). A malformed zip gives false.
DAUG_SDK_API bool is_torchscript_zip(const uint8_t* data, size_t size);

}  // namespace daug
