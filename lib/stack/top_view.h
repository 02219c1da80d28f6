// The frame `cppops top` draws: threads sorted by CPU% over the last interval, with name, tid, state and the
// frame they are in, and totals by state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stack/model.h"

namespace cppops::stack {

struct TopRow {
  pid_t tid = 0;
  std::string name;
  ThreadState state = ThreadState::kUnknown;
  double cpu_percent = 0;  // of one CPU, over the interval
  std::string frame;       // where the thread is (see topFrameText)
};

struct TopView {
  pid_t pid = 0;
  std::string process;
  std::string source;  // of the stack dump: "agent" or "ptrace"
  double interval_seconds = 0;
  std::vector<TopRow> rows;                  // most CPU first, then by tid
  std::map<std::string, size_t> by_state;    // stateName() -> threads
};

// CPU ticks (user + system) of every thread, from /proc/PID/task/TID/stat.
std::map<pid_t, uint64_t> threadCpuTicks(pid_t pid);

// The innermost frame outside the C and C++ runtimes, the dynamic loader and inlined system headers (a thread blocked in a mutex shows
// the caller that took the lock, not futex_wait), as "function  file:line" with the file's base name; the
// innermost frame when every frame is in a runtime; the reason when there is no stack.
std::string topFrameText(const Thread& thread);

// A thread that started during the interval is measured from 0 ticks.
TopView buildTopView(const StackDump& dump, const std::string& process, const std::map<pid_t, uint64_t>& before,
                     const std::map<pid_t, uint64_t>& after, double seconds, uint64_t ticks_per_second);

// Lines cut to `width` columns (0: no limit), at most `max_rows` thread rows (0: all).
std::string renderTop(const TopView& view, size_t width, size_t max_rows);
nlohmann::json topJson(const TopView& view);

}  // namespace cppops::stack
