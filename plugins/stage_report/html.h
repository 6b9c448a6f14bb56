#pragma once
/// Small HTML helpers for the report: escaping, base64, and Markdown (headings, paragraphs, pipe tables,
/// `code`) to HTML.
#include <string>

namespace daug::plugins::html {

std::string escape(const std::string& s);
std::string base64(const std::string& bytes);
/// Converts the Markdown our stages write (## headings, paragraphs, pipe tables, `code`, **bold**) to HTML.
std::string markdown(const std::string& md);

}  // namespace daug::plugins::html
