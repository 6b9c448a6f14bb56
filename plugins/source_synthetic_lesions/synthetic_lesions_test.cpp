// The synthetic_lesions source: lesion geometry against closed forms, the images and masks it writes against the
// backgrounds, determinism, reuse, and its option errors.
#include "lesions.h"
#include "synthetic_lesions_source.h"

#include "fakes/sample_list_source.h"
#include "test_support.h"

#include <daug/data/csv.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/labels.h>
#include <daug/localization_truth.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace dt = daug::testing;
using namespace daug;
using namespace daug::plugins;

namespace {

constexpr double kPi = 3.14159265358979323846;

int64_t count(const std::vector<uint8_t>& m) {
  int64_t n = 0;
  for (auto v : m) n += v;
  return n;
}

// Plain backgrounds of constant grey 0.4 (102/255), one per split.
class GreySource final : public dt::SampleListSource {
 public:
  GreySource(const std::filesystem::path& dir, int n) {
    std::filesystem::create_directories(dir);
    for (int i = 0; i < n; ++i) {
      Sample s;
      s.id = "img" + std::to_string(i);
      s.image = dir / (s.id + ".png");
      s.split = i % 3 == 0 ? "test" : "train";
      s.labels.assign(14, 0.f);
      data::save_png(s.image, at::full({1, 256, 256}, 102.0 / 255.0));
      samples_.push_back(s);
    }
  }
  std::string describe() const override { return "grey"; }
  std::string fingerprint() const override { return "grey-v1"; }
};

struct Built {
  std::shared_ptr<Source> src;
  const SyntheticLesionsSource* syn;
};

Built build(dt::TestContext& ctx, SyntheticLesionsOptions o) {
  o.source = "bg";
  auto s = SyntheticLesionsSource::create(std::move(o), ctx);
  return {s, dynamic_cast<const SyntheticLesionsSource*>(s.get())};
}

}  // namespace

TEST(Lesions, NoduleIsADiscOfTheDrawnRadiusWithASphericalProfile) {
  lesions::Params p;
  p.nodule_radius[0] = p.nodule_radius[1] = 20;  // fixed radius: area π·20² ≈ 1256.6 px
  lesions::Rng rng(7);
  const auto l = lesions::draw(lesions::Kind::nodule, 256, 256, p, rng);
  EXPECT_NEAR(static_cast<double>(count(l.mask)), kPi * 400, 0.02 * kPi * 400);
  EXPECT_NEAR(static_cast<double>(l.x1 - l.x0 + 1), 40, 1.01);
  EXPECT_NEAR(static_cast<double>(l.y1 - l.y0 + 1), 40, 1.01);
  // The profile peaks at 1 in the centre (chord through the ball's middle) and is 0 outside the disc.
  float peak = 0;
  for (size_t k = 0; k < l.profile.size(); ++k) {
    peak = std::max(peak, l.profile[k]);
    if (!l.mask[k]) EXPECT_EQ(l.profile[k], 0.f);
  }
  EXPECT_GT(peak, 0.99f);
  // Inside a lung field of the image.
  const double cx = (l.x0 + l.x1 + 1) / 2.0 / 256, cy = (l.y0 + l.y1 + 1) / 2.0 / 256;
  EXPECT_TRUE((cx > 0.19 && cx < 0.43) || (cx > 0.57 && cx < 0.81)) << cx;
  EXPECT_TRUE(cy > 0.27 && cy < 0.71) << cy;
}

TEST(Lesions, EffusionFillsALungBaseAndRisesLaterally) {
  lesions::Params p;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    lesions::Rng rng(seed);
    const auto l = lesions::draw(lesions::Kind::effusion, 256, 256, p, rng);
    ASSERT_GT(count(l.mask), 100);
    EXPECT_GT(l.y0, 256 * 0.74 - 60 - 1);
    EXPECT_LE(l.y1, static_cast<int64_t>(256 * 0.80) + 1);
    // The column nearest the lateral wall holds more fluid than the medial one.
    const bool right = l.where.find("right") != std::string::npos;
    auto column = [&](int64_t x) {
      int64_t n = 0;
      for (int64_t y = 0; y < 256; ++y) n += l.mask[static_cast<size_t>(y * 256 + x)];
      return n;
    };
    EXPECT_GT(column(right ? l.x0 + 1 : l.x1 - 1), column(right ? l.x1 - 1 : l.x0 + 1)) << l.where;
  }
}

