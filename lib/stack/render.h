// The stack dump for people (a jstack-like text view) and for scripts (JSON, schema_version 1).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "stack/model.h"

namespace cppops::stack {

// Which threads to show; an empty field does not restrict.
struct Filter {
  std::vector<ThreadState> states;  // any of these
  std::string name;                 // part of the thread name ("work" shows "worker-1" and "worker-2")
  std::vector<pid_t> tids;          // any of these

  bool matches(const Thread& thread) const;
};

struct RenderOptions {
  bool every_thread = false;  // each thread on its own instead of groups of identical stacks
  Filter filter;
};

// Deadlocks come first and are always shown whole, whatever the filter: a cycle cut in half explains nothing.
std::string renderText(const StackDump& dump, const RenderOptions& options);
// Compact JSON text (schema_version 1, documented in cppops(1)).
std::string renderJson(const StackDump& dump, const Filter& filter);

}  // namespace cppops::stack
