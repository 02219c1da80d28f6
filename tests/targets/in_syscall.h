// Lets a target say "ready" only once its threads sleep where the test expects them. Until a thread sleeps in
// the kernel, a dump may catch it starting or on its way into the call, and count it as running.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>

namespace cppops_targets {

// Publishes the calling thread's id for waitUntilInSyscall.
inline void announceTid(std::atomic<pid_t>& tid) { tid.store(static_cast<pid_t>(syscall(SYS_gettid))); }

// Returns once the thread that announced itself in `tid` sleeps in one of the system calls `numbers`
// (SYS_futex, SYS_clock_nanosleep, ...), as /proc/self/task/TID/syscall reports it.
inline void waitUntilInSyscall(const std::atomic<pid_t>& tid, std::initializer_list<long> numbers) {
  for (;;) {
    long current = -1;
    if (tid.load() != 0 &&
        std::ifstream("/proc/self/task/" + std::to_string(tid.load()) + "/syscall") >> current &&
        std::find(numbers.begin(), numbers.end(), current) != numbers.end())
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace cppops_targets
