// cppops ps: the processes that carry an agent.
#include <fmt/format.h>

#include "command.h"
#include "discovery/agent_list.h"
#include "exit_codes.h"
#include "render/table.h"

namespace cppops::cli {

int runPs(const CommonFlags& flags) {
  auto agents = discovery::listAgentProcesses(flags.timeout());
  if (flags.json) {
    nlohmann::json doc = nlohmann::json::array();
    for (const auto& a : agents) {
      nlohmann::json row = {{"pid", a.process.pid},
                            {"ppid", a.process.ppid},
                            {"user", proc::userName(a.process.uid)},
                            {"name", a.process.name},
                            {"agent_version", a.hello ? nlohmann::json(a.hello->agent_version) : nlohmann::json()},
                            {"path", a.process.exe},
                            {"socket", a.endpoint.socket_path}};
      if (!a.hello) row["error"] = a.problem;
      doc.push_back(std::move(row));
    }
    printJson(doc);
    return kExitOk;
  }
  render::Table table({"PID", "PPID", "USER", "NAME", "AGENT", "PATH"});
  for (const auto& a : agents)
    table.add({std::to_string(a.process.pid), std::to_string(a.process.ppid), proc::userName(a.process.uid),
               a.process.name, a.hello ? a.hello->agent_version : "?", a.process.exe});
  fmt::print("{}", table.str());
  for (const auto& a : agents)
    if (!a.hello) fmt::print(stderr, "cppops: {}\n", a.problem);
  return kExitOk;
}

void registerPs(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand("ps", "List the processes that carry a cppops agent (the default command)");
  addCommonFlags(*cmd, flags);
  cmd->footer("Examples:\n  cppops ps\n  cppops ps --json | jq '.[].pid'");
  cmd->callback([&] { exit_code = runPs(flags); });
}

}  // namespace cppops::cli
