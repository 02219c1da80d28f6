// Lets a target say "ready" only once its threads sleep where the test expects them. Until a thread sleeps in
// the kernel, a dump may catch it starting or on its way into the call, and count it as running.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>

namespace cppops_targets {

// Publishes the calling thread's id for waitUntilInSyscall.
inline void announceTid(std::atomic<pid_t>& tid) { tid.store(static_cast<pid_t>(syscall(SYS_gettid))); }

// Returns once the thread that announced itself in `tid` sleeps in one of the system calls `numbers`
// (SYS_futex, SYS_clock_nanosleep, ...), as /proc/self/task/TID/syscall reports it. A thread that is still
// elsewhere after 5 s is reported on stderr, once, so that the test that waits for "ready" in vain shows where.
inline void waitUntilInSyscall(const std::atomic<pid_t>& tid, std::initializer_list<long> numbers) {
  const auto report_at = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool reported = false;
  for (;;) {
    long current = -1;
    if (tid.load() != 0 &&
        std::ifstream("/proc/self/task/" + std::to_string(tid.load()) + "/syscall") >> current &&
        std::find(numbers.begin(), numbers.end(), current) != numbers.end())
      return;
    if (!reported && std::chrono::steady_clock::now() > report_at) {
      reported = true;
      std::string wanted;
      for (long n : numbers) wanted += " " + std::to_string(n);
      std::fprintf(stderr, "target: thread %d is in system call %ld (-1: running, or not announced yet) after 5 s, "
                   "waiting for one of:%s\n", static_cast<int>(tid.load()), current, wanted.c_str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace cppops_targets
