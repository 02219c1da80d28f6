#include "stack/analyze.h"

#include <fmt/format.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "proc/fd_description.h"
#include "proc/syscalls.h"

namespace cppops::stack {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Which kind of lock a futex wait is, from the functions on the stack.

struct LockFunction {
  std::string_view name;  // as normalized by lockMatchName()
  ThreadState state;
  bool prefix = false;  // also matches longer names: "std::timed_mutex::" stands for every member
  // glibc's internal locks (malloc arenas, stdio) are bare lock words: what follows them is not an owner tid.
  bool has_owner_field = true;
};

// Innermost match wins, so low-level helpers (__lll_lock_wait) decide before the API that called them, and a
// condition variable re-acquiring its mutex reads as a mutex wait, which is what it is.
constexpr LockFunction kLockFunctions[] = {
    {"pthread_mutex_lock", ThreadState::kMutex},
    {"pthread_mutex_lock_full", ThreadState::kMutex},
    {"pthread_mutex_timedlock", ThreadState::kMutex},
    {"pthread_mutex_clocklock", ThreadState::kMutex},
    {"pthread_mutex_clocklock_common", ThreadState::kMutex},
    {"pthread_mutex_cond_lock", ThreadState::kMutex},
    {"pthread_mutex_cond_lock_full", ThreadState::kMutex},
    {"lll_mutex_lock_optimized", ThreadState::kMutex},
    {"lll_lock_wait", ThreadState::kMutex},
    {"lll_clocklock_wait", ThreadState::kMutex},
    {"lll_lock_wait_private", ThreadState::kMutex, false, false},
    {"std::mutex::lock", ThreadState::kMutex},
    {"std::recursive_mutex::lock", ThreadState::kMutex},
    {"std::timed_mutex::", ThreadState::kMutex, true},
    {"std::recursive_timed_mutex::", ThreadState::kMutex, true},

    {"pthread_rwlock_rdlock", ThreadState::kRwlockRead},
    {"pthread_rwlock_rdlock_full", ThreadState::kRwlockRead},
    {"pthread_rwlock_timedrdlock", ThreadState::kRwlockRead},
    {"pthread_rwlock_clockrdlock", ThreadState::kRwlockRead},
    {"std::shared_mutex::lock_shared", ThreadState::kRwlockRead},
    {"std::shared_timed_mutex::lock_shared", ThreadState::kRwlockRead},
    {"std::shared_timed_mutex::try_lock_shared", ThreadState::kRwlockRead, true},
    {"std::shared_lock::", ThreadState::kRwlockRead, true},
    {"pthread_rwlock_wrlock", ThreadState::kRwlockWrite},
    {"pthread_rwlock_wrlock_full", ThreadState::kRwlockWrite},
    {"pthread_rwlock_timedwrlock", ThreadState::kRwlockWrite},
    {"pthread_rwlock_clockwrlock", ThreadState::kRwlockWrite},
    {"std::shared_mutex::lock", ThreadState::kRwlockWrite},
    {"std::shared_timed_mutex::lock", ThreadState::kRwlockWrite},
    {"std::shared_timed_mutex::try_lock_", ThreadState::kRwlockWrite, true},

    {"pthread_cond_wait", ThreadState::kCondition},
    {"pthread_cond_timedwait", ThreadState::kCondition},
    {"pthread_cond_clockwait", ThreadState::kCondition},
    {"pthread_cond_wait_common", ThreadState::kCondition},
    {"std::condition_variable::wait", ThreadState::kCondition, true},
    {"std::condition_variable_any::wait", ThreadState::kCondition, true},

    {"sem_wait", ThreadState::kSemaphore},
    {"sem_timedwait", ThreadState::kSemaphore},
    {"sem_clockwait", ThreadState::kSemaphore},
    {"new_sem_wait_slow", ThreadState::kSemaphore, true},
    {"do_futex_wait", ThreadState::kSemaphore},
    {"std::counting_semaphore::", ThreadState::kSemaphore, true},
    {"std::__atomic_semaphore::", ThreadState::kSemaphore, true},
};

// Inline namespaces of libstdc++ and libc++ that would otherwise hide "std::condition_variable_any" and friends.
constexpr std::string_view kInlineNamespaces[] = {"__cxx11::", "_V2::", "__1::"};
constexpr std::string_view kAnonymousNamespace = "(anonymous namespace)::";
// What glibc's debug info calls its internal aliases: "__GI___lll_lock_wait".
constexpr std::string_view kGlibcInternalAlias = "GI_";

void eraseLeadingUnderscores(std::string& name) { name.erase(0, name.find_first_not_of('_')); }

void eraseAll(std::string& text, std::string_view what) {
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) text.erase(at, what.size());
}

