#pragma once
// TEST-ONLY: the base of the tests' hand-made Sources: a sample list (filled by the subclass) and the released
// super-class grouping.
#include <daug/labels.h>
#include <daug/source.h>

#include <vector>

namespace daug::testing {

class SampleListSource : public Source {
 public:
  const std::vector<Sample>& samples() const override { return samples_; }
  const SuperClassGrouping& superclasses() const override { return grouping_; }

 protected:
  std::vector<Sample> samples_;
  SuperClassGrouping grouping_ = SuperClassGrouping::released();
};

}  // namespace daug::testing
