#include "asleep_stack.h"

#include <sys/uio.h>
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

// How often the thread was given a CPU (schedstat's third field); where the kernel keeps no such count (it reads
// 0), how often it was switched out (status, which costs the kernel twice as much to write). -1 when unreadable.
long long runCount(const TaskDirectory& tasks, pid_t tid) {
  char buf[2048];
  if (tasks.read(tid, "schedstat", buf, sizeof buf) != 0) {
    char* field = buf;
    for (int skip = 0; skip < 2 && field != nullptr; ++skip) field = std::strchr(field + 1, ' ');
    const long long runs = field != nullptr ? std::strtoll(field + 1, nullptr, 10) : 0;
    if (runs > 0) return runs;
  }
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

size_t AsleepStacks::read(const TaskDirectory& tasks, pid_t tid, const std::string& syscall_line, uint64_t* pcs,
                          size_t max) {
  uintptr_t pc = 0;
  uintptr_t sp = 0;
  if (max == 0 || !asleepAt(syscall_line, &pc, &sp)) return 0;
  const long long runs = runCount(tasks, tid);
  if (runs < 0) return 0;
  void* walked[sigsafe::kMaxFrames];
  filled_ = 0;
  const size_t n = sigsafe::cfiUnwindAsleep(pc, sp, sigsafe::StackReader{&AsleepStacks::readWord, this}, walked,
                                            std::min(max, sigsafe::kMaxFrames));
  // The kernel reads the syscall file with the thread off the CPU. Had the thread run at any moment between the
  // first count and that read, it was given a CPU, and switched out again by then: the same line and the same count
  // (of either kind) mean it ran no instruction, and its stack stood still, all along the walk.
  if (n == 0 || tasks.line(tid, "syscall") != syscall_line || runCount(tasks, tid) != runs) return 0;
  for (size_t i = 0; i < n; ++i) pcs[i] = reinterpret_cast<uint64_t>(walked[i]);
  return n;
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
