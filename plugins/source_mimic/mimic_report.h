#pragma once
/// MIMIC-CXR report sections with the semantics of MIT-LCP's txt/section_parser.py (section_text,
/// normalize_section_names) and create_section_files.py (last section of a name wins), REFERENCE.md §6.
#include <string>
#include <vector>

namespace daug::plugins::mimic {

struct Sections {
  std::vector<std::string> names;  ///< normalised: preamble, findings, impression, comparison, ..., last_paragraph
  std::vector<std::string> texts;  ///< raw text of each section
  /// Text of the LAST section called `name` (stripped), or "" if there is none.
  std::string last(const std::string& name) const;
  bool has(const std::string& name) const;
};

/// Splits a report at headers matching `\n ([A-Z ()/,-]+):\s`, normalises the names (e.g. "conclusion",
/// "findings and impression" → impression), drops empty findings/impression sections, and adds a
/// `last_paragraph` section when there is neither findings nor impression.
Sections split_sections(const std::string& text);

/// Normalises one lower-cased header as normalize_section_names does.
std::string normalize_section_name(const std::string& name);

enum class ReportText {
  findings_impression,  ///< FINDINGS + IMPRESSION when both exist, else whichever exists (DAug default, §11.18)
  impression,           ///< MIT-LCP priority: impression > findings > last_paragraph > comparison
};

/// The report text to use, whitespace-collapsed. Falls back to last_paragraph, then comparison, then the whole
/// report; `fallback` (if not null) is set to the section that was used ("findings+impression", "impression",
/// "findings", "last_paragraph", "comparison", "full_text").
std::string report_text(const std::string& text, ReportText mode, std::string* used = nullptr);

}  // namespace daug::plugins::mimic
