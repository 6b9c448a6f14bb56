#include "evaluate_stage.h"

#include "clip_common.h"
#include "clip_metrics.h"
#include "clip_shard.h"

#include <daug/bootstrap.h>
#include <daug/build_context.h>
#include <daug/checkpoint.h>
#include <daug/communicator.h>
#include <daug/error.h>
#include <daug/fingerprint.h>
#include <daug/labels.h>
#include <daug/log.h>
#include <daug/paired_items.h>
#include <daug/register.h>
#include <daug/train/checkpoint.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>
#include <sstream>

namespace daug::plugins {

namespace {
const auto kMissingLabels =
    choices<MissingLabels>({{"negative", MissingLabels::negative}, {"exclude", MissingLabels::exclude}});
}  // namespace

void EvaluateOptions::visit(OptionVisitor& v) {
  v("data", data, "Source table", Check::required_non_empty());
  v("backbone", backbone, "Backbone table", Check::required_non_empty());
  v("composer", composer, "HeatmapComposer table (must match training); \"\" = plain image");
  clip::visit_heatmap_options(v, heatmaps);
  v("train_stage", train_stage, "stage whose checkpoint.safetensors is evaluated; \"\" = the backbone as built "
    "(zero-shot)");
  v("checkpoint", checkpoint, "explicit checkpoint file (train_clip format); overrides train_stage");
  v("gallery_split", gallery_split, "retrieval gallery (released: train+val)", Check::required_non_empty());
  v("query_split", query_split, "queries and classification set (released: test)", Check::required_non_empty());
  v("k", k, "K values of mAP@K (paper: 5)", Check::at_least(1));
  v("ap", ap, "\"released\": AP = mean_j j/p_j over the hits in the top K (0 with none); \"standard\": divide by "
    "min(K, #relevant in the gallery)", clip::kApKinds);
  v("prompts", prompts, "14 class prompts; [] = those stored in the checkpoint, else the released prompts");
  v("class_logit_scale", class_logit_scale, "classification probs = sigmoid(exp(this)·cos(image, prompt)) "
    "(released 4.602)");
  v("missing_labels", missing_labels, "NaN labels: \"negative\" (released) or \"exclude\" (left out of that "
    "class's AUC; never relevant in retrieval)", kMissingLabels);
  v("batch_size", batch_size, "embedding batch size", Check::at_least(1));
  v("examples", examples, "retrieval examples written to retrieval_examples.json (for the report)",
    Check::at_least(0));
  v("bootstrap", bootstrap,
    "resamples of the query items for a percentile 95% CI of each Avg (R→I/I→I mAP@K, AUC); "
    "0 = no CI (paired_items.json, the per-query values, is written either way)",
    Check::range(0, 1000000));
  v("bootstrap_seed", bootstrap_seed, "seed of the bootstrap resamples", Check::at_least(0));
}

EvaluateStage::EvaluateStage(Options opts, std::shared_ptr<Source> data, std::shared_ptr<Backbone> backbone,
                             std::shared_ptr<HeatmapComposer> composer, std::string device)
    : opts_(std::move(opts)),
      data_(std::move(data)),
      backbone_(std::move(backbone)),
      composer_(std::move(composer)),
      device_(std::move(device)) {
  DAUG_CHECK_AS(ConfigError, !opts_.k.empty(), "[evaluate].k must list at least one K");
  DAUG_CHECK_AS(ConfigError, opts_.prompts.empty() || opts_.prompts.size() == 14,
                "[evaluate].prompts must be empty or hold 14 prompts, but got ", opts_.prompts.size());
}

std::shared_ptr<Stage> EvaluateStage::create(Options opts, BuildContext& ctx) {
  auto data = ctx.component<Source>(opts.data);
  auto backbone = ctx.component<Backbone>(opts.backbone);
  std::shared_ptr<HeatmapComposer> composer;
  if (!opts.composer.empty()) composer = ctx.component<HeatmapComposer>(opts.composer);
  if (clip::uses_heatmap_stage(opts.heatmaps, composer.get())) ctx.component<Stage>(opts.heatmaps.heatmaps_stage);
  if (opts.checkpoint.empty() && !opts.train_stage.empty()) ctx.component<Stage>(opts.train_stage);
  return std::make_shared<EvaluateStage>(std::move(opts), data, backbone, composer, ctx.device());
}

std::vector<Artifact> EvaluateStage::outputs() const {
  return {{artifacts::kTables, "tables.md", "retrieval mAP@K and classification AUC tables (Markdown)"},
          {"tables.csv", "tables.csv", "the same tables as CSV"},
          {"tables.json", "tables.json", "the same tables as JSON"},
          {artifacts::kRetrievalExamples, "retrieval_examples.json", "a few report->image queries with their top hits"},
          metrics_artifact(),
          paired_items_artifact()};
}

std::string EvaluateStage::fingerprint() const {
  return opts_.checkpoint.empty() ? std::string() : file_fingerprint(opts_.checkpoint);
}

namespace {

std::vector<std::string> label_names(const std::vector<float>& labels) {
  std::vector<std::string> out;
  for (size_t i = 0; i < labels.size() && i < kChexpertClasses.size(); ++i)
    if (!std::isnan(labels[i]) && labels[i] > 0.5f) out.emplace_back(kChexpertClasses[i]);
  return out;
}

at::Tensor embed_images(Backbone& bb, const std::vector<const Sample*>& items, HeatmapComposer* composer,
                        const clip::HeatmapSpec& spec, const at::Device& dev, int64_t bs, const char* what) {
  std::vector<at::Tensor> out;
  for (size_t s = 0; s < items.size(); s += static_cast<size_t>(bs)) {
    std::vector<const Sample*> batch(items.begin() + static_cast<std::ptrdiff_t>(s),
                                     items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), s + bs)));
    out.push_back(clip::l2_normalize(bb.encode_image(clip::clip_batch(batch, bb.image_size(), composer, spec, dev)))
                      .to(at::kFloat).cpu());
    if ((s / bs) % 20 == 19) log::info("[evaluate] embedded {}/{} {} images", s + batch.size(), items.size(), what);
  }
  return at::cat(out, 0);
}

