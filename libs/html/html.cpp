#include <daug/html/html.h>

#include <sstream>
#include <vector>

namespace daug::html {

std::string escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

namespace {
std::string inline_md(const std::string& s) {
  std::string e = escape(s), o;
  bool code = false, bold = false;
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i] == '`') {
      o += code ? "</code>" : "<code>";
      code = !code;
    } else if (!code && e.compare(i, 2, "**") == 0) {
      o += bold ? "</b>" : "<b>";
      bold = !bold;
      ++i;
    } else {
      o += e[i];
    }
  }
  if (code) o += "</code>";
  if (bold) o += "</b>";
  return o;
}

std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|') {
      auto b = cur.find_first_not_of(' '), e = cur.find_last_not_of(' ');
      out.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
      cur.clear();
    } else {
      cur += line[i];
    }
  }
  return out;
}
}  // namespace

std::string markdown(const std::string& md) {
  std::istringstream in(md);
  std::string line, out, para;
  std::vector<std::string> table;
  auto flush_para = [&] {
    if (!para.empty()) out += "<p>" + inline_md(para) + "</p>\n";
    para.clear();
  };
  auto flush_table = [&] {
    if (table.empty()) return;
    out += "<table>\n";
    for (size_t r = 0; r < table.size(); ++r) {
      if (r == 1 && table[r].find("---") != std::string::npos) continue;
      out += "<tr>";
      for (const auto& c : cells(table[r])) {
        const bool na = c.rfind("n/a", 0) == 0;
        out += r == 0 ? "<th>" + inline_md(c) + "</th>"
                      : std::string(na ? "<td class=\"na\">" : "<td>") + inline_md(c) + "</td>";
      }
      out += "</tr>\n";
    }
    out += "</table>\n";
    table.clear();
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '|') {
      flush_para();
      table.push_back(line);
      continue;
    }
    flush_table();
    if (line.empty()) {
      flush_para();
    } else if (line[0] == '#') {
      flush_para();
      size_t level = line.find_first_not_of('#');
      const std::string text = line.substr(std::min(line.size(), level + 1));
      level = std::min<size_t>(std::max<size_t>(level, 3), 6);  // the page owns h1/h2
      out += "<h" + std::to_string(level) + ">" + inline_md(text) + "</h" + std::to_string(level) + ">\n";
    } else {
      para += (para.empty() ? "" : " ") + line;
    }
  }
  flush_table();
  flush_para();
  return out;
}

}  // namespace daug::html
