// cppops metrics PID: the agent's built-in and application metrics, in the Prometheus text format or JSON.
#include <fmt/format.h>

#include "command.h"
#include "exit_codes.h"
#include "metrics/exposition.h"

namespace cppops::cli {

namespace {

int runMetrics(pid_t pid, const CommonFlags& flags) {
  auto m = metrics::collect(pid, flags.timeout());
  if (!m) return reportError(m.error(), flags);
  if (flags.json) {
    printJson(metrics::renderJson(*m));
    return kExitOk;
  }
  fmt::print("{}", metrics::renderPrometheus({*m}));
  return kExitOk;
}

}  // namespace

void registerMetrics(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "metrics", "Print threads by state, CPU, memory, heap, fds and the application's own metrics (Prometheus text)");
  static pid_t pid = 0;
  addPidArgument(*cmd, pid);
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Examples:\n"
      "  cppops metrics 1234\n"
      "  cppops metrics 1234 | grep 'cppops_threads{'\n"
      "  cppops metrics 1234 --json | jq .threads.by_state\n"
      "  cppops exporter --listen 127.0.0.1:9464   # every agent process, for Prometheus");
  cmd->callback([&] { exit_code = runMetrics(pid, flags); });
}

}  // namespace cppops::cli
