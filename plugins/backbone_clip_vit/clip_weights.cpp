// CLIP weight readers; see clip_weights.h.
#include "clip_weights.h"

#include "pickle_check.h"

#include <daug/checkpoint.h>
#include <daug/error.h>
#include <daug/log.h>
#include <daug/torch_zip.h>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <utility>

namespace daug::plugins::clip {

namespace {
// Each WeightsFormat with its option value.
constexpr std::pair<WeightsFormat, const char*> kWeightsFormatNames[] = {
    {WeightsFormat::automatic, "auto"}, {WeightsFormat::openai, "openai"}, {WeightsFormat::hf, "hf"},
    {WeightsFormat::daug, "daug"}};
}  // namespace

WeightsFormat parse_weights_format(const std::string& s) {
  for (const auto& [format, name] : kWeightsFormatNames)
    if (s == name) return format;
  throw ConfigError("weights_format must be one of: auto, openai, hf, daug, but got '" + s + "'");
}

const char* weights_format_name(WeightsFormat f) {
  for (const auto& [format, name] : kWeightsFormatNames)
    if (f == format) return name;
  return "?";
}

WeightsFormat detect_weights_format(const std::string& path) {
  DAUG_CHECK_AS(DataError, std::filesystem::is_regular_file(path), "CLIP weights file not found: '", path, "'");
  std::ifstream f(path, std::ios::binary);
  unsigned char magic[9] = {0};
  f.read(reinterpret_cast<char*>(magic), 9);
  const auto got = f.gcount();
  DAUG_CHECK_AS(DataError, got >= 4, "CLIP weights file '", path, "' is too short (", got,
                " bytes) to be a TorchScript archive or a safetensors file");
  if (magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) return WeightsFormat::openai;
  // safetensors: an 8-byte header length, then the JSON header, which starts with '{'.
  if (got < 9 || magic[8] != '{') {
    std::string head;
    for (std::streamsize i = 0; i < got; ++i) head += fmt::format("{}{:02x}", i ? " " : "", magic[i]);
    const bool legacy_torch = magic[0] == 0x80 && magic[1] == 0x02 && magic[2] == 0x8a;
    throw DataError(fmt::format(
        "CLIP weights file '{}' is neither a zip archive (TorchScript or torch.save; starts with 50 4b 03 04 'PK') "
        "nor a safetensors file (8-byte header length, then a JSON header starting with '{{' at byte 8); its first "
        "bytes are {}{}",
        path, head,
        legacy_torch ? ": the legacy (pre-1.6, non-zip) torch.save format, which is not supported; load it in Python "
                       "and save it again with torch.save(obj, path)"
                     : ""));
  }
  SafetensorsFile st = load_safetensors(path);
  for (const auto& [k, t] : st.tensors)
    if (k.rfind("vision_model.", 0) == 0 || k.rfind("text_model.", 0) == 0) return WeightsFormat::hf;
  return WeightsFormat::daug;
}

namespace {

constexpr const char* kTrainModelPrefix = "model.";

const std::set<std::string>& ignored_scalars() {
  static const std::set<std::string> s = {"input_resolution", "context_length", "vocab_size"};
  return s;
}

std::string first_line(const std::string& what) { return what.substr(0, what.find('\n')); }

// OpenAI's ViT-B-32.pt is a TorchScript archive (read by LibTorch); any other zip is a torch.save'd state dict
// (OpenAI/open_clip state_dict(), HF pytorch_model.bin, training checkpoints), read by daug's own strict reader.
NamedTensors read_torch_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  DAUG_CHECK_AS(DataError, f.good(), "cannot open CLIP weights file '", path, "'");
  std::vector<uint8_t> bytes(static_cast<size_t>(f.tellg()));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  DAUG_CHECK_AS(DataError, f.good() || bytes.empty(), "cannot read CLIP weights file '", path, "'");
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "PK\3\4", 4) != 0) {
    try {
      parse_torch_zip(bytes.data(), bytes.size(), path);  // says why (legacy torch.save format, not a zip)
    } catch (const DataError& e) {
      throw DataError(std::string(e.what()) +
                      "; so it is neither an OpenAI CLIP TorchScript archive nor a torch.save'd state dict");
    }
  }
  NamedTensors out;
  if (is_torchscript_zip(bytes.data(), bytes.size())) {
    check_torch_zip(path);  // LibTorch's unpickler can crash on a malformed pickle: refuse those first
    try {
      torch::jit::Module m = torch::jit::load(path, c10::Device(c10::kCPU));
      for (const auto& p : m.named_parameters(/*recurse=*/true))
        if (!ignored_scalars().count(p.name)) out.emplace_back(p.name, p.value.detach().to(at::kFloat).contiguous());
      for (const auto& b : m.named_buffers(/*recurse=*/true))
        if (!ignored_scalars().count(b.name)) out.emplace_back(b.name, b.value.detach().to(at::kFloat).contiguous());
    } catch (const std::exception& e) {
      throw DataError("cannot read '" + path + "' as an OpenAI CLIP TorchScript archive: " + first_line(e.what()));
    }
  } else {
    TorchStateDict sd = parse_torch_zip(bytes.data(), bytes.size(), path);
    std::string notes;
    if (!sd.container.empty()) notes += ", entry '" + sd.container + "'";
    if (!sd.stripped_prefix.empty()) notes += ", prefix '" + sd.stripped_prefix + "' removed";
    for (const auto& loc : sd.locations)
      if (loc != "cpu") notes += ", storages saved on " + loc + " loaded on the CPU";
    log::info("clip_vit: torch.save state dict with {} tensors{} ({})", sd.tensors.size(), notes, path);
    for (auto& [k, t] : sd.tensors)
      if (!ignored_scalars().count(k)) out.emplace_back(k, t.to(at::kFloat).contiguous());
  }
  DAUG_CHECK_AS(DataError, !out.empty(), "'", path, "' holds no tensors");
  for (const auto& [k, t] : out)
    if (k.rfind("vision_model.", 0) == 0 || k.rfind("text_model.", 0) == 0) return hf_to_openai(out, path);
  return out;
}

