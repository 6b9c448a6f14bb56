#pragma once
/// The 14 CheXpert/CheXbert classes and the super-class grouping used by the noise-aware classifier.
#include <daug/api.h>

#include <array>
#include <string>
#include <vector>

namespace daug {

/// The 14 classes in CheXbert `CONDITIONS` order (DAug's class_labels order).
inline constexpr std::array<const char*, 14> kChexpertClasses = {
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices", "No Finding"};

/// Index of a CheXpert class name in kChexpertClasses, or -1.
DAUG_SDK_API int chexpert_index(const std::string& name);

/// A grouping of the 14 classes into K super-classes (a super-class is positive if any member is).
struct DAUG_SDK_API SuperClassGrouping {
  std::vector<std::string> names;           ///< K display names
  std::vector<std::vector<int>> members;    ///< K lists of indices into kChexpertClasses

  /// The released DAug grouping (REFERENCE.md §1.2): No Finding | ECM+Cardiomegaly | Lung Lesion |
  /// Consolidation+Edema+Pneumonia | Atelectasis+Pneumothorax | Pleural Effusion+Pleural Other | Support Devices.
  static SuperClassGrouping released();
  /// Builds from names and member class names; throws ConfigError listing the 14 valid names on a typo.
  static SuperClassGrouping from_names(const std::vector<std::string>& names,
                                       const std::vector<std::vector<std::string>>& members,
                                       const std::string& where);
  int size() const { return static_cast<int>(names.size()); }
  /// Index of a super-class by name; throws ConfigError listing the valid names.
  int index_of(const std::string& name, const std::string& where) const;
  /// Max-pools 14 labels (1/0; NaN counts as 0) into K super-labels.
  std::vector<float> pool(const std::vector<float>& labels14) const;
};

}  // namespace daug