TEST(Lesions, ConsolidationIsAConnectedTexturedPatch) {
  lesions::Params p;
  lesions::Rng rng(3);
  const auto l = lesions::draw(lesions::Kind::consolidation, 256, 256, p, rng);
  const int64_t n = count(l.mask);
  EXPECT_GT(n, 0.2 * 40 * 40 * 0.2);
  EXPECT_LE(l.x1 - l.x0 + 1, 70 * 1.3 + 2);
  // Textured: the profile inside the mask is not constant.
  float lo = 2, hi = -1;
  for (size_t k = 0; k < l.mask.size(); ++k)
    if (l.mask[k]) lo = std::min(lo, l.profile[k]), hi = std::max(hi, l.profile[k]);
  EXPECT_GT(hi - lo, 0.1f);
}

TEST(Lesions, TheSameSeedDrawsTheSameLesion) {
  lesions::Params p;
  lesions::Rng a(11), b(11), c(12);
  const auto la = lesions::draw(lesions::Kind::consolidation, 128, 128, p, a);
  const auto lb = lesions::draw(lesions::Kind::consolidation, 128, 128, p, b);
  const auto lc = lesions::draw(lesions::Kind::consolidation, 128, 128, p, c);
  EXPECT_EQ(la.mask, lb.mask);
  EXPECT_EQ(la.profile, lb.profile);
  EXPECT_NE(la.mask, lc.mask);
}

TEST(SyntheticLesions, ImagesMasksBoxesAndLabelsMatchTheDrawnLesions) {
  dt::TempDir tmp;
  dt::TestContext ctx;
  ctx.add("bg", std::make_shared<GreySource>(tmp.path() / "bg", 24));
  SyntheticLesionsOptions o;
  o.contrast = {0.3};
  o.out_dir = (tmp.path() / "syn").string();
  auto b = build(ctx, o);
  const auto& g = b.src->superclasses();
  ASSERT_EQ(g.names, (std::vector<std::string>{"No Finding", "Nodule", "Consolidation", "Effusion"}));
  const auto* truth = localization_truth(*b.src);
  ASSERT_NE(truth, nullptr);
  ASSERT_EQ(b.src->samples().size(), 24u);
  int lesioned = 0;
  for (const auto& s : b.src->samples()) {
    const auto pooled = g.pool(s.labels);
    EXPECT_EQ(std::count(pooled.begin(), pooled.end(), 1.f), 1) << s.id;  // exactly one super-class
    const auto mask_path = truth->truth_mask(s.id);
    if (pooled[0] == 1.f) {
      EXPECT_TRUE(mask_path.empty());
      EXPECT_EQ(s.image, tmp.path() / "bg" / (s.id + ".png"));  // healthy images are the originals
      continue;
    }
    ++lesioned;
    const at::Tensor img = data::load_gray(s.image)[0];
    const at::Tensor mask = data::load_npy(mask_path).to(at::kBool);
    ASSERT_EQ(mask.sizes(), img.sizes());
    const at::Tensor diff = img - 102.0 / 255.0;
    // Nothing changes far from the lesion, and inside the mask the image got brighter by at most the contrast.
    EXPECT_LT(diff.masked_select(mask.logical_not()).abs().max().item<double>(), 0.3 + 1e-6);
    EXPECT_GT(diff.masked_select(mask).mean().item<double>(), 0.05);
    EXPECT_LE(diff.max().item<double>(), 0.3 + 0.5 / 255);
    // The box is the mask's bounding box.
    int found = 0;
    for (const auto& box : truth->truth_boxes())
      if (box.id == s.id) {
        ++found;
        const auto rows = mask.any(1).nonzero(), cols = mask.any(0).nonzero();
        EXPECT_EQ(box.y, rows.min().item<int64_t>());
        EXPECT_EQ(box.x, cols.min().item<int64_t>());
        EXPECT_EQ(box.x + box.w - 1, cols.max().item<int64_t>());
        EXPECT_EQ(box.y + box.h - 1, rows.max().item<int64_t>());
        EXPECT_EQ(box.image_w, 256);
      }
    EXPECT_EQ(found, 1);
  }
  EXPECT_GT(lesioned, 4);
  EXPECT_LT(lesioned, 20);
  // boxes.csv in the evaluate-heatmaps format, one row per lesion.
  const auto boxes = data::CsvTable::read(tmp.path() / "syn" / "boxes.csv");
  EXPECT_EQ(boxes.header(), (std::vector<std::string>{"image", "label", "x", "y", "w", "h"}));
  EXPECT_EQ(static_cast<int>(boxes.rows()), lesioned);
}