// daug's training checkpoints (libs/train checkpoint.h: model.<key>, optim.*, ema.*, rng.cpu and a "step" entry
// in the metadata) hold the weights under "model."; plain daug weight files hold state() names.
NamedTensors daug_weights(SafetensorsFile st) {
  const bool training_checkpoint =
      st.metadata.count("step") && std::any_of(st.tensors.begin(), st.tensors.end(),
                                               [](const auto& e) { return e.first.rfind(kTrainModelPrefix, 0) == 0; });
  NamedTensors out;
  for (auto& [k, v] : st.tensors) {
    if (!training_checkpoint) {
      out.emplace_back(k, v.to(at::kFloat));
    } else if (k.rfind(kTrainModelPrefix, 0) == 0) {
      out.emplace_back(k.substr(std::strlen(kTrainModelPrefix)), v.to(at::kFloat));
    }
  }
  return out;
}

}  // namespace

NamedTensors hf_to_openai(const NamedTensors& hf, const std::string& source) {
  static const std::map<std::string, std::string> direct = {
      {"logit_scale", "logit_scale"},
      {"vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"},
      {"vision_model.embeddings.class_embedding", "visual.class_embedding"},
      {"vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"},
      {"vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"},
      {"vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"},
      {"vision_model.post_layernorm.weight", "visual.ln_post.weight"},
      {"vision_model.post_layernorm.bias", "visual.ln_post.bias"},
      {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
      {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
      {"text_model.final_layer_norm.weight", "ln_final.weight"},
      {"text_model.final_layer_norm.bias", "ln_final.bias"}};
  static const std::map<std::string, std::string> transposed = {{"visual_projection.weight", "visual.proj"},
                                                                {"text_projection.weight", "text_projection"}};
  static const std::map<std::string, std::string> layer_rest = {
      {"layer_norm1.weight", "ln_1.weight"},     {"layer_norm1.bias", "ln_1.bias"},
      {"layer_norm2.weight", "ln_2.weight"},     {"layer_norm2.bias", "ln_2.bias"},
      {"self_attn.out_proj.weight", "attn.out_proj.weight"}, {"self_attn.out_proj.bias", "attn.out_proj.bias"},
      {"mlp.fc1.weight", "mlp.c_fc.weight"},     {"mlp.fc1.bias", "mlp.c_fc.bias"},
      {"mlp.fc2.weight", "mlp.c_proj.weight"},   {"mlp.fc2.bias", "mlp.c_proj.bias"}};
  static const std::regex layer_re(R"(^(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)$)");
  static const std::regex qkv_re(R"(^self_attn\.([qkv])_proj\.(weight|bias)$)");

  NamedTensors out;
  // (openai prefix, "weight"|"bias") -> q/k/v tensors
  std::map<std::pair<std::string, std::string>, std::map<char, at::Tensor>> qkv;
  std::map<std::pair<std::string, std::string>, std::string> qkv_hf_prefix;
  for (const auto& [key, t] : hf) {
    if (key == "vision_model.embeddings.position_ids" || key == "text_model.embeddings.position_ids") continue;
    if (auto it = direct.find(key); it != direct.end()) {
      out.emplace_back(it->second, t.to(at::kFloat));
      continue;
    }
    if (auto it = transposed.find(key); it != transposed.end()) {
      DAUG_CHECK_AS(DataError, t.dim() == 2, source, ": tensor '", key, "' must be 2-D (a Linear weight), but has shape ",
                    t.sizes());
      out.emplace_back(it->second, t.to(at::kFloat).t().contiguous());
      continue;
    }
    std::smatch m;
    if (std::regex_match(key, m, layer_re)) {
      const std::string tower = m[1].str(), index = m[2].str(), rest = m[3].str();
      const std::string prefix =
          (tower == "vision_model" ? "visual.transformer.resblocks." : "transformer.resblocks.") + index + ".";
      if (auto r = layer_rest.find(rest); r != layer_rest.end()) {
        out.emplace_back(prefix + r->second, t.to(at::kFloat));
        continue;
      }
      std::smatch q;
      if (std::regex_match(rest, q, qkv_re)) {
        auto slot = std::make_pair(prefix, q[2].str());
        qkv[slot][q[1].str()[0]] = t.to(at::kFloat);
        qkv_hf_prefix[slot] = tower + ".encoder.layers." + index + ".self_attn.";
        continue;
      }
    }
    throw DataError(source + ": unexpected tensor '" + key +
                    "' (not part of a Hugging Face CLIPModel checkpoint for this architecture)");
  }
  for (const auto& [slot, parts] : qkv) {
    for (char c : {'q', 'k', 'v'})
      DAUG_CHECK_AS(DataError, parts.count(c), source, ": missing tensor '", qkv_hf_prefix[slot], c, "_proj.",
                    slot.second, "' (the q/k/v projections must all be present)");
    const at::Tensor& q = parts.at('q');
    for (char c : {'k', 'v'})
      DAUG_CHECK_AS(DataError, parts.at(c).sizes() == q.sizes(), source, ": tensor '", qkv_hf_prefix[slot], c,
                    "_proj.", slot.second, "' has shape ", parts.at(c).sizes(), ", but q_proj has ", q.sizes());
    out.emplace_back(slot.first + "attn.in_proj_" + slot.second, at::cat({q, parts.at('k'), parts.at('v')}, 0));
  }
  return out;
}

NamedTensors read_clip_weights(const std::string& path, WeightsFormat fmt, WeightsFormat* used) {
  if (fmt == WeightsFormat::automatic) fmt = detect_weights_format(path);
  DAUG_CHECK_AS(DataError, std::filesystem::is_regular_file(path), "CLIP weights file not found: '", path, "'");
  if (used) *used = fmt;
  switch (fmt) {
    case WeightsFormat::openai: return read_torch_zip(path);
    case WeightsFormat::hf: return hf_to_openai(load_safetensors(path).tensors, path);
    case WeightsFormat::daug:
      return daug_weights(load_safetensors(path));
    case WeightsFormat::automatic: break;
  }
  throw DataError("unreachable weights format");
}

void load_openai_state(ClipModel& model, NamedTensors src, const std::string& source, PosInterp interp,
                       bool take_logit_scale) {
  NamedTensors dst;
  for (const auto& p : model->named_parameters(/*recurse=*/true)) dst.emplace_back(p.key(), p.value());
  const auto& a = model->arch;
  bool has_scale = false;
  for (auto& [key, t] : src) {
    if (key == "logit_scale") {
      has_scale = true;
      if (!take_logit_scale) t = model->logit_scale.detach().clone();
      DAUG_CHECK_AS(DataError, t.numel() == 1, source, ": tensor 'logit_scale' must hold one value, but has shape ",
                    t.sizes());
      t = t.reshape({});
    } else if (key == "visual.positional_embedding" && t.dim() == 2 && t.size(1) == a.vision_width &&
               t.size(0) != a.grid() * a.grid() + 1) {
      const int64_t rows = t.size(0) - 1;
      const auto g0 = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows))));
      DAUG_CHECK_AS(DataError, rows > 0 && g0 * g0 == rows, source,
                    ": tensor 'visual.positional_embedding' has shape ", t.sizes(),
                    ", which is not 1 + a square grid of positions");
      log::info("clip_vit: resampling vision positions {}x{} -> {}x{} ({})", g0, g0, a.grid(), a.grid(), source);
      t = resample_positions(t, 1, g0, g0, a.grid(), a.grid(), interp);
    } else if (key == "positional_embedding" && t.dim() == 2 && t.size(1) == a.text_width &&
               t.size(0) != a.context_length) {
      log::info("clip_vit: resampling text positions {} -> {} ({})", t.size(0), a.context_length, source);
      t = resample_positions(t, 0, 1, t.size(0), 1, a.context_length, interp);
    }
  }
  if (!has_scale && !take_logit_scale) src.emplace_back("logit_scale", model->logit_scale.detach().clone());
  copy_state_checked(dst, src, source);
}

}  // namespace daug::plugins::clip
