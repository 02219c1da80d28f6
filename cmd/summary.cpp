// cppops PID: one screen about one process (identity, agent, kernel figures).
#include <fmt/format.h>

#include "client/client.h"
#include "command.h"
#include "exit_codes.h"
#include "proc/process.h"
#include "render/table.h"
#include "stats_view.h"

namespace cppops::cli {

int runSummary(pid_t pid, const CommonFlags& flags) {
  auto conn = client::Connection::open(pid, flags.timeout());
  if (!conn) return reportError(conn.error(), flags);
  auto version_payload = conn->call(protocol::Command::kVersion);
  if (!version_payload) return reportError(version_payload.error(), flags);
  auto version = client::decode<protocol::VersionReply>(*version_payload);
  if (!version) return reportError(version.error(), flags);
  auto stats_payload = conn->call(protocol::Command::kStats);
  if (!stats_payload) return reportError(stats_payload.error(), flags);
  auto stats = client::decode<protocol::StatsReply>(*stats_payload);
  if (!stats) return reportError(stats.error(), flags);
  auto info = proc::readProcess(pid);
  std::string name = info ? info->name : "?";
  std::string user = info ? proc::userName(info->uid) : "?";

  if (flags.json) {
    printJson({{"schema_version", 1},
               {"pid", pid},
               {"name", name},
               {"user", user},
               {"path", version->executable},
               {"agent", {{"version", version->agent_version},
                          {"protocol_version", version->protocol_version},
                          {"load_mode", version->load_mode},
                          {"capabilities", conn->hello().capabilities}}},
               {"stats", statsJson(*stats)}});
    return kExitOk;
  }
  render::Table t({"process", fmt::format("{} ({}), user {}", pid, name, user)});
  t.add({"path", version->executable});
  t.add({"agent", fmt::format("{} (protocol {}, {})", version->agent_version, version->protocol_version,
                              version->load_mode)});
  addStatsRows(t, *stats);
  std::string caps;
  for (const auto& c : conn->hello().capabilities) caps += (caps.empty() ? "" : " ") + c;
  t.add({"commands", caps});
  fmt::print("{}", t.str());
  return kExitOk;
}

}  // namespace cppops::cli
