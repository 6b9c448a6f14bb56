// TOML experiment configs: imports, overrides, plugin-change-replaces-table, ${...} expansion, key locations.
#include <daug/core/config_loader.h>
#include <daug/error.h>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join lives here from fmt 11 (current LibTorch wheels ship fmt 11+ headers)

#include <cstdlib>
#include <set>
#include <sstream>

namespace daug::core {
namespace {

constexpr int kMaxImportDepth = 4;

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

SourceLocation loc_of(const toml::node& n, const std::string& fallback_file) {
  const auto& s = n.source();
  SourceLocation l;
  l.file = s.path ? std::string(*s.path) : fallback_file;
  l.line = static_cast<int>(s.begin.line);
  l.column = static_cast<int>(s.begin.column);
  return l;
}

void record_locations(const toml::table& t, const std::string& prefix, const std::string& file,
                      std::map<std::string, SourceLocation>& out) {
  for (const auto& [k, v] : t) {
    std::string p = join(prefix, std::string(k.str()));
    out[p] = loc_of(v, file);
    if (v.is_table()) record_locations(*v.as_table(), p, file, out);
  }
}

void erase_locations(std::map<std::string, SourceLocation>& locs, const std::string& prefix) {
  for (auto it = locs.lower_bound(prefix); it != locs.end();) {
    if (it->first == prefix || it->first.rfind(prefix + ".", 0) == 0) it = locs.erase(it);
    else if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    else ++it;
  }
}

void copy_locations(const std::map<std::string, SourceLocation>& from, std::map<std::string, SourceLocation>& to,
                    const std::string& prefix) {
  for (auto it = from.lower_bound(prefix); it != from.end(); ++it) {
    if (it->first == prefix || it->first.rfind(prefix + ".", 0) == 0) to[it->first] = it->second;
    else if (it->first.compare(0, prefix.size(), prefix) != 0) break;
  }
}

std::string expand(const std::string& s, const std::filesystem::path& dir, const SourceLocation& where) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t p = s.find("${", i);
    if (p == std::string::npos) {
      out += s.substr(i);
      break;
    }
    out += s.substr(i, p - i);
    size_t e = s.find('}', p);
    if (e == std::string::npos)
      throw ConfigError(fmt::format("{}: unterminated '${{' in string \"{}\"", where.str(), s));
    std::string var = s.substr(p + 2, e - p - 2);
    if (var == "config_dir") {
      out += dir.empty() ? std::filesystem::current_path().string() : dir.string();
    } else if (var.rfind("env:", 0) == 0) {
      const char* v = std::getenv(var.substr(4).c_str());
      if (!v)
        throw ConfigError(fmt::format("{}: environment variable '{}' used in \"{}\" is not set", where.str(),
                                      var.substr(4), s));
      out += v;
    } else {
      throw ConfigError(fmt::format("{}: unknown variable '${{{}}}' in \"{}\"; known: ${{config_dir}}, ${{env:NAME}}",
                                    where.str(), var, s));
    }
    i = e + 1;
  }
  return out;
}

void expand_strings(toml::node& n, const std::filesystem::path& dir, const std::string& file) {
  if (auto* s = n.as_string()) {
    if (s->get().find("${") != std::string::npos) s->get() = expand(s->get(), dir, loc_of(n, file));
  } else if (auto* t = n.as_table()) {
    for (auto&& [k, v] : *t) expand_strings(v, dir, file);
  } else if (auto* a = n.as_array()) {
    for (auto& v : *a) expand_strings(v, dir, file);
  }
}

/// Overlays `src` onto `dst` (both tables at `prefix`). Tables merge key by key, except that a table whose
/// `plugin` changes is replaced wholesale; everything else replaces.
void overlay(toml::table& dst, const toml::table& src, const std::string& prefix,
             std::map<std::string, SourceLocation>& dst_locs, const std::map<std::string, SourceLocation>& src_locs) {
  for (const auto& [k, v] : src) {
    std::string key(k.str());
    std::string p = join(prefix, key);
    toml::node* existing = dst.get(key);
    if (existing && existing->is_table() && v.is_table()) {
      const auto* old_plugin = existing->as_table()->get("plugin");
      const auto* new_plugin = v.as_table()->get("plugin");
      bool replace = old_plugin && new_plugin && old_plugin->value<std::string>() != new_plugin->value<std::string>();
      if (!replace) {
        overlay(*existing->as_table(), *v.as_table(), p, dst_locs, src_locs);
        if (auto it = src_locs.find(p); it != src_locs.end()) dst_locs[p] = it->second;
        continue;
      }
    }
    dst.insert_or_assign(key, v);
    erase_locations(dst_locs, p);
    copy_locations(src_locs, dst_locs, p);
  }
}

