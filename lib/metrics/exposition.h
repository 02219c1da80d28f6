// Metrics in the Prometheus text exposition format (version 0.0.4) and as JSON.
//
// Every family is written once, with its HELP and TYPE, followed by the samples of every process, because the
// format forbids a family's samples to be split. Each sample carries the labels pid, process and, when known,
// cgroup. Application metrics keep the application's names; a counter without the "_total" suffix gets it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/collect.h"

namespace cppops::metrics {

std::string renderPrometheus(const std::vector<ProcessMetrics>& processes);

// Escaping as the text format wants it: label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline.
std::string escapeLabelValue(const std::string& value);
std::string escapeHelp(const std::string& help);
// Numbers as Prometheus parses them: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string formatValue(double value);

// schema_version 1: see cppops(1), METRICS JSON.
nlohmann::json renderJson(const ProcessMetrics& process);

}  // namespace cppops::metrics