TEST(SyntheticLesions, GeometryIsTheSameAtEveryContrastAndTheKeyIgnoresOutDir) {
  dt::TempDir tmp;
  dt::TestContext ctx;
  ctx.add("bg", std::make_shared<GreySource>(tmp.path() / "bg", 12));
  SyntheticLesionsOptions o;
  o.fraction = 1;
  o.contrast = {0.2};
  o.out_dir = (tmp.path() / "a").string();
  auto a = build(ctx, o);
  o.contrast = {0.4};
  o.out_dir = (tmp.path() / "b").string();
  auto b = build(ctx, o);
  o.out_dir = (tmp.path() / "c").string();
  auto c = build(ctx, o);
  ASSERT_EQ(a.syn->truth_boxes().size(), 12u);
  for (size_t i = 0; i < 12; ++i) {
    const auto &ba = a.syn->truth_boxes()[i], &bb = b.syn->truth_boxes()[i];
    EXPECT_EQ(std::make_tuple(ba.id, ba.label, ba.x, ba.y, ba.w, ba.h),
              std::make_tuple(bb.id, bb.label, bb.x, bb.y, bb.w, bb.h));
  }
  EXPECT_NE(a.src->fingerprint(), b.src->fingerprint());  // contrast changes the data
  EXPECT_EQ(b.src->fingerprint(), c.src->fingerprint());  // the folder does not
}

TEST(SyntheticLesions, ACompleteFolderIsReusedAndAForeignOneRefused) {
  dt::TempDir tmp;
  dt::TestContext ctx;
  ctx.add("bg", std::make_shared<GreySource>(tmp.path() / "bg", 6));
  SyntheticLesionsOptions o;
  o.fraction = 1;
  o.out_dir = (tmp.path() / "syn").string();
  auto a = build(ctx, o);
  const auto png = a.src->samples()[0].image;
  const auto t0 = std::filesystem::last_write_time(png);
  auto again = build(ctx, o);  // reuses: nothing rewritten
  EXPECT_EQ(std::filesystem::last_write_time(png), t0);
  EXPECT_EQ(again.src->fingerprint(), a.src->fingerprint());
  // The same folder with other options: an error naming it, nothing overwritten.
  o.contrast = {0.1};
  try {
    build(ctx, o);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("other options"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find((tmp.path() / "syn").string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(std::filesystem::last_write_time(png), t0);
  // A deleted file of a complete folder is named.
  std::filesystem::remove(png);
  o.contrast = SyntheticLesionsOptions{}.contrast;
  EXPECT_THROW(build(ctx, o), DataError);
}

TEST(SyntheticLesions, OneClassGroupsEveryKind) {
  dt::TempDir tmp;
  dt::TestContext ctx;
  ctx.add("bg", std::make_shared<GreySource>(tmp.path() / "bg", 3));
  SyntheticLesionsOptions o;
  o.one_class = true;
  o.kinds = {"nodule", "effusion"};
  o.out_dir = (tmp.path() / "syn").string();
  auto b = build(ctx, o);
  EXPECT_EQ(b.src->superclasses().names, (std::vector<std::string>{"No Finding", "Lesion"}));
  EXPECT_EQ(b.src->superclasses().members[1].size(), 2u);
}

TEST(SyntheticLesions, BadRangesAreConfigErrors) {
  dt::TempDir tmp;
  dt::TestContext ctx;
  ctx.add("bg", std::make_shared<GreySource>(tmp.path() / "bg", 2));
  SyntheticLesionsOptions o;
  o.contrast = {0.5, 0.2};
  o.out_dir = (tmp.path() / "syn").string();
  try {
    build(ctx, o);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("contrast must be [lo, hi]"), std::string::npos) << e.what();
  }
  o.contrast = {0.3};
  o.kinds = {};
  EXPECT_THROW(build(ctx, o), ConfigError);
}
