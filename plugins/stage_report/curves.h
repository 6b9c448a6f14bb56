#pragma once
/// The report's training curves: one `<figure class="curves">` per training stage, drawn from its `losses.csv`
/// (the `losses` artifact; columns step,epoch,lr,loss,grad_norm,elapsed_s[,<part>...], see daug/train/losses_csv.h)
/// as two inline SVG charts: every loss column (loss and each part) raw and smoothed against step, and the learning
/// rate against step.
#include <cstdint>
#include <filesystem>
#include <string>

namespace daug::plugins {

/// The EMA span (in optimizer steps) the curves of a `rows`-step run are smoothed with: rows / 20, at least 1.
int64_t curve_smoothing_span(int64_t rows);

/// The figure for stage `stage`'s losses.csv at `csv`. A missing, empty or header-only file gives a figure with a
/// note instead of charts; a malformed one (a bad number, a wrong field count, no step/lr/loss column) throws the
/// DataError of the CSV reader, which names the file and line.
std::string training_curves_html(const std::filesystem::path& csv, const std::string& stage);

}  // namespace daug::plugins
