#include "stack_capture.h"

#include "own_threads.h"
#include "thread_signal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "protocol/lock_window.h"
#include "sigsafe/cfi_unwind.h"

namespace cppops::agent {

namespace {

using sigsafe::kDone;
using sigsafe::kExited;
using sigsafe::kPending;
using sigsafe::kWriting;
using sigsafe::slotKind;
using sigsafe::slotState;

using protocol::kLockWindowBefore;
using protocol::kLockWindowSize;
// How long a wait for answers may pass without progress before the requester looks for threads that exited or
// cannot answer.
constexpr long kExitCheckNs = 2'000'000;

// The task directory stays open for the whole dump: every per-thread file is then opened relative to it, which
// spares the kernel a path walk through /proc/self per file (1,000 threads means 2,000 opens).
class TaskDirectory {
 public:
  TaskDirectory() : fd_(::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  ~TaskDirectory() {
    if (fd_ >= 0) ::close(fd_);
  }
  TaskDirectory(const TaskDirectory&) = delete;
  TaskDirectory& operator=(const TaskDirectory&) = delete;

  std::vector<pid_t> threads() const {
    std::vector<pid_t> tids;
    int fd = ::dup(fd_);
    DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
    if (d == nullptr) {
      if (fd >= 0) ::close(fd);
      return tids;
    }
    while (dirent* e = readdir(d)) {
      long tid = std::strtol(e->d_name, nullptr, 10);
      if (tid > 0) tids.push_back(static_cast<pid_t>(tid));
    }
    closedir(d);
    return tids;
  }

  // Reads <tid>/<file> into buf (NUL-terminated); returns the length, 0 when unreadable.
  size_t read(pid_t tid, const char* file, char* buf, size_t size) const {
    char path[64];
    std::snprintf(path, sizeof path, "%d/%s", static_cast<int>(tid), file);
    int fd = ::openat(fd_, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = ::read(fd, buf, size - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return static_cast<size_t>(n);
  }

 private:
  int fd_;
};

// The kernel's view of what the thread is blocked in, read before the signal interrupts it.
std::string readSyscallLine(const TaskDirectory& tasks, pid_t tid) {
  char buf[256];
  size_t n = tasks.read(tid, "syscall", buf, sizeof buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0')) --n;
  return std::string(buf, n);
}

// Copies the memory around a futex word with process_vm_readv on ourselves: an unmapped address yields EFAULT
// instead of a SIGSEGV in the host.
void readLockWindow(const std::string& syscall_line, protocol::StackThread& out) {
  char* end = nullptr;
  long nr = std::strtol(syscall_line.c_str(), &end, 10);
  if (end == syscall_line.c_str() || nr != SYS_futex) return;
  uint64_t uaddr = std::strtoull(end, nullptr, 16);
  if (uaddr < kLockWindowBefore) return;
  for (uint64_t start : {uaddr - kLockWindowBefore, uaddr}) {
    std::string bytes(kLockWindowSize, '\0');
    iovec local{bytes.data(), bytes.size()};
    iovec remote{reinterpret_cast<void*>(start), bytes.size()};
    ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (n > 0) {
      bytes.resize(static_cast<size_t>(n));
      out.lock_window_address = start;
      out.lock_window = std::move(bytes);
      return;
    }
  }
}

// A thread asleep in the kernel is read where it sleeps, without a signal: nothing it waits in returns early
// with EINTR, and it is never held. The kernel tells where it sleeps (the pc and sp at the end of its syscall
// file; "-1 sp pc" when asleep outside a system call, "running" when it is not asleep) but not its rbp, so
// frame-pointer code is left to the signal. Its stack is read through process_vm_readv on ourselves, a page at a
// time: should the thread wake and exit meanwhile, a read fails instead of faulting.
class AsleepReader {
 public:
  sigsafe::StackReader reader() { return {&AsleepReader::readWord, this}; }
  void forget() { filled_ = 0; }

 private:
  static constexpr size_t kPages = 4;
  static constexpr uintptr_t kPageSize = 4096;

  static bool readWord(void* context, uintptr_t at, uintptr_t* word) {
    return static_cast<AsleepReader*>(context)->read(at, word);
  }

  bool read(uintptr_t at, uintptr_t* word) {
    const uintptr_t page = at & ~(kPageSize - 1);
    if (at - page > kPageSize - sizeof *word) return readDirect(at, word, sizeof *word);
    for (size_t i = 0; i < filled_; ++i)
      if (bases_[i] == page) {
        std::memcpy(word, pages_[i] + (at - page), sizeof *word);
        return true;
      }
    const size_t i = filled_ < kPages ? filled_++ : (next_++ % kPages);
    bases_[i] = 0;
    if (!readDirect(page, pages_[i], kPageSize)) return false;
    bases_[i] = page;
    std::memcpy(word, pages_[i] + (at - page), sizeof *word);
    return true;
  }

  static bool readDirect(uintptr_t at, void* into, size_t size) {
    iovec local{into, size};
    iovec remote{reinterpret_cast<void*>(at), size};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
  }

  uintptr_t bases_[kPages] = {};
  size_t filled_ = 0;
  size_t next_ = 0;
  alignas(8) char pages_[kPages][kPageSize];
};

// One for the control thread, which takes one dump at a time: its pages are too large for the stack.
AsleepReader& asleepReader() {
  static auto* reader = new AsleepReader;
  return *reader;
}

// Where the syscall file says a sleeping thread is: false unless it is asleep.
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

// How often the thread was switched out, voluntarily or not: unchanged over two reads, with the thread asleep
// and off the CPU at the second (its syscall file says so), means it ran no instruction between them.
// Returns -1 when unreadable.
long long contextSwitches(const TaskDirectory& tasks, pid_t tid) {
  char buf[2048];
  if (tasks.read(tid, "status", buf, sizeof buf) == 0) return -1;
  const char* voluntary = std::strstr(buf, "\nvoluntary_ctxt_switches:");
  const char* involuntary = std::strstr(buf, "\nnonvoluntary_ctxt_switches:");
  if (voluntary == nullptr || involuntary == nullptr) return -1;
  return std::strtoll(std::strchr(voluntary, ':') + 1, nullptr, 10) +
         std::strtoll(std::strchr(involuntary, ':') + 1, nullptr, 10);
}

// Reads the stack of a thread asleep where `out.syscall_line` (just read) says, and its name; false when it is
// not asleep, its frames need what the kernel does not tell (rbp), or it ran meanwhile: the caller then asks it
// with the signal, or reports it without a stack.
bool readAsleep(const TaskDirectory& tasks, pid_t tid, AsleepReader& memory, protocol::StackThread& out,
                std::string& name) {
  uintptr_t pc = 0;
  uintptr_t sp = 0;
  if (!asleepAt(out.syscall_line, &pc, &sp)) return false;
  const long long switches = contextSwitches(tasks, tid);
  if (switches < 0) return false;
  void* pcs[sigsafe::kMaxFrames];
  memory.forget();
  const size_t n = sigsafe::cfiUnwindAsleep(pc, sp, memory.reader(), pcs, sigsafe::kMaxFrames);
  // The syscall file is read with the thread off the CPU (the kernel waits for that); with no switch since the
  // first count, it was off the CPU, and its stack still, all along the walk.
  if (n == 0 || readSyscallLine(tasks, tid) != out.syscall_line || contextSwitches(tasks, tid) != switches)
    return false;
  char comm[32];
  size_t length = tasks.read(tid, "comm", comm, sizeof comm);
  while (length > 0 && comm[length - 1] == '\n') --length;
  name.assign(comm, length);
  out.status = 0;
  out.handler_ns = 0;
  out.pcs.assign(n, 0);
  for (size_t f = 0; f < n; ++f) out.pcs[f] = reinterpret_cast<uint64_t>(pcs[f]);
  return true;
}

bool threadExists(pid_t tid) { return syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH; }

// A thread that blocks the signal, sleeps uninterruptibly (D) or is stopped (T) will not answer before the
// deadline; knowing it early keeps one such thread from holding every dump to the full timeout.
struct Hindrance {
  bool blocks_signal = false;
  bool stalled = false;  // D or T
  bool any() const { return blocks_signal || stalled; }
};

bool hasSignal(const char* status, const char* field, int signo) {
  const char* line = std::strstr(status, field);
  return line != nullptr && ((std::strtoull(line + std::strlen(field), nullptr, 16) >> (signo - 1)) & 1) != 0;
}

// Blocked and still pending: a thread running the handler has the signal blocked too (the handler's mask), but
// no longer pending, and must not be given up on.
Hindrance hindrance(const TaskDirectory& tasks, pid_t tid, int signo) {
  Hindrance h;
  char buf[2048];
  if (tasks.read(tid, "status", buf, sizeof buf) == 0) return h;
  const char* state = std::strstr(buf, "\nState:\t");
  h.stalled = state != nullptr && (state[8] == 'D' || state[8] == 'T' || state[8] == 't');
  h.blocks_signal = hasSignal(buf, "\nSigBlk:\t", signo) && hasSignal(buf, "\nSigPnd:\t", signo);
  return h;
}

}  // namespace

StackCapture& stackCapture() {
  static StackCapture* capture = new StackCapture;  // leaked: handlers may outlive static destruction
  return *capture;
}

void StackCapture::prepare(int signo) {
  sigsafe::warmUp();
  install_error_ = sigsafe::installHandler(signo);
  signo_ = install_error_ == 0 ? signo : 0;
}

sigsafe::Arena* StackCapture::arenaFor(size_t threads) {
  if (!arenas_.empty() && arenas_.back()->capacity >= threads) return arenas_.back().get();
  size_t capacity = 256;
  while (capacity < threads) capacity *= 2;
  slot_blocks_.push_back(std::make_unique<sigsafe::ThreadSlot[]>(capacity));
  auto arena = std::make_unique<sigsafe::Arena>();
  arena->slots = slot_blocks_.back().get();
  arena->capacity = static_cast<uint32_t>(capacity);
  arenas_.push_back(std::move(arena));
  return arenas_.back().get();
}

protocol::StackReply StackCapture::capture(const protocol::StackRequest& request) {
  const uint64_t start = sigsafe::nowNs();
  protocol::StackReply reply;
  const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  reply.agent_tid = static_cast<uint32_t>(self);

  bool use_signals = request.use_signals != 0 && signo_ != 0;
  if (request.use_signals != 0 && signo_ == 0)
    reply.notes.push_back("the capture signal could not be installed (" + std::string(std::strerror(install_error_)) +
                          "); kernel facts only");
  if (use_signals && !sigsafe::handlerIsOurs(signo_)) {
    reply.notes.push_back("signal " + std::to_string(signo_) +
                          " was taken over by the host; set CPPOPS_STACK_SIGNAL to a free real-time signal");
    use_signals = false;
  }

  const TaskDirectory tasks;
  std::vector<pid_t> tids = tasks.threads();
  tids.erase(std::remove_if(tids.begin(), tids.end(), [self](pid_t tid) { return tid == self || isOwnThread(tid); }),
             tids.end());
  reply.threads.resize(tids.size());
  reply.thread_names.resize(tids.size());
  for (size_t i = 0; i < tids.size(); ++i) reply.threads[i].tid = static_cast<uint32_t>(tids[i]);

  auto readKernelFacts = [&](size_t i) {
    auto& t = reply.threads[i];
    t.syscall_line = readSyscallLine(tasks, tids[i]);
    readLockWindow(t.syscall_line, t);
  };
  AsleepReader& memory = asleepReader();
  auto readWhereAsleep = [&](size_t i) {
    return readAsleep(tasks, tids[i], memory, reply.threads[i], reply.thread_names[i]);
  };
  if (!use_signals) {
    for (size_t i = 0; i < tids.size(); ++i) {
      readKernelFacts(i);
      if (readWhereAsleep(i))
        ++reply.read_asleep;
      else
        reply.threads[i].status = 3;
    }
    reply.total_ns = sigsafe::nowNs() - start;
    return reply;
  }
  reply.signal = static_cast<uint32_t>(signo_);

  sigsafe::Arena* arena = arenaFor(tids.size());
  const uint32_t generation = ++generation_ & 0xfffff;
  arena->finished.store(0, std::memory_order_relaxed);
  arena->wake_at.store(UINT32_MAX, std::memory_order_relaxed);
  for (size_t i = 0; i < tids.size(); ++i) {
    arena->slots[i].tid = tids[i];
    arena->slots[i].frame_count = 0;
    arena->slots[i].name[0] = '\0';
    arena->slots[i].state.store(slotState(kPending, generation), std::memory_order_relaxed);
  }
  sigsafe::publishArena(arena);

  // Each thread is signalled right after its kernel facts are read, so the threads already signalled unwind
  // themselves on the other cores while this thread reads the next ones' files.
  uint32_t expected_answers = 0;
  int queue_error = 0;
  std::vector<pid_t> blocking;
  std::vector<bool> read_asleep(tids.size(), false);
  for (size_t i = 0; i < tids.size(); ++i) {
    readKernelFacts(i);
    if (readWhereAsleep(i)) {
      read_asleep[i] = true;
      ++reply.read_asleep;
      uint32_t pending = slotState(kPending, generation);
      arena->slots[i].state.compare_exchange_strong(pending, slotState(sigsafe::kAbandoned, generation));
      // Still known to block the signal: forgotten, it would be asked again the next time it is caught awake, and
      // another signal would queue behind the one it has pending.
      if (std::binary_search(blocking_.begin(), blocking_.end(), tids[i])) blocking.push_back(tids[i]);
      continue;
    }
    reply.threads[i].status = 1;
    if (std::binary_search(blocking_.begin(), blocking_.end(), tids[i]) &&
        hindrance(tasks, tids[i], signo_).blocks_signal) {
      blocking.push_back(tids[i]);
      uint32_t pending = slotState(kPending, generation);
      arena->slots[i].state.compare_exchange_strong(pending, slotState(sigsafe::kAbandoned, generation));
      continue;
    }
    if (queueSignal(tids[i], signo_, sigsafe::encodeRequest(generation, static_cast<uint32_t>(i))) == 0) {
      ++expected_answers;
      continue;
    }
    // ESRCH: it is gone. Anything else (EAGAIN: the user's queued-signal limit, RLIMIT_SIGPENDING, is reached)
    // leaves it alive but unasked, which the reply must not present as an exit.
    const int err = errno;
    uint32_t pending = slotState(kPending, generation);
    arena->slots[i].state.compare_exchange_strong(
        pending, slotState(err == ESRCH ? kExited : sigsafe::kAbandoned, generation));
    if (err != ESRCH && queue_error == 0) queue_error = err;
  }

  if (queue_error != 0)
    reply.notes.push_back("some threads could not be signalled (" + std::string(std::strerror(queue_error)) +
                          "); raise RLIMIT_SIGPENDING (ulimit -i) if this persists");

  // Sleep on the answer counter. Whenever a slice passes with no new answer, every thread that could run has
  // had its chance: look for threads that exited or cannot answer (blocked signal, D, stopped) and stop waiting
  // for them, so one such thread never holds the dump to its deadline.
  const uint64_t deadline = start + static_cast<uint64_t>(request.timeout_ms) * 1000000ull;
  uint32_t answered = 0;
  while ((answered = arena->finished.load(std::memory_order_acquire)) < expected_answers) {
    const uint64_t now = sigsafe::nowNs();
    if (now >= deadline) break;
    timespec slice{0, static_cast<long>(std::min<uint64_t>(kExitCheckNs, deadline - now))};
    arena->wake_at.store(expected_answers);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&arena->finished), FUTEX_WAIT_PRIVATE, answered, &slice, nullptr, 0);
    if (arena->finished.load(std::memory_order_acquire) != answered) continue;
    for (size_t i = 0; i < tids.size(); ++i) {
      uint32_t pending = slotState(kPending, generation);
      if (arena->slots[i].state.load(std::memory_order_relaxed) != pending) continue;
      const bool exited = !threadExists(tids[i]);
      const Hindrance h = exited ? Hindrance{} : hindrance(tasks, tids[i], signo_);
      if ((exited || h.any()) &&
          arena->slots[i].state.compare_exchange_strong(
              pending, slotState(exited ? kExited : sigsafe::kAbandoned, generation))) {
        --expected_answers;
        if (h.blocks_signal) blocking.push_back(tids[i]);
      }
    }
  }

  for (size_t i = 0; i < tids.size(); ++i) {
    if (read_asleep[i]) continue;
    sigsafe::ThreadSlot& slot = arena->slots[i];
    uint32_t state = slot.state.load(std::memory_order_acquire);
    // Abandon what never started; a thread caught mid-write is let finish, which takes microseconds.
    if (state == slotState(kPending, generation) &&
        slot.state.compare_exchange_strong(state, slotState(sigsafe::kAbandoned, generation)))
      continue;
    while (slotKind(state = slot.state.load(std::memory_order_acquire)) == kWriting) {
    }
    auto& t = reply.threads[i];
    if (state == slotState(kExited, generation)) {
      t.status = 2;
    } else if (state == slotState(kDone, generation)) {
      t.status = 0;
      t.handler_ns = slot.handler_ns;
      reply.thread_names[i].assign(slot.name, strnlen(slot.name, sizeof slot.name));
      reply.max_handler_ns = std::max(reply.max_handler_ns, slot.handler_ns);
      t.pcs.assign(slot.frame_count, 0);
      for (uint32_t f = 0; f < slot.frame_count; ++f) t.pcs[f] = reinterpret_cast<uint64_t>(slot.pcs[f]);
    }
  }
  std::sort(blocking.begin(), blocking.end());
  blocking_ = std::move(blocking);
  reply.total_ns = sigsafe::nowNs() - start;
  return reply;
}

}  // namespace cppops::agent
