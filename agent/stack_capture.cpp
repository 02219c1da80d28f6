#include "stack_capture.h"

#include "asleep_stack.h"
#include "own_threads.h"
#include "task_directory.h"
#include "thread_signal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "protocol/lock_window.h"

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

// The name of a thread read asleep, from its stat line, when it sleeps interruptibly (S), as a thread that answers
// the signal does; "" in any other state, so that the CLI reads the thread's stat itself: the CLI takes a named
// thread for one in S or R, and D (disk wait) or T and t (stopped) outrank the call the thread sleeps in.
std::string nameIfInterruptible(const TaskDirectory& tasks, pid_t tid) {
  char stat[128];  // "tid (name) S ...": the name is at most 15 characters, and nothing after the state is read
  const size_t n = tasks.read(tid, "stat", stat, sizeof stat);
  const std::string_view line(stat, n);
  const size_t open = line.find('(');
  const size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open || close + 2 >= n ||
      line[close + 2] != 'S')
    return "";
  return std::string(line.substr(open + 1, close - open - 1));
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

  // How often each thread was given a CPU, read before its syscall line: reading it where it sleeps then needs no
  // second read of that line (AsleepStacks::read).
  std::vector<long long> arrivals(tids.size(), -1);
  auto readKernelFacts = [&](size_t i) {
    auto& t = reply.threads[i];
    arrivals[i] = arrivalCount(tasks, tids[i]);
    t.syscall_line = tasks.line(tids[i], "syscall");
    readLockWindow(t.syscall_line, t);
  };
  // A thread asleep in the kernel is read where it sleeps; the rest are asked with the signal.
  auto readWhereAsleep = [&](size_t i) {
    protocol::StackThread& t = reply.threads[i];
    uint64_t pcs[sigsafe::kMaxFrames];
    const size_t n = asleep_.read(tasks, tids[i], t.syscall_line, pcs, sigsafe::kMaxFrames, arrivals[i]).frames;
    if (n == 0) return false;
    t.status = 0;
    t.handler_ns = 0;
    t.pcs.assign(pcs, pcs + n);
    reply.thread_names[i] = nameIfInterruptible(tasks, tids[i]);
    return true;
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
