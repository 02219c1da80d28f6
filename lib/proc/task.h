// What the kernel says about each thread of a process: /proc/PID/task/TID/{stat,syscall,wchan,status}.
// These are read for every thread of a target (thousands at once), so each file costs one open/read/close into a
// stack buffer.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace cppops::proc {

// Thread ids of the process, ascending; empty when the process is gone or /proc/PID/task is unreadable.
std::vector<pid_t> listTasks(pid_t pid);

struct TaskStat {
  pid_t tid = 0;
  std::string name;  // comm; may contain spaces, '(' and ')'
  char state = '?';  // R, S, D, T, t, Z, X, I...
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  int processor = -1;  // CPU the thread last ran on
  uint64_t start_ticks = 0;  // since boot, in clock ticks
};

Result<TaskStat> readTaskStat(pid_t pid, pid_t tid);
// nullopt when the text is not a stat line.
std::optional<TaskStat> parseStat(std::string_view text);

struct SyscallInfo {
  enum class Kind {
    kRunning,              // on a CPU (or runnable): the kernel cannot say
    kInSyscall,            // sleeping inside syscall `number`
    kBlockedNotInSyscall,  // stopped or sleeping outside a syscall (page fault, ptrace stop...): only sp and pc
    kUnknown,              // text we do not understand
  };
  Kind kind = Kind::kUnknown;
  long number = -1;
  std::array<uint64_t, 6> args{};
  uint64_t sp = 0;
  uint64_t pc = 0;
};

SyscallInfo parseSyscall(std::string_view text);
// Needs ptrace-level access to the target (same user and Yama permitting, or CAP_SYS_PTRACE).
Result<SyscallInfo> readSyscall(pid_t pid, pid_t tid);

// Kernel function the thread sleeps in; "" when running or when the kernel hides it from us.
std::string readWchan(pid_t pid, pid_t tid);

// Bit N-1 stands for signal N, as in sigset_t.
struct SignalMasks {
  uint64_t blocked = 0;
  uint64_t ignored = 0;
  uint64_t caught = 0;
  uint64_t pending = 0;  // pending for this thread or for the whole process (SigPnd | ShdPnd)
};

Result<SignalMasks> readSignalMasks(pid_t pid, pid_t tid);

// Nanoseconds the thread has run on a CPU since it started (schedstat's first field); an error where the kernel
// does not account it.
Result<uint64_t> readRunTimeNs(pid_t pid, pid_t tid);

// How often the thread was given a CPU: schedstat's third field, which every switch to the thread adds to
// (`arrivals`). Where the kernel keeps no such count (the field reads 0), how often it was switched out instead
// (status: voluntary_ctxt_switches + nonvoluntary_ctxt_switches, a file that costs the kernel twice as much to
// write). A count that did not move says the thread did not run in between, unless (the second kind) it still runs.
struct RunCount {
  uint64_t count = 0;
  bool arrivals = false;
  bool operator==(const RunCount& other) const { return count == other.count && arrivals == other.arrivals; }
  bool operator!=(const RunCount& other) const { return !(*this == other); }
};
Result<RunCount> readRunCount(pid_t pid, pid_t tid);

// readRunCount of many threads of one process, again and again: each thread's schedstat is kept open and read
// afresh from its start (0.3 us, where an open, a read and a close cost 1.5), for a sampler that asks every thread
// at every tick. At most half the process's limit of open files is kept open; past that, files are opened and
// closed as readRunCount does. Once the thread a file was opened for has ended, the next read says so (kNoProcess),
// even if its tid names a new thread by then; the read after opens the new thread's file.
class RunCounter {
 public:
  explicit RunCounter(pid_t pid);
  ~RunCounter();
  RunCounter(const RunCounter&) = delete;
  RunCounter& operator=(const RunCounter&) = delete;

  Result<RunCount> read(pid_t tid);

 private:
  pid_t pid_;
  size_t limit_ = SIZE_MAX;
  std::unordered_map<pid_t, int> fds_;
};

}  // namespace cppops::proc
