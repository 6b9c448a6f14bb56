#pragma once
// TEST-ONLY: a Source over small PNGs written to a temp dir, with reports and labels, plus heatmap .npy files.
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/labels.h>
#include <daug/source.h>

#include "sample_list_source.h"

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace daug::testing {

class FakeSource final : public SampleListSource {
 public:
  /// n images of size×size in `dir`: image i is bright where class (i % 3) "is"; split by i: the last
  /// `n_test` are test, the rest alternate train/val. Labels: class (i%3)*4 positive (classes 0, 4, 8), and
  /// No Finding (13) for i % 3 == 0.
  FakeSource(const std::filesystem::path& dir, int n, int n_test, int64_t size = 20, bool generated = true) {
    std::filesystem::create_directories(dir);
    for (int i = 0; i < n; ++i) {
      Sample s;
      s.id = "img" + std::to_string(i);
      s.image = dir / (s.id + ".png");
      auto img = at::full({1, size, size}, 0.2f);
      const int c = i % 3;
      img.narrow(1, c * size / 3, size / 3).fill_(0.9f);
      img += 0.05f * at::rand({1, size, size});
      data::save_png(s.image, img.clamp(0, 1));
      s.labels.assign(14, 0.f);
      s.labels[static_cast<size_t>(c * 4)] = 1.f;
      if (c == 0) s.labels[13] = 1.f;
      if (i == 1) s.labels[5] = NAN;
      s.report = std::string(c == 0 ? "enlarged heart" : c == 1 ? "edema in both lungs" : "small effusion") +
                 " case " + std::to_string(i);
      s.report_generated = generated;
      s.split = i >= n - n_test ? "test" : (i % 2 ? "val" : "train");
      s.study = s.id;
      samples_.push_back(s);
    }
  }
  /// Writes <id><suffix> heatmaps (size×size float) into `dir` for every sample except those in `skip`.
  void write_heatmaps(const std::filesystem::path& dir, const std::string& suffix = "_+nof.npy",
                      std::vector<std::string> skip = {}) const {
    std::filesystem::create_directories(dir);
    std::string index = "id,split,file,target,direction\n";  // as the heatmaps stage publishes it
    for (const auto& s : samples_) {
      index += s.id + "," + s.split + "," + s.id + suffix + ",No Finding,+\n";
      if (std::find(skip.begin(), skip.end(), s.id) != skip.end()) continue;
      data::save_npy(dir / (s.id + suffix), at::rand({24, 24}));
    }
    std::ofstream(dir / "index.csv") << index;
  }
  std::string describe() const override { return "fake_source(" + std::to_string(samples_.size()) + ")"; }
};

}  // namespace daug::testing
