// `daug query`: search a retrieval index (`daug index build`) by report text or by image.
//
//   daug query --index DIR (--text "..." | --image x.png | --image-dicom x.dcm | --id ID) [--k 10] [--json]
//              [--html out.html] [--heatmap h.npy] [--set k=v ...]
//
// The model is rebuilt from DIR/config.toml (the effective configuration of the build) and the checkpoint index.json
// names; the rebuilt model must have the fingerprint the index recorded (same weights bytes, backbone, composer,
// prompts), or the query is refused. Search is the [search] table's VectorSearch plugin (`exact` when the config has
// none; e.g. --set search.plugin=\"faiss\" --set search.type=\"hnsw\"). An image query of a model trained with a
// heatmap channel needs the query image's heatmap: --heatmap gives one, otherwise the index's heatmap stage is run on
// the image (its trained models come from the build's cache, so only the one image is translated). An image query
// also prints the 14 class scores: sigmoid(exp(class_logit_scale)·cos(image, class prompt)), as the evaluate stage
// scores classification.
#include "query_command.h"

#include "clip_common.h"
#include "clip_data.h"
#include "clip_metrics.h"

#include <daug/backbone.h>
#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/config_view.h>
#include <daug/data/image.h>
#include <daug/data/npy.h>
#include <daug/error.h>
#include <daug/heatmap_composer.h>
#include <daug/html/html.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/register.h>
#include <daug/retrieval/index_files.h>
#include <daug/vector_search.h>