struct Loaded {
  toml::table table;
  std::map<std::string, SourceLocation> locs;
};

Loaded load_table(toml::table& parsed, const std::string& name, const std::filesystem::path& dir, int depth,
                  std::vector<std::string>& stack);

Loaded load_file(const std::filesystem::path& file, int depth, std::vector<std::string>& stack,
                 const SourceLocation& from) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(file, ec);
  if (ec) abs = file;
  if (!std::filesystem::exists(abs))
    throw ConfigError(fmt::format("{}: config file '{}' does not exist", from.file.empty() ? "config" : from.str(),
                                  file.string()));
  for (const auto& s : stack)
    if (s == abs.string())
      throw ConfigError(fmt::format("{}: import cycle: '{}' imports itself through {}", from.str(), abs.string(),
                                    fmt::join(stack, " -> ")));
  if (depth > kMaxImportDepth)
    throw ConfigError(fmt::format("{}: imports nest deeper than {} levels (through {})", from.str(), kMaxImportDepth,
                                  fmt::join(stack, " -> ")));
  toml::table parsed;
  try {
    parsed = toml::parse_file(abs.string());
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: invalid TOML: {}", abs.string(), s.begin.line, s.begin.column,
                                  e.description()));
  }
  stack.push_back(abs.string());
  Loaded l = load_table(parsed, abs.string(), abs.parent_path(), depth, stack);
  stack.pop_back();
  return l;
}

Loaded load_table(toml::table& parsed_in, const std::string& name, const std::filesystem::path& dir, int depth,
                  std::vector<std::string>& stack) {
  // toml++ drops source regions when nodes are copied, so record locations and expand ${...} (whose errors
  // need locations) on the freshly parsed table, then work on a copy.
  std::map<std::string, SourceLocation> own_locs;
  record_locations(parsed_in, "", name, own_locs);
  expand_strings(parsed_in, dir, name);
  toml::table parsed = parsed_in;

  if (const auto* sv = parsed.get("schema_version")) {
    if (!sv->is_integer() || sv->as_integer()->get() != 1)
      throw ConfigError(fmt::format("{}: schema_version must be 1, but got {}", own_locs["schema_version"].str(),
                                    sv->is_integer() ? std::to_string(sv->as_integer()->get()) : "a non-integer"));
  }
  Loaded result;
  if (const auto* imports = parsed.get("imports")) {
    const auto& iloc = own_locs["imports"];
    if (!imports->is_array())
      throw ConfigError(fmt::format("{}: imports must be an array of file names, but got a {}", iloc.str(),
                                    imports->is_table() ? "table" : "scalar"));
    for (const auto& el : *imports->as_array()) {
      if (!el.is_string())
        throw ConfigError(fmt::format("{}: imports must contain strings (file names)", iloc.str()));
      std::filesystem::path p = el.as_string()->get();
      if (p.is_relative()) p = dir / p;
      Loaded imp = load_file(p, depth + 1, stack, iloc);
      overlay(result.table, imp.table, "", result.locs, imp.locs);
    }
    parsed.erase("imports");
  }
  overlay(result.table, parsed, "", result.locs, own_locs);
  return result;
}

}  // namespace

