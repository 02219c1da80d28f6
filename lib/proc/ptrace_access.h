// Why this process may not ptrace another, and what to do about it. The kernel only ever says EPERM; the
// reasons differ (another user, Yama's ptrace_scope, a container without CAP_SYS_PTRACE), and so does what the
// user should do next.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.h"

namespace cppops::proc {

// What decides ptrace permission, as far as /proc shows it.
struct PtraceFacts {
  pid_t pid = 0;
  std::string name;                 // the target's comm
  uid_t target_uid = 0;
  uid_t own_euid = 0;
  bool own_cap_sys_ptrace = false;  // CAP_SYS_PTRACE in our effective set
  int yama_scope = -1;              // /proc/sys/kernel/yama/ptrace_scope; -1 without Yama
};

PtraceFacts readPtraceFacts(pid_t pid);

// A kPermission error for a ptrace (or /proc/PID/syscall, or process_vm_readv) refusal: the most likely reason
// given `facts`, and what to do next, naming the cppops `command` that was refused ("stack", "profile") so that the
// user can run it again as root. `error` is the errno the kernel returned.
Error explainPtraceDenied(const PtraceFacts& facts, int error, const std::string& command);

// The TracerPid of one thread (0 when untraced or unreadable).
pid_t tracerOf(pid_t pid, pid_t tid);

// "process 1234 (name)", or "process 1234" without a name.
std::string describeProcess(pid_t pid, const std::string& name);

}  // namespace cppops::proc
