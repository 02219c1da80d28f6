// cppops stack PID: every thread's stack with its state, lock owners and deadlocks.
#include <fmt/format.h>

#include <cstdlib>

#include "command.h"
#include "exit_codes.h"
#include "stack/agent_source.h"
#include "stack/render.h"

namespace cppops::cli {

namespace {

struct StackFlags {
  pid_t pid = 0;
  bool every_thread = false;
  std::vector<std::string> states;
  std::string name;
  std::vector<pid_t> tids;
  bool no_signal = false;
  int capture_timeout_ms = 1000;
};

Result<stack::Filter> makeFilter(const StackFlags& f) {
  stack::Filter filter;
  for (const auto& s : f.states) {
    auto state = stack::stateFromName(s);
    if (!state)
      return makeError(ErrorKind::kUsage, "unknown state '" + s +
                                              "'; use one of running, mutex, rwlock_read, rwlock_write, condvar, "
                                              "semaphore, atomic_wait, sleep, read, write, poll, accept, connect, "
                                              "wait_child, signal_wait, disk_wait, stopped, zombie, syscall, unknown");
    filter.states.push_back(*state);
  }
  filter.name = f.name;
  filter.tids = f.tids;
  return filter;
}

int runStack(const StackFlags& f, const CommonFlags& flags) {
  auto filter = makeFilter(f);
  if (!filter) return reportError(filter.error(), flags);
  // Debug info must come from this machine: a configured debuginfod server could stall a dump on the network.
  unsetenv("DEBUGINFOD_URLS");

  stack::DumpOptions options;
  options.capture_timeout = std::chrono::milliseconds(f.capture_timeout_ms);
  options.timeout = std::max(flags.timeout(), options.capture_timeout + std::chrono::milliseconds(2000));
  options.use_signals = !f.no_signal;
  auto dump = stack::dumpThroughAgent(f.pid, options);
  if (!dump) return reportError(dump.error(), flags);

  if (flags.json) {
    printJson(stack::renderJson(*dump, *filter));
  } else {
    stack::RenderOptions render;
    render.every_thread = f.every_thread;
    render.filter = *filter;
    fmt::print("{}", stack::renderText(*dump, render));
  }
  return dump->deadlocks.empty() ? kExitOk : kExitDeadlock;
}

}  // namespace

void registerStack(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static StackFlags f;
  auto* cmd = app.add_subcommand("stack", "Print every thread's stack with its state, lock owners and deadlocks");
  addPidArgument(*cmd, f.pid);
  cmd->add_flag("--threads", f.every_thread, "Print every thread on its own instead of grouping identical stacks");
  cmd->add_option("--state", f.states, "Only threads in these states (comma-separated, e.g. mutex,condvar)")
      ->delimiter(',');
  cmd->add_option("--name", f.name, "Only threads whose name contains this text");
  cmd->add_option("--tid", f.tids, "Only these threads (comma-separated)")->delimiter(',');
  cmd->add_flag("--no-signal", f.no_signal,
                "Send no signal: kernel state, wait reasons and lock owners only, no stacks");
  cmd->add_option("--capture-timeout", f.capture_timeout_ms,
                  "Milliseconds the agent waits for threads to unwind themselves (default 1000)")
      ->check(CLI::Range(10, 10000));
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Exit status 7 means the dump succeeded and found a deadlock.\n\n"
      "Examples:\n"
      "  cppops stack 1234\n"
      "  cppops stack 1234 --threads --state mutex\n"
      "  cppops stack 1234 --json | jq '.deadlocks'\n"
      "  cppops stack 1234 --no-signal      # touch no thread, kernel facts only");
  cmd->callback([&] { exit_code = runStack(f, flags); });
}

}  // namespace cppops::cli
