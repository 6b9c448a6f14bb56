#pragma once
/// Small HTML helpers for the pages daug writes (the report stage, `daug query --html`): escaping, base64, and
/// Markdown (headings, paragraphs, pipe tables, `code`) to HTML.
#include <string>

namespace daug::html {

std::string escape(const std::string& s);
std::string base64(const std::string& bytes);
/// Converts the Markdown our stages write (## headings, paragraphs, pipe tables, `code`, **bold**) to HTML.
std::string markdown(const std::string& md);

}  // namespace daug::html
