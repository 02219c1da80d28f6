#include "proc/ptrace_access.h"

#include <linux/capability.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "proc/process.h"

namespace cppops::proc {

namespace {

// The first number after `field` ("TracerPid:") in a /proc status file, parsed in `base`.
std::optional<unsigned long long> statusField(const std::string& status, const char* field, int base) {
  size_t at = status.find(field);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(status.c_str() + at + std::strlen(field), nullptr, base);
}

constexpr const char* kAgentAlternative =
    "; or start the process with the cppops agent (LD_PRELOAD=libcppops_agent.so), which needs no ptrace";

}  // namespace

std::string describeProcess(pid_t pid, const std::string& name) {
  return "process " + std::to_string(pid) + (name.empty() ? "" : " (" + name + ")");
}

pid_t tracerOf(pid_t pid, pid_t tid) {
  auto status = readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status", 4096);
  if (!status) return 0;
  return static_cast<pid_t>(statusField(*status, "\nTracerPid:", 10).value_or(0));
}

PtraceFacts readPtraceFacts(pid_t pid) {
  PtraceFacts facts;
  facts.pid = pid;
  facts.own_euid = geteuid();
  if (auto info = readProcess(pid)) {
    facts.name = info->name;
    facts.target_uid = info->uid;
  }
  if (auto own = readFile("/proc/self/status")) {
    uint64_t effective = statusField(*own, "\nCapEff:", 16).value_or(0);
    facts.own_cap_sys_ptrace = ((effective >> CAP_SYS_PTRACE) & 1) != 0;
  }
  if (auto scope = readFile("/proc/sys/kernel/yama/ptrace_scope")) facts.yama_scope = std::atoi(scope->c_str());
  return facts;
}

Error explainPtraceDenied(const PtraceFacts& facts, int error, const std::string& command) {
  const std::string target = describeProcess(facts.pid, facts.name);
  const std::string sudo = "sudo cppops " + command + " " + std::to_string(facts.pid);
  auto denied = [&](const std::string& why_and_what) {
    return makeError(ErrorKind::kPermission,
                     "cannot ptrace " + target + " (" + std::strerror(error) + "): " + why_and_what);
  };

  if (facts.yama_scope == 3)
    return denied("ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3, which only a reboot resets)" +
                  std::string(kAgentAlternative));
  if (!facts.own_cap_sys_ptrace && facts.target_uid != facts.own_euid)
    return denied("it belongs to user " + userName(facts.target_uid) + " and cppops runs as user " +
                  userName(facts.own_euid) + "; run cppops as that user or as root (" + sudo + ")");
  if (!facts.own_cap_sys_ptrace && facts.own_euid == 0)
    return denied("cppops runs as root but without CAP_SYS_PTRACE, as in a container started without it; "
                  "restart the container with `docker run --cap-add=SYS_PTRACE` (Kubernetes: "
                  "securityContext.capabilities.add: [\"SYS_PTRACE\"]), or run cppops on the host as root" +
                  std::string(kAgentAlternative));
  if (!facts.own_cap_sys_ptrace && facts.yama_scope == 2)
    return denied("kernel.yama.ptrace_scope = 2 lets only processes with CAP_SYS_PTRACE use ptrace; run cppops as "
                  "root (" + sudo + ")" + kAgentAlternative);
  if (!facts.own_cap_sys_ptrace && facts.yama_scope == 1)
    return denied("kernel.yama.ptrace_scope = 1 lets a process ptrace only its own descendants; run cppops as root "
                  "(" + sudo + "), or give it the capability (sudo setcap cap_sys_ptrace+ep $(command -v cppops)), "
                  "or allow ptrace between processes of one user with `sudo sysctl kernel.yama.ptrace_scope=0`" +
                  kAgentAlternative);
  // With CAP_SYS_PTRACE no user rule, non-dumpable process or capability rule stands in the way: telling root
  // to run as root would send the user round in a circle.
  if (facts.own_cap_sys_ptrace)
    return denied("cppops has CAP_SYS_PTRACE, so no user or dumpability rule refused it: a security module "
                  "(SELinux, AppArmor, Landlock) or a seccomp profile did, or the process runs in a user namespace "
                  "that cppops's capabilities do not reach; the kernel log (dmesg, journalctl -k) or the audit log "
                  "names the rule" + std::string(kAgentAlternative));
  return denied("the process may be non-dumpable (setuid or setcap binaries, prctl(PR_SET_DUMPABLE, 0)), or a "
                "security module (SELinux, AppArmor) or seccomp profile forbids ptrace; run cppops as root (" + sudo +
                ")" + kAgentAlternative);
}

}  // namespace cppops::proc
