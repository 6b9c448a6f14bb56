// The pickle inside a torch.save zip, as `backbone_clip_vit` reads it (torch::jit::load, then
// torch::jit::pickle_load). Mutating a whole zip mostly breaks its CRCs, so here the input is the archive's
// records and the target writes a well-formed zip around them with LibTorch's own writer: part 0 (parts are
// separated by lines "%%") is data.pkl, part k is data/<k-1> (the tensor storages).
#include "fuzz_target.h"

#include "clip_weights.h"

#include <caffe2/serialize/inline_container.h>

#include <string>

DAUG_FUZZ_TARGET(torch_pickle) {
  const std::vector<std::string> parts = daug::fuzz::split_parts(data, size);
  std::string zip;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
      zip.append(static_cast<const char*>(buf), n);
      return n;
    });
    writer.writeRecord("data.pkl", parts[0].data(), parts[0].size());
    for (size_t k = 1; k < parts.size(); ++k)
      writer.writeRecord("data/" + std::to_string(k - 1), parts[k].data(), parts[k].size());
    writer.writeEndOfFile();
  }
  const auto path = daug::fuzz::write_scratch("state_dict.pt", zip.data(), zip.size());
  namespace clip = daug::plugins::clip;
  (void)clip::read_clip_weights(path.string(), clip::WeightsFormat::openai);
}