#include <ATen/ATen.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <unistd.h>

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace daug::plugins {
namespace {

constexpr const char* kUsage =
    "usage: daug query --index DIR (--text \"...\" | --image x.png | --image-dicom x.dcm | --id ID) [--k 10]\n"
    "                  [--json] [--html out.html] [--heatmap h.npy] [--set k=v ...]\n"
    "Prints the K most similar indexed images (rank, cosine score, id, labels, path); an image query (or --id) also\n"
    "prints the 14 class scores. --set applies to the index's config.toml (e.g. --set search.plugin=\"faiss\").\n"
    "--heatmap: the query image's heatmap (.npy) instead of running the heatmap stage on it.\n";

struct QueryArgs {
  std::string index, text, image, image_dicom, id, heatmap, html;
  std::vector<std::string> sets;
  int64_t k = 10;
  bool json = false;
  bool help = false;
};

QueryArgs parse(const std::vector<std::string>& args) {
  QueryArgs a;
  po::options_description desc("daug query options");
  desc.add_options()("help,h", "show help")("index", po::value(&a.index), "index directory")(
      "text", po::value(&a.text), "report text")("image", po::value(&a.image), "image file (PNG/JPEG/DICOM)")(
      "image-dicom", po::value(&a.image_dicom), "DICOM file")("id", po::value(&a.id), "an indexed image's id")(
      "k", po::value(&a.k), "hits to return (default 10)")("json", po::bool_switch(&a.json), "JSON output")(
      "html", po::value(&a.html), "write an HTML page with thumbnails")(
      "heatmap", po::value(&a.heatmap), "the query image's heatmap (.npy)")("set", po::value(&a.sets)->composing(),
                                                                            "override of the index's config.toml");
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
    a.help = vm.count("help") > 0;
  } catch (const po::invalid_option_value& e) {
    throw ConfigError(fmt::format("daug query: {} (--k must be a positive integer)\n{}", e.what(), kUsage));
  } catch (const po::error& e) {
    throw ConfigError(fmt::format("daug query: {}\n{}", e.what(), kUsage));
  }
  if (a.help) return a;
  DAUG_CHECK_AS(ConfigError, !a.index.empty(), "daug query: --index DIR is required\n", kUsage);
  const int kinds = !a.text.empty() + !a.image.empty() + !a.image_dicom.empty() + !a.id.empty();
  DAUG_CHECK_AS(ConfigError, kinds == 1,
                "daug query: give exactly one of --text, --image, --image-dicom, --id, but got ", kinds, "\n", kUsage);
  DAUG_CHECK_AS(ConfigError, a.k >= 1, "daug query: --k must be >= 1, but got ", a.k);
  DAUG_CHECK_AS(ConfigError, a.heatmap.empty() || !a.image.empty() || !a.image_dicom.empty(),
                "daug query: --heatmap goes with --image or --image-dicom");
  for (const auto* f : {&a.image, &a.image_dicom, &a.heatmap})
    DAUG_CHECK_AS(DataError, f->empty() || fs::is_regular_file(*f), "daug query: file '", *f, "' does not exist");
  return a;
}

std::string label_list(const std::vector<float>& labels) {
  std::string out;
  for (size_t c = 0; c < labels.size() && c < kChexpertClasses.size(); ++c)
    if (!std::isnan(labels[c]) && labels[c] > 0.5f) out += (out.empty() ? "" : "|") + std::string(kChexpertClasses[c]);
  return out.empty() ? "-" : out;
}

/// A PNG data URI of `image` ([1|3,H,W] in [0,1]) scaled to at most `side` pixels, aspect kept.
std::string thumbnail(const at::Tensor& image, int64_t side) {
  const int64_t h = image.size(1), w = image.size(2);
  const double f = std::min(1.0, static_cast<double>(side) / std::max(h, w));
  at::Tensor t = f < 1.0 ? data::resize(image, std::max<int64_t>(1, std::lround(h * f)),
                                        std::max<int64_t>(1, std::lround(w * f)), data::Filter::area)
                         : image;
  return "data:image/png;base64," + html::base64(data::encode_png(t.clamp(0, 1)));
}

std::string thumbnail_of_file(const std::string& path, int64_t side) {
  try {
    return thumbnail(data::load_gray(path), side);
  } catch (const std::exception& e) {
    log::warn("query: no thumbnail of {}: {}", path, e.what());
    return "";
  }
}

struct Hit {
  int64_t row;
  float score;
};

struct ClassScore {
  std::string name, prompt;
  double cosine, probability;
};

/// The backbone (and composer) the index was built with, checked against its recorded fingerprint.
struct Model {
  std::shared_ptr<Backbone> backbone;
  std::shared_ptr<HeatmapComposer> composer;
};

Model load_model(BuildContext& b, const retrieval::IndexManifest& m, const fs::path& index) {
  Model out;
  out.backbone = b.component<Backbone>(m.backbone_table);
  if (!m.composer_table.empty()) out.composer = b.component<HeatmapComposer>(m.composer_table);
  if (!m.checkpoint.empty()) {
    DAUG_CHECK_AS(DataError, fs::is_regular_file(m.checkpoint), index.string(), "/index.json: model.checkpoint '",
                  m.checkpoint, "' does not exist any more; the index cannot embed queries without its model");
    const std::string sha = retrieval::file_sha256(m.checkpoint);
    DAUG_CHECK_AS(DataError, sha == m.checkpoint_sha256, "checkpoint ", m.checkpoint,
                  " changed since the index was built: its sha256 is ", sha, ", but ", index.string(),
                  "/index.json recorded ", m.checkpoint_sha256, "; rebuild the index");
    clip::load_clip_checkpoint(*out.backbone, m.checkpoint, "daug query");
  }
  const std::string fp =
      retrieval::model_fingerprint(m.checkpoint_sha256, out.backbone->fingerprint(), out.backbone->describe(),
                                   out.composer ? out.composer->describe() : "", m.heatmap_prep, m.prompts);
  DAUG_CHECK_AS(DataError, fp == m.model_fingerprint, "the model built from ",
                (index / retrieval::kConfigFile).string(), " (", out.backbone->describe(), ") has fingerprint ",
                fp.substr(0, 16), ", but the index was built by ", m.model_fingerprint.substr(0, 16), " (", m.backbone,
                "); a --set changed the model, or its weights changed: rebuild the index");
  out.backbone->set_training(false);
  return out;
}

/// The query image's heatmap: the index's heatmap stage run on a one-image manifest (its trained models are found
/// in the build's cache).
fs::path query_heatmap(CommandContext& ctx, const fs::path& config, std::vector<std::string> overrides,
                       const retrieval::IndexManifest& m, const fs::path& image, const fs::path& work) {
  DAUG_CHECK_AS(ConfigError, !m.heatmaps_stage.empty(), "daug query: the index's model reads heatmaps from ",
                m.heatmaps_origin,
                ", not from a heatmap stage, so the query image's heatmap cannot be computed; "
                "give it with --heatmap FILE.npy");
  fs::create_directories(work);
  std::string csv = "image,id,split";
  for (const char* c : kChexpertClasses) csv += fmt::format(",{}", c);
  csv += fmt::format("\n{},query,test{}\n", fs::absolute(image).string(), std::string(kChexpertClasses.size(), ','));
  write_file_atomic(work / "query.csv", csv);
  const std::string& h = m.heatmaps_stage;
  overrides.push_back(fmt::format("query_image.plugin=\"manifest\""));
  overrides.push_back(fmt::format("query_image.root={}", retrieval::toml_string(work.string())));
  overrides.push_back("query_image.csv=\"query.csv\"");
  overrides.push_back("query_image.strict=true");
  overrides.push_back(fmt::format("{}.data=\"query_image\"", h));
  overrides.push_back(fmt::format("{}.split=\"all\"", h));
  log::info("query: computing the query image's heatmap with the index's [{}] stage", h);
  auto r = ctx.run_stages(config, overrides, {h});
  auto it = r.stage_dirs.find(h);
  DAUG_CHECK(it != r.stage_dirs.end(), "daug query: stage [", h, "] did not run");
  auto files = clip::read_heatmap_index(it->second / "index.csv");
  DAUG_CHECK(files.count("query") == 1, "daug query: stage [", h, "] wrote no heatmap for the query image");
  return files.at("query");
}

}  // namespace

