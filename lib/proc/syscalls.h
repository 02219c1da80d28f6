// x86_64 syscall numbers as an engineer reads them: names, what kind of wait they are, and which fd they wait on.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "proc/task.h"

namespace cppops::proc {

// "" for numbers this table does not know; callers choose their own fallback (e.g. "syscall_N").
std::string_view syscallName(long nr);

enum class SyscallClass {
  kNone,        // not in a syscall (negative number)
  kFutex,       // futex, futex_waitv, futex_wait...: a mutex, condition variable or other user-space lock
  kRead,        // read, readv, pread64, recvfrom, recvmsg...
  kWrite,       // write, writev, pwrite64, sendto, sendmsg, sendfile...
  kPoll,        // poll, ppoll, select, pselect6, epoll_wait, epoll_pwait, epoll_pwait2
  kAccept,      // accept, accept4
  kConnect,     // connect
  kSleep,       // nanosleep, clock_nanosleep, pause
  kWait,        // wait4, waitid
  kSignalWait,  // rt_sigsuspend, rt_sigtimedwait (sigwait, sigwaitinfo, sigtimedwait)
  kOther,
};

SyscallClass classifySyscall(long nr);

// The fd a syscall waits on when its first argument is one (read, write, recv*, send*, accept*, connect,
// epoll_wait*, fcntl, flock, ioctl, fsync...); -1 otherwise.
int syscallFdArgument(long nr, const std::array<uint64_t, 6>& args);

struct FutexCall {
  uint64_t uaddr = 0;
  int op = 0;  // FUTEX_WAIT, FUTEX_LOCK_PI... with FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME masked off
  bool pi = false;  // priority-inheritance futex: its word holds the owner's TID
  bool private_flag = false;
};

// The futex word a thread sits on; nullopt when it is not inside futex() or futex_wait() (futex_waitv waits on
// many words at once, so it has none).
std::optional<FutexCall> decodeFutex(const SyscallInfo& info);

}  // namespace cppops::proc