// The qualified name alone, so that one table entry matches every spelling a symbolizer may produce:
//   "void std::condition_variable::wait<P>(std::unique_lock<std::mutex>&, P) [clone .cold]"
//       -> "std::condition_variable::wait"
//   "___pthread_mutex_lock@@GLIBC_2.2.5" -> "pthread_mutex_lock"
//   "__GI___lll_lock_wait_private" -> "lll_lock_wait_private"
//   "__pthread_cond_wait_common.constprop.0" -> "pthread_cond_wait_common"
std::string lockMatchName(std::string_view function) {
  std::string name;
  int template_depth = 0;
  for (char c : function) {
    if (c == '<') {
      ++template_depth;
    } else if (c == '>') {
      template_depth = std::max(template_depth - 1, 0);
    } else if (template_depth == 0) {
      name += c;
    }
  }
  eraseAll(name, kAnonymousNamespace);
  for (std::string_view inline_namespace : kInlineNamespaces) eraseAll(name, inline_namespace);
  name.resize(std::min(name.size(), name.find_first_of("(@.")));
  size_t space = name.rfind(' ');  // before it, a template's return type
  if (space != std::string::npos) name.erase(0, space + 1);
  eraseLeadingUnderscores(name);
  if (name.compare(0, kGlibcInternalAlias.size(), kGlibcInternalAlias) == 0) {
    name.erase(0, kGlibcInternalAlias.size());
    eraseLeadingUnderscores(name);
  }
  return name;
}

bool matches(const LockFunction& entry, std::string_view name) {
  if (name.substr(0, entry.name.size()) != entry.name) return false;
  std::string_view rest = name.substr(entry.name.size());
  // glibc 2.34+ names its 64-bit time_t entry points with a "64" suffix (__pthread_rwlock_clockrdlock64).
  return rest.empty() || rest == "64" || entry.prefix;
}

