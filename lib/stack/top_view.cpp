#include "stack/top_view.h"

#include <fmt/format.h>

#include <algorithm>

#include "proc/task.h"

namespace cppops::stack {

namespace {

// Runtime code, and standard-library templates inlined into the application (their source is a system header).
bool inRuntime(const SourceFrame& frame) {
  if (frame.file.rfind("/usr/include/", 0) == 0) return true;
  const std::string base = frame.module.substr(frame.module.rfind('/') + 1);
  for (const char* prefix : {"libc.so", "libc-", "libpthread", "libstdc++", "ld-linux", "libgcc_s", "libm.so"})
    if (base.rfind(prefix, 0) == 0) return true;
  return false;
}

std::string frameText(const SourceFrame& frame) {
  if (frame.function.empty()) return fmt::format("0x{:x} ({})", frame.address, frame.module);
  if (frame.file.empty()) return frame.function;
  return fmt::format("{}  {}:{}", frame.function, frame.file.substr(frame.file.rfind('/') + 1), frame.line);
}

std::string cut(const std::string& line, size_t width) {
  return width == 0 || line.size() <= width ? line : line.substr(0, width);
}

}  // namespace

std::map<pid_t, uint64_t> threadCpuTicks(pid_t pid) {
  std::map<pid_t, uint64_t> ticks;
  for (pid_t tid : proc::listTasks(pid))
    if (auto stat = proc::readTaskStat(pid, tid)) ticks[tid] = stat->utime_ticks + stat->stime_ticks;
  return ticks;
}

std::string topFrameText(const Thread& thread) {
  if (thread.frames.empty()) return "(" + thread.no_stack_reason + ")";
  for (const SourceFrame& frame : thread.frames)
    if (!inRuntime(frame) && !frame.module.empty()) return frameText(frame);
  return frameText(thread.frames.front());
}

TopView buildTopView(const StackDump& dump, const std::string& process, const std::map<pid_t, uint64_t>& before,
                     const std::map<pid_t, uint64_t>& after, double seconds, uint64_t ticks_per_second) {
  TopView view;
  view.pid = dump.pid;
  view.process = process;
  view.source = dump.source;
  view.interval_seconds = seconds;
  for (const Thread& t : dump.threads) {
    TopRow row;
    row.tid = t.tid;
    row.name = t.name;
    row.state = t.state;
    row.frame = topFrameText(t);
    auto now = after.find(t.tid);
    auto then = before.find(t.tid);
    if (now != after.end() && seconds > 0 && ticks_per_second > 0) {
      const uint64_t start = then == before.end() ? 0 : then->second;
      const uint64_t used = now->second >= start ? now->second - start : 0;
      row.cpu_percent = 100.0 * static_cast<double>(used) / static_cast<double>(ticks_per_second) / seconds;
    }
    ++view.by_state[stateName(t.state)];
    view.rows.push_back(std::move(row));
  }
  std::stable_sort(view.rows.begin(), view.rows.end(),
                   [](const TopRow& a, const TopRow& b) { return a.cpu_percent > b.cpu_percent; });
  return view;
}

std::string renderTop(const TopView& view, size_t width, size_t max_rows) {
  std::string out;
  out += cut(fmt::format("cppops top  pid {} ({})  {} threads{}  every {:.1f}s  q quits", view.pid, view.process,
                         view.rows.size(), view.source == "ptrace" ? " via ptrace" : "", view.interval_seconds),
             width) +
         "\n";
  std::vector<std::pair<std::string, size_t>> states(view.by_state.begin(), view.by_state.end());
  std::stable_sort(states.begin(), states.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string totals = "states:";
  for (const auto& [state, n] : states) totals += fmt::format(" {} {},", state, n);
  if (!states.empty()) totals.pop_back();
  out += cut(totals, width) + "\n\n";
  out += cut(fmt::format("{:>7}  {:<16} {:<12} {:>6}  {}", "TID", "NAME", "STATE", "CPU%", "FRAME"), width) + "\n";
  size_t shown = 0;
  for (const TopRow& r : view.rows) {
    if (max_rows != 0 && shown++ == max_rows) break;
    out += cut(fmt::format("{:>7}  {:<16} {:<12} {:>6.1f}  {}", r.tid, r.name.substr(0, 16), stateName(r.state),
                           r.cpu_percent, r.frame),
               width) +
           "\n";
  }
  return out;
}

nlohmann::json topJson(const TopView& view) {
  nlohmann::json rows = nlohmann::json::array();
  for (const TopRow& r : view.rows)
    rows.push_back({{"tid", r.tid},
                    {"name", r.name},
                    {"state", stateName(r.state)},
                    {"cpu_percent", r.cpu_percent},
                    {"frame", r.frame}});
  return {{"schema_version", 1},
          {"pid", view.pid},
          {"process", view.process},
          {"source", view.source},
          {"interval_seconds", view.interval_seconds},
          {"by_state", view.by_state},
          {"threads", rows}};
}

}  // namespace cppops::stack
