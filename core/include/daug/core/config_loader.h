#pragma once
/// Loads a TOML experiment config: `imports`, `--set` overrides, plugin-change-replaces-table, variable
/// expansion, and the source location of every key (for errors and `daug config resolve`).
///
/// Rules:
///  * `imports = ["a.toml", "b.toml"]` (paths relative to the importing file) are merged depth-first in
///    order; later files override earlier ones and the importing file overrides its imports. Tables merge
///    key by key; arrays and scalars replace. Imports nest at most 4 deep; a cycle is an error.
///  * If an override (a later file or `--set`) changes a table's `plugin`, that table is REPLACED, not
///    merged, so no stale keys of the old plugin survive.
///  * `--set a.b=v` parses v as a TOML value (`--set guidance.scale=5`, `--set 'run.stages=["heatmaps"]'`);
///    a value that is not valid TOML is taken as a bare string only if it contains no TOML punctuation.
///  * In strings, `${config_dir}` expands to the directory of the file that wrote the value, and
///    `${env:NAME}` to an environment variable (an unset one is an error).
#include <daug/detail/config_document.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace daug::core {

/// Loads `file` with its imports and applies `overrides` ("a.b=value"). Throws ConfigError with file:line.
std::shared_ptr<ConfigDocument> load_config(const std::filesystem::path& file,
                                            const std::vector<std::string>& overrides = {});

/// Same, from text (`name` is used in messages; imports resolve against `base_dir`).
std::shared_ptr<ConfigDocument> parse_config(const std::string& text, const std::string& name,
                                             const std::vector<std::string>& overrides = {},
                                             const std::filesystem::path& base_dir = {});

/// The resolved document as TOML. With `with_sources`, each key is followed by a `# file:line` comment.
std::string resolved_toml(const ConfigDocument& doc, bool with_sources);

/// Applies one "a.b=value" override to a document (used for sweeps too).
void apply_override(ConfigDocument& doc, const std::string& assignment);

/// Deep copy of a document (toml++ tables plus locations).
std::shared_ptr<ConfigDocument> clone(const ConfigDocument& doc);

}  // namespace daug::core