const LockFunction* innermostLockFunction(const std::vector<SourceFrame>& frames) {
  for (const SourceFrame& frame : frames) {
    if (frame.function.empty()) continue;
    std::string name = lockMatchName(frame.function);
    for (const LockFunction& entry : kLockFunctions) {
      if (matches(entry, name)) return &entry;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// Lock owners, from the bytes the source copied around the futex word.

// glibc's pthread_mutex_t on x86_64 ({__lock, __count, __owner, ...}); the futex word is __lock.
constexpr uint64_t kMutexOwnerOffset = 8;
// glibc 2.36's pthread_rwlock_t on x86_64.
constexpr uint64_t kRwlockReadersOffset = 0;
constexpr uint64_t kRwlockWrphaseFutexOffset = 8;
constexpr uint64_t kRwlockWritersFutexOffset = 12;
constexpr uint64_t kRwlockCurWriterOffset = 24;
constexpr unsigned kRwlockReaderShift = 3;  // PTHREAD_RWLOCK_READER_SHIFT
// PID_MAX_LIMIT on 64-bit kernels: a larger value is not a tid but a misread.
constexpr int64_t kMaxTid = 4 * 1024 * 1024;

std::optional<uint32_t> windowWord(const RawThread& raw, uint64_t address) {
  if (address < raw.lock_window_address) return std::nullopt;
  uint64_t offset = address - raw.lock_window_address;
  if (offset > raw.lock_window.size() || raw.lock_window.size() - offset < sizeof(uint32_t)) return std::nullopt;
  uint32_t word = 0;
  std::memcpy(&word, raw.lock_window.data() + offset, sizeof(word));
  return word;
}

std::optional<pid_t> asTid(int64_t value) {
  if (value <= 0 || value > kMaxTid) return std::nullopt;
  return static_cast<pid_t>(value);
}

std::optional<pid_t> windowTid(const RawThread& raw, uint64_t address) {
  std::optional<uint32_t> word = windowWord(raw, address);
  return word ? asTid(static_cast<int32_t>(*word)) : std::nullopt;
}

std::optional<pid_t> mutexOwner(const RawThread& raw, const proc::FutexCall& call) {
  if (!call.pi) return windowTid(raw, call.uaddr + kMutexOwnerOffset);
  // A PI futex word is the owner's tid plus the FUTEX_WAITERS and FUTEX_OWNER_DIED bits.
  std::optional<uint32_t> word = windowWord(raw, call.uaddr);
  return word ? asTid(*word & FUTEX_TID_MASK) : std::nullopt;
}

std::string hex(uint64_t value) { return fmt::format("0x{:x}", value); }

// ---------------------------------------------------------------------------------------------------------------
// Per-thread classification.

// One step of FNV-1a over word-sized parts: the hashes of a dump's keys (frames, stacks, groups).
size_t hashStep(size_t hash, size_t part) { return (hash ^ part) * 0x100000001b3ull; }

// What every thread of one dump is classified against.
class DumpContext {
 public:
  DumpContext(const RawDump& raw, int stack_signal) : pid_(raw.pid), stack_signal_(stack_signal), fds_(raw.pid) {
    for (const RawThread& thread : raw.threads) tids_.push_back(thread.tid);
    std::sort(tids_.begin(), tids_.end());
  }

  pid_t pid() const { return pid_; }
  int stackSignal() const { return stack_signal_; }
  bool inDump(pid_t tid) const { return std::binary_search(tids_.begin(), tids_.end(), tid); }

  // The frames of a captured stack, symbolized once for every thread that has the same pcs.
  const FrameList& framesOf(const std::vector<uint64_t>& pcs, const FrameSource& frames);

  // Many threads often wait on one fd (a pipe, a listening socket): each is looked up once per dump.
  const std::string& describeFd(int fd) {
    auto [known, added] = fd_labels_.try_emplace(fd);
    if (!added) return known->second;
    std::string label = "fd " + std::to_string(fd);
    std::string description = fds_.describe(fd);
    known->second = description == label ? label : label + ": " + description;
    return known->second;
  }

 private:
  pid_t pid_;
  int stack_signal_;
  proc::FdDescriber fds_;
  std::unordered_map<int, std::string> fd_labels_;
  std::vector<pid_t> tids_;
  struct PcsHash {
    size_t operator()(const std::vector<uint64_t>& pcs) const {
      size_t h = pcs.size();
      for (uint64_t pc : pcs) h = hashStep(h, pc);
      return h;
    }
  };
  std::unordered_map<std::vector<uint64_t>, FrameList, PcsHash> stacks_;
};

void classifyRwlock(Thread& thread, const RawThread& raw, uint64_t uaddr, const DumpContext& context) {
  bool writer = thread.state == ThreadState::kRwlockWrite;
  uint64_t wrphase_base = uaddr - kRwlockWrphaseFutexOffset;
  // Readers sleep on __wrphase_futex; a writer sleeps on __writers_futex while another writer holds the lock, or
  // on __wrphase_futex while readers drain. The address alone cannot tell, so the base is the candidate whose
  // __cur_writer names one of our threads.
  std::vector<uint64_t> bases{wrphase_base};
  if (writer) bases.insert(bases.begin(), uaddr - kRwlockWritersFutexOffset);
  for (uint64_t base : bases) {
    std::optional<pid_t> cur_writer = windowTid(raw, base + kRwlockCurWriterOffset);
    if (cur_writer && context.inDump(*cur_writer)) {
      thread.owner_tid = cur_writer;
      thread.wait = "rwlock " + hex(base);
      return;
    }
  }
  thread.wait = "rwlock " + hex(wrphase_base);
  // Only a writer can be held off by readers: a waiting reader has already counted itself in __readers.
  std::optional<uint32_t> readers = windowWord(raw, wrphase_base + kRwlockReadersOffset);
  thread.held_by_readers = writer && readers && (*readers >> kRwlockReaderShift) > 0;
}

void explainAbsentOwner(Thread& thread, const DumpContext& context) {
  pid_t owner = *thread.owner_tid;
  if (context.inDump(owner)) return;
  // Alive but not in the dump (started after the thread list was taken, or the agent's own thread): no verdict.
  if (proc::readTaskStat(context.pid(), owner).ok()) return;
  thread.wait += fmt::format(" (owner thread {} has exited: the lock was abandoned)", owner);
}

// Without frames (--no-signal, or a thread that could not answer), a glibc mutex is still recognisable: its
// waiters use a plain FUTEX_WAIT on __lock, which reads 2 (locked, contended), with __owner naming a thread of
// this process. Condition variables and semaphores wait with FUTEX_WAIT_BITSET, so they do not match.
bool looksLikeContendedMutex(const RawThread& raw, const proc::FutexCall& call, const DumpContext& context) {
  if (call.pi || call.op != FUTEX_WAIT) return false;
  std::optional<uint32_t> word = windowWord(raw, call.uaddr);
  std::optional<pid_t> owner = windowTid(raw, call.uaddr + kMutexOwnerOffset);
  return word && *word == 2 && owner && context.inDump(*owner);
}

void classifyFutex(Thread& thread, const RawThread& raw, const proc::SyscallInfo& info, const DumpContext& context) {
  const LockFunction* lock = innermostLockFunction(thread.frames.all());
  std::optional<proc::FutexCall> call = proc::decodeFutex(info);
  // Only mutexes use PI futexes, so a PI wait is a mutex even when the stack is unknown.
  const bool mutex_without_lock_frame =
      lock == nullptr && call && (call->pi || (thread.frames.empty() && looksLikeContendedMutex(raw, *call, context)));
  thread.state =
      lock != nullptr ? lock->state : (mutex_without_lock_frame ? ThreadState::kMutex : ThreadState::kAtomicWait);
  if (!call) return;  // futex_waitv: many words at once, none to name

  switch (thread.state) {
    case ThreadState::kMutex:
      thread.wait = "mutex " + hex(call->uaddr);
      if (lock == nullptr || lock->has_owner_field) thread.owner_tid = mutexOwner(raw, *call);
      break;
    case ThreadState::kRwlockRead:
    case ThreadState::kRwlockWrite:
      classifyRwlock(thread, raw, call->uaddr, context);
      break;
    case ThreadState::kCondition:
      thread.wait = "condition variable " + hex(call->uaddr);
      break;
    case ThreadState::kSemaphore:
      thread.wait = "semaphore " + hex(call->uaddr);
      break;
    default:
      thread.wait = "futex " + hex(call->uaddr);
      break;
  }
  if (thread.owner_tid) explainAbsentOwner(thread, context);
}

ThreadState stateOfSyscall(proc::SyscallClass kind) {
  switch (kind) {
    case proc::SyscallClass::kFutex: return ThreadState::kAtomicWait;
    case proc::SyscallClass::kRead: return ThreadState::kRead;
    case proc::SyscallClass::kWrite: return ThreadState::kWrite;
    case proc::SyscallClass::kPoll: return ThreadState::kPoll;
    case proc::SyscallClass::kAccept: return ThreadState::kAccept;
    case proc::SyscallClass::kConnect: return ThreadState::kConnect;
    case proc::SyscallClass::kSleep: return ThreadState::kSleep;
    case proc::SyscallClass::kWait: return ThreadState::kWaitChild;
    case proc::SyscallClass::kSignalWait: return ThreadState::kSignalWait;
    case proc::SyscallClass::kNone:
    case proc::SyscallClass::kOther: return ThreadState::kSyscall;
  }
  return ThreadState::kSyscall;
}

void classifySyscall(Thread& thread, const RawThread& raw, const proc::SyscallInfo& info, DumpContext& context) {
  proc::SyscallClass kind = proc::classifySyscall(info.number);
  if (kind == proc::SyscallClass::kFutex) {
    classifyFutex(thread, raw, info, context);
    return;
  }
  thread.state = stateOfSyscall(kind);
  int fd = proc::syscallFdArgument(info.number, info.args);
  if (fd >= 0) thread.wait = context.describeFd(fd);
}

std::string syscallLabel(long number) {
  std::string_view name = proc::syscallName(number);
  return name.empty() ? "syscall_" + std::to_string(number) : std::string(name);
}

// A timed sleep, futex or poll wait that a stop interrupted (a ptrace stop, or a signal handler) is resumed by the
// kernel through restart_syscall(2): /proc then shows that number, with the original arguments still in the
// registers. The innermost named frame is the libc wrapper that made the original call.
long restartedSyscall(const std::vector<SourceFrame>& frames) {
  constexpr size_t kWrapperDepth = 3;  // the wrapper, or what it was inlined into
  size_t named = 0;
  for (const SourceFrame& frame : frames) {
    if (frame.function.empty()) continue;
    const std::string name = lockMatchName(frame.function);
    if (name.compare(0, 5, "futex") == 0 || name == "do_futex_wait") return SYS_futex;
    if (name.compare(0, 15, "clock_nanosleep") == 0) return SYS_clock_nanosleep;
    if (name == "nanosleep") return SYS_nanosleep;
    if (name.compare(0, 5, "ppoll") == 0) return SYS_ppoll;
    if (name == "poll") return SYS_poll;
    if (++named == kWrapperDepth) break;
  }
  return SYS_restart_syscall;
}

void classify(Thread& thread, const RawThread& raw, DumpContext& context) {
  proc::SyscallInfo info = proc::parseSyscall(raw.syscall_line);
  if (info.kind == proc::SyscallInfo::Kind::kInSyscall && info.number == SYS_restart_syscall)
    info.number = restartedSyscall(thread.frames.all());
  if (info.kind == proc::SyscallInfo::Kind::kInSyscall) thread.syscall = syscallLabel(info.number);
  // The scheduler state outranks the syscall: a stopped thread stays stopped whatever it was doing.
  switch (thread.kernel_state) {
    case 'Z':
      thread.state = ThreadState::kZombie;
      return;
    case 'T':
    case 't':
      thread.state = ThreadState::kStopped;
      return;
    case 'D':
      thread.state = ThreadState::kDiskWait;
      thread.wait = proc::readWchan(context.pid(), thread.tid);
      return;
    default:
      break;
  }
  switch (info.kind) {
    case proc::SyscallInfo::Kind::kRunning:
      thread.state = ThreadState::kRunning;
      return;
    case proc::SyscallInfo::Kind::kInSyscall:
      classifySyscall(thread, raw, info, context);
      return;
    case proc::SyscallInfo::Kind::kBlockedNotInSyscall:
    case proc::SyscallInfo::Kind::kUnknown:
      thread.state = thread.kernel_state == 'R' ? ThreadState::kRunning : ThreadState::kUnknown;
      return;
  }
}

// Blocked and still pending: a thread inside a signal handler has the signal blocked too (the handler's mask), but
// not pending, and is no evidence of a mask that keeps the dump out.
bool blocksSignal(const DumpContext& context, pid_t tid, int signal) {
  if (signal <= 0 || signal > 64) return false;
  Result<proc::SignalMasks> masks = proc::readSignalMasks(context.pid(), tid);
  return masks.ok() && ((masks->blocked & masks->pending) >> (signal - 1) & 1) != 0;
}

std::string noAnswerReason(const Thread& thread, const DumpContext& context) {
  if (blocksSignal(context, thread.tid, context.stackSignal())) {
    return fmt::format("blocks signal {}, so it could not unwind itself", context.stackSignal());
  }
  switch (thread.kernel_state) {
    case 'D':
      return thread.wait.empty() ? "in uninterruptible sleep (D)" : "in uninterruptible sleep (D) in " + thread.wait;
    case 'T':
    case 't':
      return "stopped";
    default:
      return "did not answer within the deadline";
  }
}

std::string noStackReason(const Thread& thread, const DumpContext& context) {
  switch (thread.capture) {
    case CaptureStatus::kCaptured: return "no frames could be unwound";
    case CaptureStatus::kNoAnswer: return noAnswerReason(thread, context);
    case CaptureStatus::kExited: return "exited during the capture";
    case CaptureStatus::kNotRequested: return "stack not captured: no signal was sent (see the notes)";
  }
  return {};
}

std::vector<SourceFrame> symbolizeAll(const std::vector<uint64_t>& pcs, const FrameSource& frames) {
  std::vector<SourceFrame> out;
  out.reserve(pcs.size());
  bool return_address = false;  // the first pc is where the thread was
  for (size_t i = 0; i < pcs.size(); ++i) {
    std::vector<SourceFrame> expanded = frames ? frames(pcs[i], return_address) : std::vector<SourceFrame>{};
    return_address = expanded.empty() || followedByReturnAddress(expanded.back().function);
    if (expanded.empty()) {
      SourceFrame bare;
      bare.address = pcs[i];
      expanded.push_back(std::move(bare));
    }
    std::move(expanded.begin(), expanded.end(), std::back_inserter(out));
  }
  return out;
}

const FrameList& DumpContext::framesOf(const std::vector<uint64_t>& pcs, const FrameSource& frames) {
  auto [known, added] = stacks_.try_emplace(pcs);
  if (added) known->second = FrameList(symbolizeAll(pcs, frames));
  return known->second;
}

Thread buildThread(const RawThread& raw, const std::map<pid_t, proc::TaskStat>& stats, const FrameSource& frames,
                   DumpContext& context) {
  Thread thread;
  thread.tid = raw.tid;
  thread.capture = raw.status;
  thread.handler_ns = raw.handler_ns;
  if (auto stat = stats.find(raw.tid); stat != stats.end()) {
    thread.name = stat->second.name;
    thread.kernel_state = stat->second.state;
  }
  thread.frames = context.framesOf(raw.pcs, frames);
  // Frames first: a futex wait is told apart by the functions on the stack.
  classify(thread, raw, context);
  if (thread.frames.empty())
    thread.no_stack_reason = raw.no_stack_reason.empty() ? noStackReason(thread, context) : raw.no_stack_reason;
  return thread;
}

// ---------------------------------------------------------------------------------------------------------------
// Whole-dump analysis.

bool waitsForLockOwner(const Thread& thread) {
  return thread.state == ThreadState::kMutex || thread.state == ThreadState::kRwlockRead ||
         thread.state == ThreadState::kRwlockWrite;
}

std::vector<Deadlock> findDeadlocks(const std::vector<Thread>& threads) {
  std::unordered_map<pid_t, pid_t> owner_of;
  for (const Thread& thread : threads) {
    if (waitsForLockOwner(thread) && thread.owner_tid) owner_of[thread.tid] = *thread.owner_tid;
  }
  // Every thread has at most one out-edge, so a walk from any thread either ends or runs into a cycle; marking
  // walked threads makes each cycle found once and the whole search linear.
  enum class Mark { kUnseen, kOnWalk, kDone };
  std::unordered_map<pid_t, Mark> marks;
  std::vector<Deadlock> deadlocks;
  for (const Thread& start : threads) {
    std::vector<pid_t> walk;
    for (pid_t tid = start.tid; marks[tid] == Mark::kUnseen;) {
      marks[tid] = Mark::kOnWalk;
      walk.push_back(tid);
      auto edge = owner_of.find(tid);
      if (edge == owner_of.end()) break;
      tid = edge->second;
      if (marks[tid] == Mark::kOnWalk) {
        Deadlock deadlock;
        deadlock.tids.assign(std::find(walk.begin(), walk.end(), tid), walk.end());
        std::rotate(deadlock.tids.begin(), std::min_element(deadlock.tids.begin(), deadlock.tids.end()),
                    deadlock.tids.end());
        deadlocks.push_back(std::move(deadlock));
      }
    }
    for (pid_t tid : walk) marks[tid] = Mark::kDone;
  }
  std::sort(deadlocks.begin(), deadlocks.end(),
            [](const Deadlock& a, const Deadlock& b) { return a.tids.front() < b.tids.front(); });
  return deadlocks;
}

// What makes two frames the same for grouping: (function, file, line, module, location). Views into the
// threads' own frames, which outlive the grouping.
struct FrameKey {
  std::string_view function, file, module;
  int line = 0;
  uint64_t location = 0;

  bool operator==(const FrameKey& other) const {
    return line == other.line && location == other.location && function == other.function && file == other.file &&
           module == other.module;
  }
};

struct FrameKeyHash {
  size_t operator()(const FrameKey& key) const {
    size_t h = std::hash<std::string_view>()(key.function);
    for (size_t part : {std::hash<std::string_view>()(key.file), std::hash<std::string_view>()(key.module),
                        static_cast<size_t>(key.line), static_cast<size_t>(key.location)})
      h = hashStep(h, part);
    return h;
  }
};

FrameKey frameKey(const SourceFrame& frame) {
  if (!frame.function.empty()) return {frame.function, frame.file, frame.module, frame.line, 0};
  // Without a name, where the code is tells frames apart: the module offset, or the bare address when even the
  // module is unknown.
  return {"", "", frame.module, 0, frame.module.empty() ? frame.address : frame.module_offset};
}

// Threads group by state, reason and frames. Each distinct frame gets a number once, so a thread's key is a
// short vector of numbers: 1,000 threads share a few hundred distinct frames, and comparing their names once
// per frame rather than once per comparison is what keeps grouping cheap.
struct GroupKey {
  ThreadState state;
  std::string_view no_stack_reason;
  std::vector<uint32_t> frames;

  bool operator==(const GroupKey& other) const {
    return state == other.state && no_stack_reason == other.no_stack_reason && frames == other.frames;
  }
};

struct GroupKeyHash {
  size_t operator()(const GroupKey& key) const {
    size_t h = std::hash<std::string_view>()(key.no_stack_reason) ^ static_cast<size_t>(key.state);
    for (uint32_t id : key.frames) h = hashStep(h, id);
    return h;
  }
};

std::vector<Group> groupThreads(const std::vector<Thread>& threads) {
  std::unordered_map<FrameKey, uint32_t, FrameKeyHash> frame_ids;
  // Threads that share a frame list (FrameList) share its numbers too: each list is numbered once.
  std::unordered_map<const std::vector<SourceFrame>*, std::vector<uint32_t>> ids_of_list;
  std::unordered_map<GroupKey, size_t, GroupKeyHash> group_of;
  std::vector<Group> groups;
  for (size_t i = 0; i < threads.size(); ++i) {
    const Thread& thread = threads[i];
    auto [ids, numbered] = ids_of_list.try_emplace(&thread.frames.all());
    if (numbered) {
      for (const SourceFrame& frame : thread.frames)
        ids->second.push_back(
            frame_ids.try_emplace(frameKey(frame), static_cast<uint32_t>(frame_ids.size())).first->second);
    }
    GroupKey key{thread.state, thread.no_stack_reason, ids->second};
    auto [it, added] = group_of.try_emplace(std::move(key), groups.size());
    if (added) groups.push_back(Group{{}, thread.state});
    groups[it->second].members.push_back(i);
  }
  // Members are ascending indexes into tid-sorted threads, so the first is the group's smallest tid.
  std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    if (a.members.size() != b.members.size()) return a.members.size() > b.members.size();
    return a.members.front() < b.members.front();
  });
  return groups;
}

}  // namespace