at::Tensor embed_texts(Backbone& bb, const std::vector<std::string>& texts, const at::Device& dev, int64_t bs) {
  std::vector<at::Tensor> out;
  for (size_t s = 0; s < texts.size(); s += static_cast<size_t>(bs)) {
    std::vector<std::string> batch(texts.begin() + static_cast<std::ptrdiff_t>(s),
                                   texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), s + bs)));
    out.push_back(clip::l2_normalize(bb.encode_text(bb.tokenize(batch).to(dev))).to(at::kFloat).cpu());
  }
  return at::cat(out, 0);
}

nlohmann::json row_json(const clip::ClassRow& r) {
  nlohmann::json j;
  for (size_t i = 0; i < r.values.size(); ++i) {
    nlohmann::json c;
    c["value"] = std::isnan(r.values[i]) ? nlohmann::json(nullptr) : nlohmann::json(r.values[i]);
    c["support"] = r.support[i];
    if (!r.na[i].empty()) c["na"] = r.na[i];
    j["classes"][kChexpertClasses[i]] = c;
  }
  j["Avg"] = std::isnan(r.avg) ? nlohmann::json(nullptr) : nlohmann::json(r.avg);
  j["wAvg"] = std::isnan(r.wavg) ? nlohmann::json(nullptr) : nlohmann::json(r.wavg);
  return j;
}

}  // namespace