void apply_override(ConfigDocument& doc, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(fmt::format("--set '{}': expected KEY.PATH=VALUE (e.g. --set guidance.scale=5)", assignment));
  std::string path = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  while (!path.empty() && path.back() == ' ') path.pop_back();
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value, std::string_view{"--set"});
  } catch (const toml::parse_error& e) {
    bool punct = value.find_first_of("[]{}\"'=,") != std::string::npos;
    if (punct || value.empty())
      throw ConfigError(fmt::format("--set {}: '{}' is not a valid TOML value ({}); quote strings as "
                                    "--set '{}=\"text\"'",
                                    path, value, e.description(), path));
    parsed.insert_or_assign("v", value);  // a bare word is a string: --set run.device=cuda
  }
  const toml::node& v = *parsed.get("v");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t p = path.find('.', start);
    parts.push_back(path.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  for (const auto& part : parts)
    if (part.empty()) throw ConfigError(fmt::format("--set '{}': empty key in path '{}'", assignment, path));
  toml::table* t = &doc.root;
  std::string prefix;
  SourceLocation where{"--set " + assignment, 0, 0};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix = join(prefix, parts[i]);
    toml::node* n = t->get(parts[i]);
    if (!n) {
      t->insert_or_assign(parts[i], toml::table{});
      doc.locations[prefix] = where;
      n = t->get(parts[i]);
    }
    if (!n->is_table())
      throw ConfigError(fmt::format("--set {}: '{}' is a {} (set at {}), not a table", path, prefix,
                                    n->is_array() ? "array" : "value", doc.locations[prefix].str()));
    t = n->as_table();
  }
  const std::string& last = parts.back();
  std::string full = join(prefix, last);
  if (parts.size() == 1 && (last == "imports" || last == "schema_version"))
    throw ConfigError(fmt::format("--set {}: '{}' cannot be overridden (imports are resolved when the file is read); "
                                  "edit the config file or make a new one that imports it", assignment, last));
  if (last == "plugin") {
    const auto* old = t->get("plugin");
    if (old && old->value<std::string>() != v.value<std::string>()) {
      // A different plugin: start the table afresh, so no stale keys of the old plugin survive.
      t->clear();
      erase_locations(doc.locations, prefix);
      doc.locations[prefix] = where;
    }
  }
  if (v.is_table() && t->get(last) && t->get(last)->is_table()) {
    std::map<std::string, SourceLocation> src;
    record_locations(*v.as_table(), full, where.file, src);
    for (auto& [k, l] : src) l = where;
    overlay(*t->get(last)->as_table(), *v.as_table(), full, doc.locations, src);
  } else {
    t->insert_or_assign(last, v);
    erase_locations(doc.locations, full);
    doc.locations[full] = where;
  }
}

std::shared_ptr<ConfigDocument> load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::vector<std::string> stack;
  Loaded l = load_file(file, 0, stack, SourceLocation{});
  auto doc = std::make_shared<ConfigDocument>();
  doc->root = std::move(l.table);
  doc->locations = std::move(l.locs);
  doc->main_file = file.string();
  for (const auto& o : overrides) apply_override(*doc, o);
  return doc;
}

std::shared_ptr<ConfigDocument> parse_config(const std::string& text, const std::string& name,
                                             const std::vector<std::string>& overrides,
                                             const std::filesystem::path& base_dir) {
  toml::table parsed;
  try {
    parsed = toml::parse(text, std::string_view{name});
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: invalid TOML: {}", name, s.begin.line, s.begin.column, e.description()));
  }
  std::vector<std::string> stack{name};
  Loaded l = load_table(parsed, name, base_dir.empty() ? std::filesystem::current_path() : base_dir, 0, stack);
  auto doc = std::make_shared<ConfigDocument>();
  doc->root = std::move(l.table);
  doc->locations = std::move(l.locs);
  doc->main_file = name;
  for (const auto& o : overrides) apply_override(*doc, o);
  return doc;
}

std::shared_ptr<ConfigDocument> clone(const ConfigDocument& doc) {
  auto out = std::make_shared<ConfigDocument>();
  out->root = doc.root;
  out->locations = doc.locations;
  out->main_file = doc.main_file;
  return out;
}

namespace {
void print_table(const toml::table& t, const std::string& prefix, const ConfigDocument& doc, bool with_sources,
                 std::ostringstream& os) {
  for (const auto& [k, v] : t) {
    if (v.is_table()) continue;
    std::string key(k.str());
    std::ostringstream kv;
    kv << toml::table{{key, v}};
    std::string line = kv.str();
    while (!line.empty() && line.back() == '\n') line.pop_back();
    os << line;
    if (with_sources) {
      auto it = doc.locations.find(join(prefix, key));
      if (it != doc.locations.end()) os << "  # " << it->second.str();
    }
    os << "\n";
  }
  for (const auto& [k, v] : t) {
    if (!v.is_table()) continue;
    std::string p = join(prefix, std::string(k.str()));
    os << "\n[" << p << "]";
    if (with_sources) {
      auto it = doc.locations.find(p);
      if (it != doc.locations.end()) os << "  # " << it->second.str();
    }
    os << "\n";
    print_table(*v.as_table(), p, doc, with_sources, os);
  }
}
}  // namespace

std::string resolved_toml(const ConfigDocument& doc, bool with_sources) {
  std::ostringstream os;
  print_table(doc.root, "", doc, with_sources, os);
  return os.str();
}

}  // namespace daug::core
