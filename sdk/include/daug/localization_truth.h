#pragma once
/// LocalizationTruth: the ground-truth regions a Source knows for some of its images (hand-drawn boxes, the masks
/// of inserted lesions), for scoring how well heatmaps localise findings. A Source that has them derives from this
/// class as well; consumers find it with daug::localization_truth(source).
#include <daug/api.h>

#include <filesystem>
#include <string>
#include <vector>

namespace daug {

class Source;

/// One ground-truth box of one image.
struct TruthBox {
  std::string id;     ///< Sample::id of the image
  std::string label;  ///< the finding, in the dataset's spelling (e.g. "Effusion", "nodule")
  double x = 0, y = 0, w = 0, h = 0;  ///< top-left corner and size, in pixels of the image file
  double image_w = 0, image_h = 0;    ///< size of the image file the box is in, in pixels
};

class DAUG_SDK_API LocalizationTruth {
 public:
  virtual ~LocalizationTruth();
  /// Every box, in the order the dataset lists them; an image may have several, also of one label.
  virtual const std::vector<TruthBox>& truth_boxes() const = 0;
  /// The pixel mask of image `id` (a .npy of H×W uint8 at the image file's resolution, nonzero = finding), or an
  /// empty path when the source has boxes only (or none for this image).
  virtual std::filesystem::path truth_mask(const std::string& id) const;
};

/// The source's ground truth, or nullptr when it has none.
DAUG_SDK_API const LocalizationTruth* localization_truth(const Source& source);

}  // namespace daug
