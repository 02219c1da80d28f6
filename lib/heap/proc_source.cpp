#include "heap/proc_source.h"

#include <cerrno>
#include <string>

#include "proc/process.h"
#include "proc/ptrace_access.h"
#include "proc/task.h"

namespace cppops::heap {

namespace {

// Each thread's stack pointer where the kernel gives one: a thread asleep, in a system call or outside one. A running
// thread has none to give, and is left unlocated.
std::vector<protocol::ThreadStackPointer> threadStackPointers(pid_t pid) {
  std::vector<protocol::ThreadStackPointer> out;
  for (pid_t tid : proc::listTasks(pid)) {
    protocol::ThreadStackPointer t;
    t.tid = static_cast<uint32_t>(tid);
    if (Result<proc::SyscallInfo> where = proc::readSyscall(pid, tid);
        where && where->kind != proc::SyscallInfo::Kind::kRunning)
      t.sp = where->sp;
    out.push_back(t);
  }
  return out;
}

}  // namespace

Result<protocol::HeapReply> readKernelView(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  protocol::HeapReply r;
  r.allocator = "unknown";
  std::optional<std::string> rollup = proc::readFile(dir + "/smaps_rollup");
  if (!rollup) {
    const int error = errno;
    if (error == ENOENT || error == ESRCH)
      return makeError(ErrorKind::kNoProcess, "process " + std::to_string(pid) + " has exited");
    return proc::explainPtraceDenied(proc::readPtraceFacts(pid), error, "heap");
  }
  r.smaps_rollup = std::move(*rollup);
  r.smaps = proc::readFile(dir + "/smaps", size_t{64} << 20).value_or("");
  r.stacks = threadStackPointers(pid);
  return r;
}

}  // namespace cppops::heap
