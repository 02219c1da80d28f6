#include "profile/top.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_map>

#include "profile/names.h"

namespace cppops::profile {
namespace {

std::string percent(double fraction) { return fmt::format("{:.2f}%", fraction * 100.0); }

}  // namespace

TopTable computeTop(const Profile& profile, size_t limit) {
  TopTable table;
  table.mode = profile.mode;
  table.type = profileTypeName(profile);
  table.bytes = profile.mode == Mode::kHeap && (profile.heap_shown == kInuseSpace || profile.heap_shown == kAllocSpace);
  table.period_ns = profile.period_ns;
  table.duration_ns = profile.duration_ns;
  table.dropped = profile.dropped;

  std::unordered_map<std::string, TopEntry> by_function;
  for (const Sample& sample : profile.samples) {
    table.total += sample.count;
    std::vector<std::string> names = stackNames(profile, sample);  // root first: the leaf is last
    by_function[names.back()].flat += sample.count;
    std::set<std::string> seen;  // recursion counts once
    for (std::string& name : names) {
      if (seen.insert(name).second) by_function[name].cum += sample.count;
    }
  }
  table.functions = by_function.size();
  for (auto& [name, entry] : by_function) {
    entry.function = name;
    table.entries.push_back(std::move(entry));
  }
  std::sort(table.entries.begin(), table.entries.end(), [](const TopEntry& a, const TopEntry& b) {
    if (a.flat != b.flat) return a.flat > b.flat;
    if (a.cum != b.cum) return a.cum > b.cum;
    return a.function < b.function;
  });
  if (limit != 0 && table.entries.size() > limit) table.entries.resize(limit);
  double sum = 0;
  for (TopEntry& entry : table.entries) {
    if (table.total == 0) break;
    entry.flat_fraction = static_cast<double>(entry.flat) / static_cast<double>(table.total);
    entry.cum_fraction = static_cast<double>(entry.cum) / static_cast<double>(table.total);
    sum += entry.flat_fraction;
    entry.sum_fraction = sum;
  }
  return table;
}

std::string renderTop(const TopTable& table) {
  const uint64_t period = table.period_ns;
  const bool bytes = table.bytes;
  auto amount = [period, bytes](uint64_t samples) {
    if (samples == 0) return std::string("0");
    if (bytes) return formatBytes(samples);
    return period != 0 ? formatDuration(samples * period) : std::to_string(samples);
  };
  std::string out;
  out += fmt::format("Type: {}\n", table.type.empty() ? (table.mode == Mode::kWall ? "wall" : "cpu") : table.type);
  std::string duration = table.duration_ns != 0 ? formatDuration(table.duration_ns) : "unknown";
  out += fmt::format("Duration: {}, Total samples = {} ({})", duration, table.total, amount(table.total));
  if (table.dropped != 0) out += fmt::format(", {} dropped", table.dropped);
  out += '\n';
  if (table.total == 0) {
    out += "No samples.\n";
    return out;
  }
  uint64_t shown = 0;
  for (const TopEntry& entry : table.entries) shown += entry.flat;
  out += fmt::format("Showing {} of {} functions, accounting for {}, {} of {} total\n", table.entries.size(),
                     table.functions, amount(shown),
                     percent(static_cast<double>(shown) / static_cast<double>(table.total)), amount(table.total));
  out += fmt::format("{:>10} {:>7} {:>7} {:>10} {:>7}\n", "flat", "flat%", "sum%", "cum", "cum%");
  for (const TopEntry& entry : table.entries) {
    out += fmt::format("{:>10} {:>7} {:>7} {:>10} {:>7}  {}\n", amount(entry.flat), percent(entry.flat_fraction),
                       percent(entry.sum_fraction), amount(entry.cum), percent(entry.cum_fraction), entry.function);
  }
  return out;
}

}  // namespace cppops::profile
