// cppops stats PID: the kernel's figures for a process, as its agent reads them.
#include <fmt/format.h>

#include "client/client.h"
#include "command.h"
#include "exit_codes.h"
#include "render/table.h"
#include "stats_view.h"

namespace cppops::cli {

nlohmann::json statsJson(const protocol::StatsReply& s) {
  const double tck = s.clock_ticks_per_second > 0 ? static_cast<double>(s.clock_ticks_per_second) : 100.0;
  return {{"threads", s.threads},
          {"cpu_user_seconds", static_cast<double>(s.utime_ticks) / tck},
          {"cpu_system_seconds", static_cast<double>(s.stime_ticks) / tck},
          {"rss_bytes", s.rss_bytes},
          {"open_fds", s.open_fds},
          {"voluntary_context_switches", s.voluntary_switches},
          {"involuntary_context_switches", s.involuntary_switches},
          {"uptime_seconds", uptimeSeconds(s)}};
}

double uptimeSeconds(const protocol::StatsReply& s) {
  const double tck = s.clock_ticks_per_second > 0 ? static_cast<double>(s.clock_ticks_per_second) : 100.0;
  double up = static_cast<double>(s.boottime_ns) / 1e9 - static_cast<double>(s.start_ticks) / tck;
  return up > 0 ? up : 0;
}

void addStatsRows(render::Table& t, const protocol::StatsReply& s) {
  const double tck = s.clock_ticks_per_second > 0 ? static_cast<double>(s.clock_ticks_per_second) : 100.0;
  t.add({"threads", std::to_string(s.threads)});
  t.add({"cpu", fmt::format("{:.2f}s user, {:.2f}s system", static_cast<double>(s.utime_ticks) / tck,
                            static_cast<double>(s.stime_ticks) / tck)});
  t.add({"rss", render::humanBytes(s.rss_bytes)});
  t.add({"open fds", std::to_string(s.open_fds)});
  t.add({"context switches", fmt::format("{} voluntary, {} involuntary", s.voluntary_switches, s.involuntary_switches)});
  t.add({"uptime", render::humanDuration(uptimeSeconds(s))});
}

namespace {

int runStats(pid_t pid, const CommonFlags& flags) {
  auto stats = client::request<protocol::StatsReply>(pid, protocol::Command::kStats, flags.timeout());
  if (!stats) return reportError(stats.error(), flags);
  if (flags.json) {
    nlohmann::json doc = {{"schema_version", 1}, {"pid", pid}};
    doc.update(statsJson(*stats));
    printJson(doc);
    return kExitOk;
  }
  render::Table t({"process", std::to_string(pid)});
  addStatsRows(t, *stats);
  fmt::print("{}", t.str());
  return kExitOk;
}

}  // namespace

void registerStats(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand("stats", "Show threads, CPU time, RSS, open fds, context switches and uptime");
  static pid_t pid = 0;
  addPidArgument(*cmd, pid);
  addCommonFlags(*cmd, flags);
  cmd->footer("Examples:\n  cppops stats 1234\n  cppops stats 1234 --json | jq .rss_bytes");
  cmd->callback([&] { exit_code = runStats(pid, flags); });
}

}  // namespace cppops::cli
