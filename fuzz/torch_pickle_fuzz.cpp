// The pickles inside a torch.save / TorchScript zip. Mutating a whole zip mostly breaks its CRCs, so here the input
// is the archive's records and the target writes well-formed zips around them with LibTorch's own writer: part 0
// (parts are separated by lines "%%") is data.pkl, part k is data/<k-1> (the tensor storages). Each input is read
// twice through `backbone_clip_vit`'s reader (read_clip_weights, format openai): as a torch.save archive (daug's
// strict reader, sdk/src/torch_zip.cpp) and, with part 0 also stored as constants.pkl, as a TorchScript archive
// (pickle_check.cpp, then torch::jit::load).
#include "fuzz_target.h"

#include "clip_weights.h"

#include <daug/error.h>

#include <caffe2/serialize/inline_container.h>

#include <string>

namespace {
void read_archive(const std::vector<std::string>& parts, bool torchscript) {
  std::string zip;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* buf, size_t n) {
      zip.append(static_cast<const char*>(buf), n);
      return n;
    });
    writer.writeRecord("data.pkl", parts[0].data(), parts[0].size());
    if (torchscript) writer.writeRecord("constants.pkl", parts[0].data(), parts[0].size());
    for (size_t k = 1; k < parts.size(); ++k)
      writer.writeRecord("data/" + std::to_string(k - 1), parts[k].data(), parts[k].size());
    writer.writeEndOfFile();
  }
  const auto path = daug::fuzz::write_scratch("archive.pt", zip.data(), zip.size());
  namespace clip = daug::plugins::clip;
  (void)clip::read_clip_weights(path.string(), clip::WeightsFormat::openai);
}
}  // namespace

DAUG_FUZZ_TARGET(torch_pickle) {
  const std::vector<std::string> parts = daug::fuzz::split_parts(data, size);
  for (bool torchscript : {false, true}) {
    try {
      read_archive(parts, torchscript);
    } catch (const daug::Error&) {
      // rejected; try the other layout too
    }
  }
}