void EvaluateStage::run(StageContext& ctx) {
  const std::string where = "[evaluate]";
  const at::Device dev(device_);
  const auto kind = opts_.ap;

  // 1. Weights and prompts.
  std::filesystem::path ckpt;
  if (!opts_.checkpoint.empty()) ckpt = opts_.checkpoint;
  else if (!opts_.train_stage.empty()) ckpt = ctx.artifact(opts_.train_stage, artifacts::kCheckpoint);
  std::vector<std::string> prompts = opts_.prompts;
  std::string weights = "the backbone as built (no fine-tuning checkpoint)";
  if (!ckpt.empty()) {
    const auto loaded = clip::load_clip_checkpoint(*backbone_, ckpt, where);
    if (prompts.empty()) prompts = loaded.prompts;
    weights = fmt::format("{} (step {})", ckpt.string(), loaded.step.empty() ? "?" : loaded.step);
  }
  if (prompts.empty()) prompts = clip::released_prompts();
  DAUG_CHECK_AS(DataError, prompts.size() == 14, where, ": need 14 class prompts, but got ", prompts.size());

  // 2. Data.
  auto gallery = data_->split(opts_.gallery_split);
  auto queries = data_->split(opts_.query_split);
  auto spec = clip::resolve_heatmaps(opts_.heatmaps, composer_.get(), ctx, where);
  gallery = clip::require_heatmaps(gallery, spec, opts_.heatmaps.on_missing_heatmap, ctx.strict, where + " gallery");
  queries = clip::require_heatmaps(queries, spec, opts_.heatmaps.on_missing_heatmap, ctx.strict, where + " queries");
  clip::require_reports(queries, where + " queries");
  const int64_t kmax = *std::max_element(opts_.k.begin(), opts_.k.end());
  DAUG_CHECK_AS(DataError, kmax <= static_cast<int64_t>(gallery.size()), where, ": K = ", kmax,
                " exceeds the gallery size ", gallery.size());
  log::info("{} gallery {} images ({}), queries {} ({}), weights: {}", where, gallery.size(), opts_.gallery_split,
            queries.size(), opts_.query_split, weights);

  // 3. Embeddings. Under a distributed launch each rank embeds its shard of the gallery, the queries and their
  // reports; rank 0 gathers them in order and computes and writes everything else (ranks > 0 write nothing).
  backbone_->set_training(false);
  at::NoGradGuard no_grad;
  auto& comm = communicator();
  const int rank = comm.rank(), world = comm.world_size();
  auto gathered = [&](const at::Tensor& local, size_t n, const char* what) {
    return clip::gather_shards(local, static_cast<int64_t>(n), dev, fmt::format("evaluate: gather the {}", what));
  };
  if (world > 1) {
    comm.set_phase(fmt::format("evaluate: embedding the shard of rank {}", rank));
    log::info("{} rank {}/{} embeds {} of the {} gallery images and {} of the {} queries and reports (shards padded "
              "to equal sizes); rank 0 gathers them and computes the tables",
              where, rank, world, clip::embed_shard(static_cast<int64_t>(gallery.size()), rank, world).size(),
              gallery.size(), clip::embed_shard(static_cast<int64_t>(queries.size()), rank, world).size(),
              queries.size());
  }
  auto g_img = gathered(embed_images(*backbone_, clip::shard_of(gallery, rank, world), composer_.get(), spec, dev,
                                     opts_.batch_size, "gallery"),
                        gallery.size(), "gallery image embeddings");
  auto q_img = gathered(embed_images(*backbone_, clip::shard_of(queries, rank, world), composer_.get(), spec, dev,
                                     opts_.batch_size, "query"),
                        queries.size(), "query image embeddings");
  std::vector<std::string> reports;
  for (const auto* s : queries) reports.push_back(s->report);
  auto q_txt = gathered(embed_texts(*backbone_, clip::shard_of(reports, rank, world), dev, opts_.batch_size),
                        reports.size(), "report embeddings");
  if (!comm.is_main()) return;
  auto cls = embed_texts(*backbone_, prompts, dev, opts_.batch_size);

  // 4. Labels (NaN → negative for retrieval; kept NaN for AUC with missing_labels = "exclude").
  std::vector<const std::vector<float>*> gl_v, ql_v;
  for (const auto* s : gallery) gl_v.push_back(&s->labels);
  for (const auto* s : queries) ql_v.push_back(&s->labels);
  auto gl = clip::labels_tensor(gl_v);
  auto ql = clip::labels_tensor(ql_v);
  auto ql_auc = ql.clone();
  if (opts_.missing_labels == MissingLabels::exclude)
    for (size_t i = 0; i < queries.size(); ++i)
      for (size_t c = 0; c < queries[i]->labels.size(); ++c)
        if (std::isnan(queries[i]->labels[c])) ql_auc[static_cast<int64_t>(i)][static_cast<int64_t>(c)] = NAN;

  // 5. Metrics, and per query the values behind each Avg (paired_items.json, for bootstrap CIs): R→I/I→I mAP@K Avg
  // is a macro_mean of the query's AP@K for each class it is positive for, AUC Avg a macro_auc of its class scores.
  std::vector<clip::ClassRow> rows;
  std::vector<PairedMetric> row_items;  // one per row
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> topk;
  const auto nq_items = static_cast<int64_t>(queries.size());
  auto per_query = [&](const std::string& kind, const at::Tensor& values, const at::Tensor& labels) {
    auto v = values.to(at::kDouble).contiguous();
    auto l = labels.to(at::kDouble).contiguous();
    auto va = v.accessor<double, 2>();
    auto la = l.accessor<double, 2>();
    PairedMetric m{"", kind, {}};
    for (int64_t q = 0; q < nq_items; ++q) {
      PairedItem it{queries[static_cast<size_t>(q)]->id, {}, {}};
      for (int64_t c = 0; c < v.size(1); ++c) {
        it.values.push_back(va[q][c]);
        // as retrieval_map and classification_auc read the labels: > 0.5 positive, NaN (AUC, "exclude") left out
        it.labels.push_back(std::isnan(la[q][c]) ? la[q][c] : (la[q][c] > 0.5 ? 1.0 : 0.0));
      }
      m.items.push_back(std::move(it));
    }
    return m;
  };
  for (auto k : opts_.k) {
    auto r2i = clip::topk_indices(q_txt, g_img, k);
    auto i2i = clip::topk_indices(q_img, g_img, k);
    topk[k] = {r2i, i2i};
    rows.push_back(clip::retrieval_map(r2i, ql, gl, kind, fmt::format("R→I mAP@{}", k)));
    row_items.push_back(per_query(paired_kinds::kMacroMean, clip::retrieval_ap(r2i, gl, kind), ql));
    rows.push_back(clip::retrieval_map(i2i, ql, gl, kind, fmt::format("I→I mAP@{}", k)));
    row_items.push_back(per_query(paired_kinds::kMacroMean, clip::retrieval_ap(i2i, gl, kind), ql));
  }
  // Both AUCs: "AUC" ranks float32 sigmoid probabilities as released (saturated scores tie at 1.0), "AUC (exact)"
  // the double logits.
  for (bool released : {true, false}) {
    auto scores = clip::class_scores(q_img, cls, opts_.class_logit_scale, released);
    rows.push_back(clip::classification_auc(scores, ql_auc, released ? "AUC" : "AUC (exact)"));
    row_items.push_back(per_query(paired_kinds::kMacroAuc, scores, ql_auc));
  }

  std::vector<std::string> names(kChexpertClasses.begin(), kChexpertClasses.end());
  const std::string md_table = clip::markdown_table(rows, names);
  const std::string csv = clip::csv_table(rows, names);
  nlohmann::json tables, metrics;
  PairedItems paired;
  std::string ci_table;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    tables[r.metric] = row_json(r);
    std::string key = r.metric;
    for (const char* from : {"R→I mAP@", "I→I mAP@"})
      if (key.rfind(from, 0) == 0) key = (from[0] == 'R' ? "r2i_map@" : "i2i_map@") + key.substr(std::strlen(from));
    if (key == "AUC") key = "auc";
    if (key == "AUC (exact)") key = "auc_exact";
    metrics[key]["Avg"] = tables[r.metric]["Avg"];
    metrics[key]["wAvg"] = tables[r.metric]["wAvg"];
    row_items[i].name = key + ".Avg";
    const auto ci = bootstrap_interval(row_items[i], opts_.bootstrap, static_cast<uint64_t>(opts_.bootstrap_seed));
    // The items must reproduce the table's Avg, or their CIs would describe another number.
    DAUG_CHECK((std::isnan(ci.estimate) && std::isnan(r.avg)) || std::abs(ci.estimate - r.avg) <= 1e-9, where,
               ": the per-query items of ", r.metric, " give Avg ", ci.estimate, ", but the table has ", r.avg);
    if (opts_.bootstrap > 0) {
      auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
      metrics[key]["Avg_ci95"] = {num(ci.lo), num(ci.hi)};
      tables[r.metric]["Avg_ci95"] = metrics[key]["Avg_ci95"];
      auto cell = [](double v) { return std::isnan(v) ? std::string("n/a") : fmt::format("{:.4f}", v); };
      ci_table += fmt::format("| {} | {} | [{}, {}] |\n", r.metric, cell(r.avg), cell(ci.lo), cell(ci.hi));
    }
    paired.metrics.push_back(std::move(row_items[i]));
  }
  if (!ci_table.empty())
    ci_table = fmt::format(
        "\nBootstrap 95% CI of Avg: percentile interval over {} resamples of the {} {} queries with "
        "replacement (seed {}).\n\n| Metric | Avg | 95% CI |\n|---|---:|---:|\n{}",
        opts_.bootstrap, queries.size(), opts_.query_split, opts_.bootstrap_seed, ci_table);
  bool generated = false;
  for (const auto* s : queries) generated |= s->report_generated;
  tables["_info"] = {{"gallery", gallery.size()}, {"queries", queries.size()}, {"ap", clip::kApKinds.name(opts_.ap)},
                     {"weights", weights}, {"reports_generated_from_labels", generated},
                     {"gallery_split", opts_.gallery_split}, {"query_split", opts_.query_split}};

  // 6. Retrieval examples for the report: evenly spaced test queries, their top results by report and by image.
  nlohmann::json ex = nlohmann::json::array();
  const int64_t kex = std::min<int64_t>(std::max<int64_t>(kmax, 5), static_cast<int64_t>(gallery.size()));
  auto r2i_ex = clip::topk_indices(q_txt, g_img, kex);
  auto i2i_ex = clip::topk_indices(q_img, g_img, kex);
  const auto nq = static_cast<int64_t>(queries.size());
  const int64_t nex = std::min<int64_t>(opts_.examples, nq);
  for (int64_t e = 0; e < nex; ++e) {
    const int64_t q = e * nq / nex;
    const auto& s = *queries[static_cast<size_t>(q)];
    nlohmann::json j = {{"id", s.id}, {"image", s.image.string()}, {"report", s.report},
                        {"report_generated", s.report_generated}, {"labels", label_names(s.labels)}};
    for (auto [key, idx, qemb] : {std::tuple{"by_report", r2i_ex, q_txt}, std::tuple{"by_image", i2i_ex, q_img}}) {
      nlohmann::json hits = nlohmann::json::array();
      for (int64_t r = 0; r < kex; ++r) {
        const auto gi = idx[q][r].item<int64_t>();
        const auto& g = *gallery[static_cast<size_t>(gi)];
        const double score = qemb[q].dot(g_img[gi]).item<double>();
        auto shared = label_names(g.labels);
        hits.push_back({{"id", g.id}, {"image", g.image.string()}, {"labels", shared}, {"score", score}});
      }
      j[key] = hits;
    }
    ex.push_back(j);
  }

  std::string md =
      fmt::format("### evaluate\n\nQueries: {} {} images/reports; gallery: {} {} images; AP: {}; weights: {}.\n\n{}",
                  queries.size(), opts_.query_split, gallery.size(), opts_.gallery_split, clip::kApKinds.name(opts_.ap),
                  weights, md_table + ci_table);
  md += "\nR→I: test report → gallery images; I→I: test image → gallery images; AUC: sigmoid(s·cos(image, class "
        "prompt)) per class, ranked in float32 as released (scores that saturate at 1.0 tie); AUC (exact): the same "
        "ranked by the exact logits. Avg = mean over classes, wAvg = weighted by #positive queries (retrieval) or "
        "#positives (AUC).\n";
  if (generated)
    md += "\nNote: the reports of this dataset are generated from its labels (NIH ChestX-ray14 has no report text), so "
          "report→image retrieval measures label matching, not free-text understanding.\n";
  write_file_atomic(ctx.output(artifacts::kTables), md);
  write_file_atomic(ctx.output("tables.csv"), csv);
  write_file_atomic(ctx.output("tables.json"), tables.dump(2));
  write_file_atomic(ctx.output(artifacts::kMetrics), metrics.dump(2));
  write_file_atomic(ctx.output(artifacts::kRetrievalExamples), ex.dump(2));
  write_file_atomic(ctx.output(artifacts::kPairedItems), paired.to_json());
  log::info("{} done:\n{}{}", where, md_table, ci_table);
}

std::string EvaluateStage::summary(const std::filesystem::path& output_dir) const {
  std::ifstream in(output_path(output_dir, artifacts::kTables));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string EvaluateStage::describe() const {
  return fmt::format("evaluate(k={}, ap={}, gallery={}, queries={})", opts_.k, clip::kApKinds.name(opts_.ap), opts_.gallery_split,
                     opts_.query_split);
}

}  // namespace daug::plugins

DAUG_REGISTER_PLUGIN(daug::Stage, "evaluate", daug::plugins::EvaluateStage,
                     "DAug evaluation: report→image and image→image mAP@K, classification AUC; Markdown/CSV/JSON tables")
