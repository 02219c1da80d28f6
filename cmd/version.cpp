// cppops version PID: which agent and protocol a process runs, and how its binary was built.
#include <fmt/format.h>

#include "client/client.h"
#include "command.h"
#include "core/version.h"
#include "exit_codes.h"
#include "proc/elf_info.h"
#include "render/table.h"

namespace cppops::cli {

namespace {

int runVersion(pid_t pid, const CommonFlags& flags) {
  auto conn = client::Connection::open(pid, flags.timeout());
  if (!conn) return reportError(conn.error(), flags);
  auto payload = conn->call(protocol::Command::kVersion);
  if (!payload) return reportError(payload.error(), flags);
  auto v = client::decode<protocol::VersionReply>(*payload);
  if (!v) return reportError(v.error(), flags);
  // Read through /proc/PID/exe, which reaches the binary even in another mount namespace or after deletion.
  std::string compiler = proc::compilerOf("/proc/" + std::to_string(pid) + "/exe");

  if (flags.json) {
    printJson({{"schema_version", 1},
               {"pid", pid},
               {"agent_version", v->agent_version},
               {"protocol_version", v->protocol_version},
               {"load_mode", v->load_mode},
               {"executable", v->executable},
               {"build_id", v->build_id.empty() ? nlohmann::json() : nlohmann::json(v->build_id)},
               {"compiler", compiler.empty() ? nlohmann::json() : nlohmann::json(compiler)},
               {"cli_version", kCliVersion}});
    return kExitOk;
  }
  render::Table t({"process", std::to_string(pid)});
  t.add({"agent", fmt::format("{} (protocol {}, {})", v->agent_version, v->protocol_version, v->load_mode)});
  t.add({"executable", v->executable});
  t.add({"build-id", v->build_id.empty() ? "none" : v->build_id});
  t.add({"compiler", compiler.empty() ? "unknown" : compiler});
  t.add({"cli", kCliVersion});
  fmt::print("{}", t.str());
  return kExitOk;
}

}  // namespace

void registerVersion(CLI::App& app, CommonFlags& flags, int& exit_code) {
  auto* cmd = app.add_subcommand("version", "Show the agent version, protocol, build-id and compiler of a process");
  static pid_t pid = 0;
  addPidArgument(*cmd, pid);
  addCommonFlags(*cmd, flags);
  cmd->footer("Examples:\n  cppops version 1234\n  cppops version 1234 --json | jq -r .build_id");
  cmd->callback([&] { exit_code = runVersion(pid, flags); });
}

}  // namespace cppops::cli
