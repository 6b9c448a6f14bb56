#include "mimic_report.h"

#include <daug/sources/source_util.h>

#include <algorithm>
#include <map>

namespace daug::plugins::mimic {
namespace {

bool header_char(char c) {
  return (c >= 'A' && c <= 'Z') || c == ' ' || c == '(' || c == ')' || c == '/' || c == ',' || c == '-';
}
bool py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct Match {
  size_t start = 0;        // position of the '\n'
  size_t group_start = 0;  // first header character
  size_t group_end = 0;    // the ':'
  size_t end = 0;          // after the whitespace following ':'
};

// re.compile(r'\n ([A-Z ()/,-]+):\s').search(text, pos). The character class excludes ':', so for a given
// start the greedy run either ends at ':' + whitespace or the start does not match.
bool search(const std::string& t, size_t pos, Match& m) {
  for (size_t i = pos; i + 1 < t.size(); ++i) {
    if (t[i] != '\n' || t[i + 1] != ' ') continue;
    size_t j = i + 2;
    while (j < t.size() && header_char(t[j])) ++j;
    if (j > i + 2 && j + 1 < t.size() && t[j] == ':' && py_space(t[j + 1])) {
      m = {i, i + 2, j, j + 2};
      return true;
    }
    // A run that stops at j may still hold a match starting at a later '\n ' (none inside: '\n' is not in the class).
  }
  return false;
}

std::string lower_strip(const std::string& s) {
  std::string out;
  for (char c : s) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  size_t a = 0, b = out.size();
  while (a < b && py_space(out[a])) ++a;
  while (b > a && py_space(out[b - 1])) --b;
  return out.substr(a, b - a);
}

std::string strip(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && py_space(s[a])) ++a;
  while (b > a && py_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

}  // namespace

std::string normalize_section_name(const std::string& raw) {
  static const std::map<std::string, std::string> frequent = {
      {"preamble", "preamble"}, {"impression", "impression"}, {"comparison", "comparison"},
      {"indication", "indication"}, {"findings", "findings"}, {"examination", "examination"},
      {"technique", "technique"}, {"history", "history"}, {"comparisons", "comparison"},
      {"clinical history", "history"}, {"reason for examination", "indication"}, {"notification", "notification"},
      {"reason for exam", "indication"}, {"clinical information", "history"}, {"exam", "examination"},
      {"clinical indication", "indication"}, {"conclusion", "impression"}, {"chest, two views", "findings"},
      {"recommendation(s)", "recommendations"}, {"type of examination", "examination"},
      {"reference exam", "comparison"}, {"patient history", "history"}, {"addendum", "addendum"},
      {"comparison exam", "comparison"}, {"date", "date"}, {"comment", "comment"},
      {"findings and impression", "impression"}, {"wet read", "wet read"}, {"comparison film", "comparison"},
      {"recommendations", "recommendations"}, {"findings/impression", "impression"}, {"pfi", "history"},
      {"recommendation", "recommendations"}, {"wetread", "wet read"}, {"ndication", "impression"},
      {"impresson", "impression"}, {"imprression", "impression"}, {"imoression", "impression"},
      {"impressoin", "impression"}, {"imprssion", "impression"}, {"impresion", "impression"},
      {"imperssion", "impression"}, {"mpression", "impression"}, {"impession", "impression"},
      {"findings/ impression", "impression"}, {"finding", "findings"}, {"findins", "findings"},
      {"findindgs", "findings"}, {"findgings", "findings"}, {"findngs", "findings"}, {"findnings", "findings"},
      {"finidngs", "findings"}, {"idication", "indication"}, {"reference findings", "findings"},
      {"comparision", "comparison"}, {"comparsion", "comparison"}, {"comparrison", "comparison"},
      {"comparisions", "comparison"}};
  static const std::vector<std::string> main_sections = {"impression", "findings", "history", "comparison",
                                                         "addendum"};
  static const std::vector<std::string> findings_like = {
      "chest", "portable", "pa and lateral", "lateral and pa", "ap and lateral", "lateral and ap", "frontal and",
      "two views", "frontal view", "pa view", "ap view", "one view", "lateral view", "bone window",
      "frontal upright", "frontal semi-upright", "ribs", "pa and lat"};
  const std::string s = lower_strip(raw);
  auto it = frequent.find(s);
  if (it != frequent.end()) return it->second;
  for (const auto& m : main_sections)
    if (s.find(m) != std::string::npos) return m;
  for (const auto& p : findings_like)
    if (s.find(p) != std::string::npos) return "findings";
  return s;
}

Sections split_sections(const std::string& text) {
  Sections out;
  Match m;
  if (search(text, 0, m)) {
    out.texts.push_back(text.substr(0, m.group_start));
    out.names.push_back("preamble");
    bool more = true;
    while (more) {
      const std::string current = text.substr(m.group_start, m.group_end - m.group_start);
      const size_t idx_start = m.end;
      // skip past the first newline to avoid some bad parses (section_parser.py)
      size_t nl = text.find('\n', idx_start);
      const size_t idx_skip = nl == std::string::npos ? 0 : nl - idx_start;
      Match next;
      more = search(text, idx_start + idx_skip, next);
      const size_t idx_end = more ? next.start : text.size();
      out.texts.push_back(text.substr(idx_start, idx_end - idx_start));
      out.names.push_back(current);
      m = next;
    }
  } else {
    out.texts.push_back(text);
    out.names.push_back("full report");
  }
  for (auto& n : out.names) n = normalize_section_name(n);
  for (size_t i = out.names.size(); i-- > 0;) {
    if ((out.names[i] == "impression" || out.names[i] == "findings") && strip(out.texts[i]).empty()) {
      out.names.erase(out.names.begin() + static_cast<long>(i));
      out.texts.erase(out.texts.begin() + static_cast<long>(i));
    }
  }
  if (!out.has("impression") && !out.has("findings") && !out.texts.empty()) {
    const std::string last = out.texts.back();
    const std::string sep = "\n \n";
    size_t p = last.find(sep);
    if (p != std::string::npos) {
      out.texts.back() = last.substr(0, p);
      out.texts.push_back(last.substr(p + sep.size()));  // '\n \n'.join(parts[1:]) == everything after the first
      out.names.push_back("last_paragraph");
    }
  }
  return out;
}

bool Sections::has(const std::string& name) const {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string Sections::last(const std::string& name) const {
  for (size_t i = names.size(); i-- > 0;)
    if (names[i] == name) return strip(texts[i]);
  return "";
}

std::string report_text(const std::string& text, ReportText mode, std::string* used) {
  const Sections s = split_sections(text);
  auto set = [&](const char* u) {
    if (used) *used = u;
  };
  const std::string f = s.last("findings"), i = s.last("impression");
  std::string out;
  if (mode == ReportText::findings_impression && !f.empty() && !i.empty()) {
    out = f + " " + i;
    set("findings+impression");
  } else if (!i.empty()) {
    out = i;
    set("impression");
  } else if (!f.empty()) {
    out = f;
    set("findings");
  } else if (!s.last("last_paragraph").empty()) {
    out = s.last("last_paragraph");
    set("last_paragraph");
  } else if (!s.last("comparison").empty()) {
    out = s.last("comparison");
    set("comparison");
  } else {
    out = text;
    set("full_text");
  }
  return data::collapse_whitespace(out);
}

}  // namespace daug::plugins::mimic
