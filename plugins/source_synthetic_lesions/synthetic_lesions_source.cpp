#include "synthetic_lesions_source.h"

#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/config_view.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/seed.h>
#include <daug/sources/source_util.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <system_error>

namespace daug::plugins {
namespace {

// Bump when the drawing changes: it enters the fingerprint, so cached stages built on older lesions are not reused.
constexpr const char* kVersion = "synthetic_lesions/1";

const std::vector<std::string> kKindNames = {"nodule", "consolidation", "effusion"};

lesions::Kind kind_of(const std::string& name) {
  if (name == "nodule") return lesions::Kind::nodule;
  if (name == "consolidation") return lesions::Kind::consolidation;
  return lesions::Kind::effusion;
}

// The CheXpert class that carries each kind (so that the 14-label machinery, reports and the classifier's
// super-classes work unchanged) and the super-class name shown in tables.
const char* chexpert_class(lesions::Kind k) {
  switch (k) {
    case lesions::Kind::nodule: return "Lung Lesion";
    case lesions::Kind::consolidation: return "Consolidation";
    case lesions::Kind::effusion: return "Pleural Effusion";
  }
  return "";
}

std::string report_for(const lesions::Lesion& l) {
  switch (l.kind) {
    case lesions::Kind::nodule: return fmt::format("A rounded nodular opacity in the {}.", l.where);
    case lesions::Kind::consolidation: return fmt::format("Patchy airspace consolidation in the {}.", l.where);
    case lesions::Kind::effusion: return fmt::format("Pleural effusion blunting the {}.", l.where);
  }
  return "";
}

std::array<double, 2> range_of(const std::vector<double>& v) { return {v[0], v.size() > 1 ? v[1] : v[0]}; }

}  // namespace

void SyntheticLesionsOptions::visit(OptionVisitor& v) {
  v("source", source, "config table of the Source whose images get lesions (e.g. an nih table)",
    Check::required_non_empty());
  v("split", split, "keep only these splits of the wrapped source: all, train, val, test or a '+' join (a "
    "test-only benchmark need not draw lesions into the training images)", Check::required_non_empty());
  v("fraction", fraction, "share of the images that get a lesion (picked per image id from the seed)",
    Check::range(0, 1));
  v("kinds", kinds, "lesion kinds drawn (one per lesioned image, picked per id)", Check::choice(kKindNames));
  v("contrast", contrast, "peak added intensity in units of the [0,1] range: [lo, hi] (uniform per lesion) or [c]",
    Check::range(0, 1));
  v("nodule_radius", nodule_radius, "nodule radius range [lo, hi] in px of a 256-px image", Check::at_least(1));
  v("consolidation_size", consolidation_size, "consolidation extent range [lo, hi] in px of a 256-px image",
    Check::at_least(1));
  v("effusion_height", effusion_height, "effusion height at the lateral wall, range [lo, hi] in px of a 256-px image",
    Check::at_least(1));
  v("one_class", one_class, "one super-class 'Lesion' for every kind (else one super-class per kind)");
  v("seed", seed, "seed of the lesion draws (independent of [run].seed, so the data stays put when the run seed "
    "changes)");
  v("out_dir", out_dir, "folder for the lesioned images, masks and boxes; \"\" = <[run].cache_dir>/"
    "synthetic_lesions-<key> (the files are a pure function of the options and the wrapped data)",
    Check{}.for_runtime());
}

std::shared_ptr<Source> SyntheticLesionsSource::create(Options options, BuildContext& ctx) {
  const std::string where = ctx.table_or("data");
  auto check_range = [&](const std::vector<double>& r, const char* key) {
    if (r.empty() || r.size() > 2 || (r.size() == 2 && r[0] > r[1]))
      throw ConfigError(fmt::format("{}: [{}].{} must be [lo, hi] with lo <= hi, or [value], but got [{}]",
                                    ctx.where(key), where, key, fmt::join(r, ", ")));
  };
  check_range(options.contrast, "contrast");
  check_range(options.nodule_radius, "nodule_radius");
  check_range(options.consolidation_size, "consolidation_size");
  check_range(options.effusion_height, "effusion_height");
  if (options.kinds.empty())
    throw ConfigError(fmt::format("{}: [{}].kinds must name at least one of {}, but it is empty", ctx.where("kinds"),
                                  where, fmt::join(kKindNames, ", ")));
  if (options.source == where)
    throw ConfigError(fmt::format("{}: [{}].source names the table itself; it must name the Source that provides "
                                  "the background images (e.g. a table with plugin = \"nih\")",
                                  ctx.where("source"), where));
  auto inner = ctx.component<Source>(options.source);
  std::filesystem::path cache_root = "cache";
  try {
    const auto run = ctx.config("run");
    if (run.has("cache_dir")) cache_root = run.get_string("cache_dir");
  } catch (const ConfigError&) {
    // No [run] table (a test or a tool building the source alone): the default cache folder.
  }
  return std::make_shared<SyntheticLesionsSource>(std::move(options), std::move(inner), cache_root, where);
}

SyntheticLesionsSource::SyntheticLesionsSource(Options options, std::shared_ptr<Source> inner,
                                               std::filesystem::path cache_root, std::string where)
    : opts_(std::move(options)), inner_(std::move(inner)) {
  // The super-classes: "No Finding" first (the heatmaps' target), then one per kind (or one for all).
  std::vector<lesions::Kind> kinds;
  for (const auto& k : opts_.kinds)
    if (std::find(kinds.begin(), kinds.end(), kind_of(k)) == kinds.end()) kinds.push_back(kind_of(k));
  std::vector<std::string> names = {"No Finding"};
  std::vector<std::vector<std::string>> members = {{"No Finding"}};
  if (opts_.one_class) {
    names.push_back("Lesion");
    members.emplace_back();
    for (auto k : kinds) members.back().push_back(chexpert_class(k));
  } else {
    for (auto k : kinds) {
      std::string n = lesions::kind_name(k);
      n[0] = static_cast<char>(n[0] - 'a' + 'A');
      names.push_back(n);
      members.push_back({chexpert_class(k)});
    }
  }
  grouping_ = SuperClassGrouping::from_names(names, members, "[" + where + "]");

  const auto contrast = range_of(opts_.contrast);
  lesions::Params params;
  const auto nr = range_of(opts_.nodule_radius), cs = range_of(opts_.consolidation_size),
             eh = range_of(opts_.effusion_height);
  params.nodule_radius[0] = nr[0], params.nodule_radius[1] = nr[1];
  params.consolidation_size[0] = cs[0], params.consolidation_size[1] = cs[1];
  params.effusion_height[0] = eh[0], params.effusion_height[1] = eh[1];

  // Everything that decides the files, in one line per item: the fingerprint and the folder name come from it.
  uint64_t h = stable_hash(kVersion);
  auto add = [&h](const std::string& line) { h = mix_seed(h, stable_hash(line)); };
  add(inner_->fingerprint());
  add(fmt::format("split={} fraction={} kinds={} contrast={},{} nodule={},{} consolidation={},{} effusion={},{} one_class={} "
                  "seed={}",
                  opts_.split, opts_.fraction, fmt::join(opts_.kinds, "/"), contrast[0], contrast[1], nr[0], nr[1], cs[0], cs[1],
                  eh[0], eh[1], opts_.one_class, opts_.seed));
  fingerprint_ = fmt::format("{:016x}", h);
  dir_ = opts_.out_dir.empty() ? cache_root / fmt::format("synthetic_lesions-{}", fingerprint_.substr(0, 12))
                               : std::filesystem::path(opts_.out_dir);
  dir_ = std::filesystem::absolute(dir_).lexically_normal();
  const bool complete = [&] {
    std::ifstream in(dir_ / ".complete");
    std::string key;
    return in && std::getline(in, key) && key == fingerprint_;
  }();
  if (!complete && std::filesystem::exists(dir_ / ".complete"))
    throw DataError(fmt::format("[{}]: {} holds lesions made with other options or data (its .complete names "
                                "another key than {}); give another out_dir, or delete the folder",
                                where, dir_.string(), fingerprint_));
  // Written into a private folder renamed into place at the end, so a crash leaves nothing half-made and ranks of a
  // distributed launch that build the source at once do not trip over each other.
  const std::filesystem::path tmp = dir_.string() + fmt::format(".tmp-{}", ::getpid());
  const std::filesystem::path out = complete ? dir_ : tmp;
  if (!complete) {
    std::filesystem::remove_all(tmp);
    std::filesystem::create_directories(tmp / "images");
    std::filesystem::create_directories(tmp / "masks");
  }

  std::string boxes_csv = "image,label,x,y,w,h\n";
  std::string lesions_csv = "id,split,kind,contrast,where,x,y,w,h,mask_pixels\n";
  const int none = chexpert_index("No Finding");
  std::vector<const Sample*> selected;
  try {
    selected = inner_->split(opts_.split);
  } catch (const Error& e) {
    throw ConfigError(fmt::format("[{}].split = \"{}\": {}", where, opts_.split, e.what()));
  }
  for (const Sample* in_ptr : selected) {
    const Sample& in = *in_ptr;
    Sample s = in;
    lesions::Rng rng(mix_seed(static_cast<uint64_t>(opts_.seed), stable_hash(in.id)));
    const bool lesioned = rng.uniform() < opts_.fraction;
    const auto kind = kinds[static_cast<size_t>(rng.uniform() * static_cast<double>(kinds.size())) % kinds.size()];
    // Drawn for every image, fixed contrast or not: the geometry that follows is then the same at every contrast,
    // so a dose-response compares the same lesions.
    const double c = contrast[0] + (contrast[1] - contrast[0]) * rng.uniform();
    s.labels.assign(kChexpertClasses.size(), 0.f);
    s.report_generated = true;
    if (!lesioned) {
      s.labels[static_cast<size_t>(none)] = 1.f;
      s.report = "No acute cardiopulmonary abnormality.";
      samples_.push_back(std::move(s));
      continue;
    }
    at::Tensor image = data::load_gray(in.image);  // [1,H,W] in [0,1]
    const int64_t H = image.size(1), W = image.size(2);
    const auto lesion = lesions::draw(kind, H, W, params, rng);
    s.labels[static_cast<size_t>(chexpert_index(chexpert_class(kind)))] = 1.f;
    s.report = report_for(lesion);
    s.image = dir_ / "images" / (in.id + ".png");
    const auto mask_path = dir_ / "masks" / (in.id + ".npy");
    if (!complete) {
      image = image.contiguous();
      std::vector<float> px(image.data_ptr<float>(), image.data_ptr<float>() + H * W);
      lesions::apply(px, lesion, c);
      data::save_png(out / "images" / (in.id + ".png"),
                     at::from_blob(px.data(), {1, H, W}, at::kFloat).clone());
      data::save_npy(out / "masks" / (in.id + ".npy"),
                     at::from_blob(const_cast<uint8_t*>(lesion.mask.data()), {H, W}, at::kByte).clone());
    } else if (!std::filesystem::exists(s.image) || !std::filesystem::exists(mask_path)) {
      throw DataError(fmt::format("[{}]: {} is complete but {} is missing; delete the folder to regenerate it", where,
                                  dir_.string(), std::filesystem::exists(s.image) ? mask_path.string() : s.image.string()));
    }
    int64_t pixels = 0;
    for (auto m : lesion.mask) pixels += m;
    TruthBox b{in.id, lesions::kind_name(kind), static_cast<double>(lesion.x0), static_cast<double>(lesion.y0),
               static_cast<double>(lesion.x1 - lesion.x0 + 1), static_cast<double>(lesion.y1 - lesion.y0 + 1),
               static_cast<double>(W), static_cast<double>(H)};
    boxes_csv += fmt::format("{},{},{},{},{},{}\n", b.id, b.label, b.x, b.y, b.w, b.h);
    lesions_csv += fmt::format("{},{},{},{:.4f},{},{},{},{},{},{}\n", in.id, in.split, b.label, c, lesion.where, b.x,
                               b.y, b.w, b.h, pixels);
    boxes_.push_back(std::move(b));
    masks_[in.id] = mask_path;
    ++lesioned_;
    samples_.push_back(std::move(s));
  }
  if (!complete) {
    write_file_atomic(tmp / "boxes.csv", boxes_csv);
    write_file_atomic(tmp / "lesions.csv", lesions_csv);
    write_file_atomic(tmp / "README.md",
                      fmt::format("Synthetic lesions ({}) drawn by daug's synthetic_lesions source into the images of "
                                  "{}.\nimages/: the lesioned images (the others are the originals); masks/: uint8 "
                                  "masks; boxes.csv: image,label,x,y,w,h (pixels; `daug evaluate-heatmaps --boxes`); "
                                  "lesions.csv: one row per lesion.\nKey {}.\n",
                                  kVersion, inner_->describe(), fingerprint_));
    write_file_atomic(tmp / ".complete", fingerprint_ + "\n");
    std::filesystem::create_directories(dir_.parent_path());
    std::error_code ec;
    std::filesystem::rename(tmp, dir_, ec);
    if (ec) {
      // Another process (a rank, a parallel run) finished first: use its identical files.
      std::filesystem::remove_all(tmp);
      std::ifstream again(dir_ / ".complete");
      std::string key;
      DAUG_CHECK_AS(DataError, again && std::getline(again, key) && key == fingerprint_, "[", where,
                    "]: cannot move the lesioned images into ", dir_.string(), ": ", ec.message());
    }
    log::info("{}: drew a lesion into {} of {} images -> {}", where, lesioned_, samples_.size(),
              dir_.string());
  }
}

std::string SyntheticLesionsSource::fingerprint() const { return fingerprint_; }

std::filesystem::path SyntheticLesionsSource::truth_mask(const std::string& id) const {
  auto it = masks_.find(id);
  return it == masks_.end() ? std::filesystem::path() : it->second;
}

std::string SyntheticLesionsSource::describe() const {
  return fmt::format("synthetic_lesions({} of {} images with a {} lesion, contrast {}, in {}; background {})",
                     lesioned_, samples_.size(), fmt::join(opts_.kinds, "/"), fmt::join(opts_.contrast, "-"),
                     dir_.string(), inner_->describe());
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Source, "synthetic_lesions", daug::plugins::SyntheticLesionsSource,
                     "wraps a Source and draws nodules, consolidations or effusions with known masks into a share of "
                     "its images (ground truth for heatmap localisation)")
