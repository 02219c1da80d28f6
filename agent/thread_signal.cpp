#include "thread_signal.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cppops::agent {

int queueSignal(pid_t tid, int signo, uint64_t value) {
  siginfo_t info{};
  info.si_signo = signo;
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value.sival_ptr = reinterpret_cast<void*>(value);
  return static_cast<int>(syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, signo, &info));
}

}  // namespace cppops::agent