int QueryCommand::run(const std::vector<std::string>& argv, CommandContext& ctx) {
  const QueryArgs a = parse(argv);
  if (a.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const fs::path index = fs::absolute(a.index).lexically_normal();
  const auto x = retrieval::load_index(index);
  const auto& m = x.manifest;
  const fs::path config = index / retrieval::kConfigFile;
  DAUG_CHECK_AS(DataError, fs::is_regular_file(config), index.string(), ": ", retrieval::kConfigFile,
                " is missing (an index directory written by `daug index build` has it)");
  // Query-time stage runs (heatmaps) reuse the build's cached models; their run directories go beside the index.
  std::vector<std::string> overrides = {
      fmt::format("run.cache_dir={}", retrieval::toml_string(m.cache_dir)),
      fmt::format("run.runs_dir={}", retrieval::toml_string((index / "query_runs").string()))};
  overrides.insert(overrides.end(), a.sets.begin(), a.sets.end());
  BuildContext* b = &ctx.build(config, overrides, "");
  if (!b->config("search").exists()) {  // the default search: exact
    overrides.push_back("search.plugin=\"exact\"");
    b = &ctx.build(config, overrides, "");
  }
  auto search = b->component<VectorSearch>("search");
  const auto t_add = std::chrono::steady_clock::now();
  search->add({x.embeddings.data_ptr<float>(), x.embeddings.size(0), x.embeddings.size(1)});
  const double add_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_add).count();

  // The query embedding.
  at::NoGradGuard no_grad;
  const at::Device dev(b->device());
  at::Tensor q;
  nlohmann::json query;
  std::string query_thumb, heat_thumb;
  const std::string image = !a.image.empty() ? a.image : a.image_dicom;
  if (!a.id.empty()) {
    int64_t row = -1;
    for (size_t r = 0; r < x.items.size(); ++r)
      if (x.items[r].id == a.id) row = static_cast<int64_t>(r);
    DAUG_CHECK_AS(DataError, row >= 0, "daug query: no item with id '", a.id, "' in ", index.string(), "/",
                  retrieval::kItemsFile, " (", x.items.size(), " items, e.g. '", x.items.front().id, "')");
    q = x.embeddings[row].unsqueeze(0);
    query = {{"kind", "id"}, {"id", a.id}, {"row", row}, {"image", x.items[static_cast<size_t>(row)].image}};
    if (!a.html.empty()) query_thumb = thumbnail_of_file(x.items[static_cast<size_t>(row)].image, 192);
  } else {
    Model model = load_model(*b, m, index);
    if (!a.text.empty()) {
      q = clip::l2_normalize(model.backbone->encode_text(model.backbone->tokenize({a.text}).to(dev)));
      query = {{"kind", "text"}, {"text", a.text}};
    } else {
      // The DICOM (or PNG/JPEG) decoder is chosen from the file's bytes (libs/data), so both flags read any of them.
      Sample s;
      s.id = "query";
      s.image = fs::absolute(image);
      s.split = "test";
      clip::HeatmapSpec spec;
      spec.quantize_first = m.heatmap_prep == "released";
      std::string heat;
      if (m.heatmap_maps > 0) {
        DAUG_CHECK_AS(ConfigError, m.heatmap_maps == 1, "daug query: the index's model composes ", m.heatmap_maps,
                      " heatmaps per image (", m.composer, "); image queries support models with one");
        const auto stamp = std::chrono::system_clock::now().time_since_epoch().count();
        heat = !a.heatmap.empty() ? fs::absolute(a.heatmap).string()
                                  : query_heatmap(ctx, config, overrides, m, image,
                                                  index / "query_runs" / fmt::format("query-{}-{}", getpid(), stamp))
                                        .string();
        spec.origin = heat;
        spec.maps.push_back({{"query", heat}});
      }
      const at::Tensor in = clip::clip_batch({&s}, model.backbone->image_size(), model.composer.get(), spec, dev);
      q = clip::l2_normalize(model.backbone->encode_image(in));
      query = {{"kind", a.image_dicom.empty() ? "image" : "image-dicom"}, {"image", s.image.string()}};
      if (!heat.empty()) query["heatmap"] = heat;
      if (!a.html.empty()) {
        query_thumb = thumbnail_of_file(s.image.string(), 192);
        if (!heat.empty())
          heat_thumb = thumbnail(data::minmax(clip::resize_heatmap(data::load_npy(heat).to(at::kFloat), 192)), 192);
      }
    }
  }
  q = q.to(at::kCPU).to(at::kFloat).contiguous();

  const auto t0 = std::chrono::steady_clock::now();
  const auto found = search->search({q.data_ptr<float>(), 1, q.size(1)}, a.k);
  const double search_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  DAUG_CHECK(found.size() == 1, "search returned ", found.size(), " result lists for one query");
  std::vector<Hit> hits;
  DAUG_CHECK(found[0].rows.size() == found[0].scores.size(), search->describe(), " returned ", found[0].rows.size(),
             " rows but ", found[0].scores.size(), " scores");
  for (size_t i = 0; i < found[0].rows.size(); ++i) {
    DAUG_CHECK(found[0].rows[i] >= 0 && found[0].rows[i] < m.count, search->describe(), " returned row ",
               found[0].rows[i], " of an index of ", m.count, " rows");
    hits.push_back({found[0].rows[i], found[0].scores[i]});
  }

  std::vector<ClassScore> classes;
  if (query["kind"] != "text") {
    const at::Tensor cos = q.mm(x.class_embeddings.t()).to(at::kDouble)[0];
    const at::Tensor prob = clip::class_scores(q, x.class_embeddings, m.class_logit_scale, false).sigmoid()[0];
    for (size_t c = 0; c < kChexpertClasses.size(); ++c)
      classes.push_back({kChexpertClasses[c], m.prompts[c], cos[static_cast<int64_t>(c)].item<double>(),
                         prob[static_cast<int64_t>(c)].item<double>()});
    std::stable_sort(classes.begin(), classes.end(),
                     [](const ClassScore& l, const ClassScore& r) { return l.probability > r.probability; });
  }

  nlohmann::json j;
  j["index"] = index.string();
  j["count"] = m.count;
  j["search"] = search->describe();
  j["query"] = query;
  j["k"] = a.k;
  j["hits"] = nlohmann::json::array();
  for (size_t r = 0; r < hits.size(); ++r) {
    const auto& it = x.items[static_cast<size_t>(hits[r].row)];
    std::vector<std::string> labels;
    for (size_t c = 0; c < it.labels.size() && c < kChexpertClasses.size(); ++c)
      if (!std::isnan(it.labels[c]) && it.labels[c] > 0.5f) labels.emplace_back(kChexpertClasses[c]);
    j["hits"].push_back({{"rank", r + 1},
                         {"row", hits[r].row},
                         {"id", it.id},
                         {"score", hits[r].score},
                         {"split", it.split},
                         {"labels", labels},
                         {"image", it.image}});
  }
  if (!classes.empty()) {
    j["class_scores"] = nlohmann::json::array();
    for (const auto& c : classes)
      j["class_scores"].push_back(
          {{"class", c.name}, {"prompt", c.prompt}, {"cosine", c.cosine}, {"probability", c.probability}});
    j["class_scores_formula"] = fmt::format("sigmoid(exp({})·cos(image, class prompt))", m.class_logit_scale);
  }

  if (a.json) {
    fmt::print("{}\n", j.dump(2));
  } else {
    const std::string what = query["kind"] == "text" ? "text \"" + a.text + "\""
                             : query["kind"] == "id" ? "indexed image " + a.id
                                                     : "image " + query["image"].get<std::string>();
    fmt::print("query: {}\nindex: {} ({} images), search: {} (build {:.3f} s, search {:.4f} s)\n\n", what,
               index.string(), m.count, search->describe(), add_s, search_s);
    fmt::print("{:>4}  {:>7}  {:<20}  {:<40}  {}\n", "rank", "score", "id", "labels", "image");
    for (size_t r = 0; r < hits.size(); ++r) {
      const auto& it = x.items[static_cast<size_t>(hits[r].row)];
      fmt::print("{:>4}  {:>7.4f}  {:<20}  {:<40}  {}\n", r + 1, hits[r].score, it.id, label_list(it.labels), it.image);
    }
    if (!classes.empty()) {
      fmt::print("\nclass scores, sigmoid(exp({})·cos(image, class prompt)):\n", m.class_logit_scale);
      for (const auto& c : classes) fmt::print("  {:<28} {:.4f}  (cos {:+.4f})\n", c.name, c.probability, c.cosine);
    }
  }

  if (!a.html.empty()) {
    std::string h =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>daug query</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        "img{display:block}.hits{display:flex;flex-wrap:wrap;gap:12px}"
        ".hit{border:1px solid #ccc;padding:6px;width:200px;font-size:12px;overflow-wrap:anywhere}"
        ".bar{background:#4a7;height:10px}</style></head><body>\n";
    h += "<h1>daug query</h1>\n<p>Index <code>" + html::escape(index.string()) + "</code>: " + std::to_string(m.count) +
         " images, search <code>" + html::escape(search->describe()) + "</code>, model fingerprint <code>" +
         html::escape(m.model_fingerprint.substr(0, 16)) + "</code>.</p>\n<h2>Query</h2>\n";
    if (query["kind"] == "text") h += "<p><b>Text:</b> " + html::escape(a.text) + "</p>\n";
    if (!query_thumb.empty() || !heat_thumb.empty()) {
      h += "<div class=\"hits\">";
      if (!query_thumb.empty())
        h += "<div class=\"hit\"><img id=\"query-image\" alt=\"query image\" src=\"" + query_thumb + "\"><br>" +
             html::escape(query.value("image", std::string())) + "</div>";
      if (!heat_thumb.empty())
        h += "<div class=\"hit\"><img id=\"query-heatmap\" alt=\"query heatmap\" src=\"" + heat_thumb +
             "\"><br>heatmap</div>";
      h += "</div>\n";
    }
    h += "<h2>Top " + std::to_string(hits.size()) + "</h2>\n<div class=\"hits\">\n";
    for (size_t r = 0; r < hits.size(); ++r) {
      const auto& it = x.items[static_cast<size_t>(hits[r].row)];
      const std::string thumb = thumbnail_of_file(it.image, 192);
      h += fmt::format("<div class=\"hit\"><b>#{}</b> score {:.4f}<br>{}<br><i>{}</i>{}</div>\n", r + 1, hits[r].score,
                       html::escape(it.id), html::escape(label_list(it.labels)),
                       thumb.empty()
                           ? std::string("<br>(image unreadable)")
                           : "<img class=\"thumb\" alt=\"" + html::escape(it.id) + "\" src=\"" + thumb + "\">");
    }
    h += "</div>\n";
    if (!classes.empty()) {
      h += "<h2>Class scores</h2>\n<p>" + html::escape(j["class_scores_formula"].get<std::string>()) +
           "</p>\n<table><tr><th>class</th><th>probability</th><th></th><th>cosine</th></tr>\n";
      for (const auto& c : classes)
        h += fmt::format(
            "<tr><td>{}</td><td>{:.4f}</td><td><div class=\"bar\" style=\"width:{}px\"></div></td>"
            "<td>{:+.4f}</td></tr>\n",
            html::escape(c.name), c.probability, std::lround(200 * c.probability), c.cosine);
      h += "</table>\n";
    }
    h += "</body></html>\n";
    write_file_atomic(a.html, h);
    if (!a.json) fmt::print("\nwrote {}\n", a.html);
  }
  return 0;
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Command, "query", daug::plugins::QueryCommand,
                     "top-K images of a retrieval index for a text or an image, and an image's class scores")
