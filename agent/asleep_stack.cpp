#include "asleep_stack.h"

#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "sigsafe/capture.h"
#include "sigsafe/cfi_unwind.h"

namespace cppops::agent {

namespace {

// Where the syscall file says a sleeping thread is: its pc and sp are the last two fields ("nr args... sp pc" in
// a system call, "-1 sp pc" asleep outside one); "running" when it is not asleep.
bool asleepAt(const std::string& syscall_line, uintptr_t* pc, uintptr_t* sp) {
  if (syscall_line.empty() || syscall_line == "running") return false;
  const size_t pc_at = syscall_line.rfind(' ');
  if (pc_at == std::string::npos || pc_at == 0) return false;
  const size_t sp_at = syscall_line.rfind(' ', pc_at - 1);
  if (sp_at == std::string::npos) return false;
  *pc = std::strtoull(syscall_line.c_str() + pc_at + 1, nullptr, 16);
  *sp = std::strtoull(syscall_line.c_str() + sp_at + 1, nullptr, 16);
  return *pc != 0 && *sp != 0;
}

// How often the thread was switched out (status), where the kernel does not count how often it was given a CPU:
// twice as costly to read. -1 when unreadable.
long long switchCount(const TaskDirectory& tasks, pid_t tid) {
  char buf[2048];
  if (tasks.read(tid, "status", buf, sizeof buf) == 0) return -1;
  const char* voluntary = std::strstr(buf, "\nvoluntary_ctxt_switches:");
  const char* involuntary = std::strstr(buf, "\nnonvoluntary_ctxt_switches:");
  if (voluntary == nullptr || involuntary == nullptr) return -1;
  return std::strtoll(std::strchr(voluntary, ':') + 1, nullptr, 10) +
         std::strtoll(std::strchr(involuntary, ':') + 1, nullptr, 10);
}

// An unmapped address (the thread woke and exited, and its stack went away) fails instead of faulting.
bool readOwnMemory(uintptr_t at, void* into, size_t size) {
  iovec local{into, size};
  iovec remote{reinterpret_cast<void*>(at), size};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

}  // namespace

long long arrivalCount(const TaskDirectory& tasks, pid_t tid) {
  char buf[128];
  if (tasks.read(tid, "schedstat", buf, sizeof buf) == 0) return -1;
  char* field = buf;
  for (int skip = 0; skip < 2 && field != nullptr; ++skip) field = std::strchr(field + 1, ' ');
  const long long arrivals = field != nullptr ? std::strtoll(field + 1, nullptr, 10) : 0;
  return arrivals > 0 ? arrivals : -1;
}

int64_t threadCpuNs(pid_t tid) {
  // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) of the kernel's posix-timers.h, as pthread_getcpuclockid makes it.
  constexpr clockid_t kSchedPerThread = 2 | 4;
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | kSchedPerThread);
  timespec t{};
  if (clock_gettime(clock, &t) != 0) return -1;
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

AsleepStacks::Read AsleepStacks::read(const TaskDirectory& tasks, pid_t tid, const std::string& syscall_line,
                                      uint64_t* pcs, size_t max, long long arrivals_before_line) {
  Read result;
  uintptr_t pc = 0;
  uintptr_t sp = 0;
  if (max == 0 || !asleepAt(syscall_line, &pc, &sp)) return result;
  // The kernel writes the syscall file only with the thread off the CPU. With a count of how often it was given a
  // CPU read before that line: had the thread run at any moment from the line to the end of the walk, it would have
  // been given a CPU again, and the count would have moved. (Read after the line, it would miss a thread that woke
  // in between and was still running when counted: the line is read again after it.) Without such a count, its
  // switches out: had the thread run at any moment from the first count to a second read of the line after the
  // walk, which must find it asleep in the same place, it was switched out again by then.
  const bool counted_before = arrivals_before_line >= 0;
  const long long arrivals = counted_before ? arrivals_before_line : arrivalCount(tasks, tid);
  const long long switches = arrivals < 0 ? switchCount(tasks, tid) : -1;
  if (arrivals < 0 && switches < 0) return result;
  if (!counted_before && arrivals >= 0 && tasks.line(tid, "syscall") != syscall_line) {
    result.ran = true;
    return result;
  }
  void* walked[sigsafe::kMaxFrames];
  filled_ = 0;
  const size_t n = sigsafe::cfiUnwindAsleep(pc, sp, sigsafe::StackReader{&AsleepStacks::readWord, this}, walked,
                                            std::min(max, sigsafe::kMaxFrames));
  // Read while the thread is known to be off the CPU (if the count below has not moved).
  const int64_t cpu_ns = threadCpuNs(tid);
  // A walk that failed because the stack changed under it is no reason not to try again.
  result.ran = arrivals >= 0 ? arrivalCount(tasks, tid) != arrivals
                             : (n > 0 && tasks.line(tid, "syscall") != syscall_line) ||
                                   switchCount(tasks, tid) != switches;
  if (n == 0 || result.ran) return result;
  for (size_t i = 0; i < n; ++i) pcs[i] = reinterpret_cast<uint64_t>(walked[i]);
  result.frames = n;
  result.cpu_ns = cpu_ns;
  return result;
}

bool AsleepStacks::readWord(void* context, uintptr_t at, uintptr_t* word) {
  return static_cast<AsleepStacks*>(context)->readStack(at, word);
}

// A page at a time: a walk reads a few words from each of a few pages.
bool AsleepStacks::readStack(uintptr_t at, uintptr_t* word) {
  const uintptr_t page = at & ~(kPageSize - 1);
  if (at - page > kPageSize - sizeof *word) return readOwnMemory(at, word, sizeof *word);
  for (size_t i = 0; i < filled_; ++i)
    if (bases_[i] == page) {
      std::memcpy(word, pages_[i] + (at - page), sizeof *word);
      return true;
    }
  const size_t i = filled_ < kPages ? filled_++ : (next_++ % kPages);
  bases_[i] = 0;
  if (!readOwnMemory(page, pages_[i], kPageSize)) return false;
  bases_[i] = page;
  std::memcpy(word, pages_[i] + (at - page), sizeof *word);
  return true;
}

}  // namespace cppops::agent