StackDump analyze(const RawDump& raw, const std::map<pid_t, proc::TaskStat>& stats, const FrameSource& frames,
                  int stack_signal) {
  DumpContext context(raw, stack_signal);
  StackDump dump;
  dump.pid = raw.pid;
  dump.source = raw.source;
  for (const RawThread& thread : raw.threads) dump.threads.push_back(buildThread(thread, stats, frames, context));
  std::sort(dump.threads.begin(), dump.threads.end(), [](const Thread& a, const Thread& b) { return a.tid < b.tid; });
  dump.deadlocks = findDeadlocks(dump.threads);
  dump.groups = groupThreads(dump.threads);
  dump.cost.capture_ns = raw.total_ns;
  dump.cost.max_pause_ns = raw.max_pause_ns;
  dump.cost.read_asleep = raw.read_asleep;
  dump.notes = raw.notes;
  return dump;
}

ThreadState stateFromSyscall(std::string_view syscall_line, const std::vector<SourceFrame>& frames) {
  proc::SyscallInfo info = proc::parseSyscall(syscall_line);
  switch (info.kind) {
    case proc::SyscallInfo::Kind::kRunning:
      return ThreadState::kRunning;
    case proc::SyscallInfo::Kind::kInSyscall:
      break;
    case proc::SyscallInfo::Kind::kBlockedNotInSyscall:
    case proc::SyscallInfo::Kind::kUnknown:
      return ThreadState::kUnknown;
  }
  proc::SyscallClass kind = proc::classifySyscall(info.number);
  if (kind != proc::SyscallClass::kFutex) return stateOfSyscall(kind);
  if (const LockFunction* lock = innermostLockFunction(frames)) return lock->state;
  // Only mutexes use priority-inheritance futexes.
  std::optional<proc::FutexCall> call = proc::decodeFutex(info);
  return call && call->pi ? ThreadState::kMutex : ThreadState::kAtomicWait;
}

}  // namespace cppops::stack
