#include "profiler.h"

#include "asleep_stack.h"
#include "task_directory.h"
#include "thread_signal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "commands.h"
#include "metrics/thread_counts.h"
#include "own_threads.h"
#include "protocol/protocol.h"
#include "sigsafe/capture.h"
#include "sigsafe/sampler.h"

namespace cppops::agent {

namespace {

using sigsafe::kSampleBuffers;
using sigsafe::nowNs;
using sigsafe::SampleBuffer;
using sigsafe::SampleRecord;

constexpr uint64_t kMsNs = 1000000ull;
// How often the thread list may be read again (new threads get a timer, ended ones lose theirs), and, in cpu mode,
// how often the samples are collected.
constexpr uint64_t kRescanNs = 100 * kMsNs;
// Listing /proc/self/task costs the kernel a lookup per thread (a millisecond at 1,000 threads), so the list is
// read again only when the threads may have changed: the shared agent counts pthread_create, and the kernel counts
// the live threads (one ended, or one started another way). A thread started another way as another ended leaves
// both counts as they were: the list is read at least this often all the same.
constexpr uint64_t kFullRescanNs = 1000 * kMsNs;
// Sample buffers: sized for two collection intervals of samples of about 1 KiB (a deep stack) each, within these
// bounds, and doubled whenever one overflowed.
constexpr uint64_t kMinBufferBytes = 256 * 1024;
constexpr uint64_t kMaxBufferBytes = 64ull * 1024 * 1024;
constexpr uint64_t kBytesPerSample = 1024;
// A handler writes for well under a microsecond; a block whose writer has not left after this long belongs to a
// thread that was stopped (a debugger) or starved in the middle, and is set aside instead of waited for.
constexpr uint64_t kWriterWaitNs = 50 * kMsNs;
// Wall mode, at the end: how long requests sent at the last tick may take to be answered.
constexpr uint64_t kFinalAnswersNs = 20 * kMsNs;
// The reply must fit the protocol's reply bound, with room for the thread table.
constexpr size_t kReplyBudget = protocol::kMaxReplyPayload - 16 * 1024 * 1024;

pid_t currentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// The CPU-time clock of one thread of this process, as the kernel encodes it (MAKE_THREAD_CPUCLOCK(tid,
// CPUCLOCK_SCHED) in include/linux/posix-timers.h): what pthread_getcpuclockid() returns, for a thread we only
// know by its tid.
clockid_t threadCpuClock(pid_t tid) { return static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6); }

// Writes a whole frame on the non-blocking connection, waiting for room up to `deadline_ns`.
bool sendFrame(int fd, protocol::Status status, const std::vector<uint8_t>& payload, uint64_t deadline_ns) {
  protocol::FrameHeader h;
  h.code = static_cast<uint16_t>(status);
  h.length = static_cast<uint32_t>(payload.size());
  uint8_t header[protocol::kHeaderSize];
  protocol::encodeHeader(h, header);
  const uint8_t* parts[2] = {header, payload.data()};
  const size_t sizes[2] = {sizeof header, payload.size()};
  for (int part = 0; part < 2; ++part) {
    size_t sent = 0;
    while (sent < sizes[part]) {
      ssize_t n = ::send(fd, parts[part] + sent, sizes[part] - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN) return false;
      const uint64_t now = nowNs();
      if (now >= deadline_ns) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<uint64_t>((deadline_ns - now) / kMsNs + 1, 1000)));
    }
  }
  return true;
}

void replyError(int fd, protocol::Status status, std::string message, long timeout_ms) {
  Reply r = errorReply(status, std::move(message));
  sendFrame(fd, r.status, r.payload, nowNs() + static_cast<uint64_t>(timeout_ms) * kMsNs);
  ::close(fd);
}

const char* modeName(uint8_t mode) { return mode == protocol::kProfileWall ? "wall" : "cpu"; }

std::string seconds(uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ns) / 1e9);
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// One profile, from start to reply, on the profile thread.

struct SessionConfig {
  int fd = -1;
  protocol::ProfileRequest request;
  pid_t control_tid = 0;
  int signo = 0;
  uint32_t generation = 0;
  int stop_fd = -1;
  long reply_timeout_ms = 5000;
};

class Session {
 public:
  explicit Session(SessionConfig config) : c_(std::move(config)) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  void run();
  // Hands the connection back (when the session never ran).
  int releaseFd() { return std::exchange(c_.fd, -1); }

 private:
  struct Tracked {
    std::string name;
    bool alive = true;
    bool has_timer = false;
    timer_t timer{};
    // Wall mode.
    bool outstanding = false;           // a request was queued and not answered yet
    uint32_t outstanding_tag = 0;
    // The sample (in samples_) of its last stack, with the kernel facts it was read with; kNoSample before one.
    size_t last_sample = kNoSample;
    // When the stack was read where the thread sleeps: its CPU time then (threadCpuNs), which stands while it has
    // not run since. -1 for a stack it cannot vouch for (an answer to the signal: the thread ran to give it).
    int64_t stack_cpu_ns = -1;
    // The kernel facts at which the thread's stack could not be read where it sleeps, whether it ran or not: a
    // frame there needs a register the kernel does not report.
    std::string unreadable_line;
  };
  static constexpr size_t kNoSample = SIZE_MAX;
  struct Pending {
    pid_t tid = 0;
    std::string line;
    uint64_t weight = 1;  // ticks this answer stands for: later ones at which the thread was still in `line`
  };

  bool setUpBuffers(uint64_t expected_per_interval);
  bool allocate(int index);
  int pickSpare() const;
  void rotate();
  bool drain(int index);
  void finish();

  void scanIfChanged(uint64_t now);
  void scan();
  void track(pid_t tid);
  void untrack(pid_t tid, Tracked& t);
  void tick(uint64_t weight);
  size_t addSample(pid_t tid, uint64_t weight, const std::string& line, const uint64_t* pcs, size_t frames);
  void answer(const SampleRecord& record, const uint64_t* pcs);
  std::vector<uint8_t> encodeReply(uint64_t duration_ns);

  SessionConfig c_;
  TaskDirectory tasks_;
  std::unique_ptr<AsleepStacks> asleep_;  // wall mode only: its pages are large
  pid_t self_ = 0;
  uint64_t period_ns_ = 0;
  bool wall_ = false;

  int active_ = -1;
  uint64_t capacity_ = 0;
  bool stuck_[kSampleBuffers] = {};

  std::unordered_map<pid_t, Tracked> threads_;
  // What the counts were when the threads were last listed (scanIfChanged).
  uint64_t listed_created_ = 0;
  long listed_live_ = -1;
  uint64_t next_full_scan_ = 0;
  std::unordered_map<uint32_t, Pending> pending_;
  uint32_t next_tag_ = 1;

  std::unordered_map<std::string, size_t> index_;
  std::vector<protocol::ProfileSample> samples_;
  uint64_t dropped_ = 0;
  uint64_t ticks_ = 0;
  uint64_t late_periods_ = 0;
  uint64_t timer_failures_ = 0;
  int timer_errno_ = 0;
  std::vector<std::string> notes_;
};

Session::~Session() {
  for (auto& [tid, t] : threads_) untrack(tid, t);
  if (c_.fd >= 0) ::close(c_.fd);
}

bool Session::allocate(int index) {
  SampleBuffer& b = sigsafe::sampleBuffer(index);
  if (b.writers.load(std::memory_order_acquire) != 0) return false;
  if (b.data != nullptr && b.capacity == capacity_) {
    b.used.store(0, std::memory_order_relaxed);  // a block set aside by an earlier profile may hold its records
    return true;
  }
  delete[] reinterpret_cast<uint64_t*>(b.data);
  b.data = nullptr;
  b.capacity = 0;
  auto* words = new (std::nothrow) uint64_t[capacity_ / sizeof(uint64_t)];
  if (words == nullptr) return false;
  b.data = reinterpret_cast<uint8_t*>(words);
  b.capacity = capacity_;
  b.used.store(0, std::memory_order_relaxed);
  return true;
}

bool Session::setUpBuffers(uint64_t expected_per_interval) {
  capacity_ = std::clamp<uint64_t>(2 * expected_per_interval * kBytesPerSample, kMinBufferBytes, kMaxBufferBytes);
  // A block left with a writer by an earlier profile stays aside until that writer has gone.
  for (int i = 0; i < kSampleBuffers; ++i)
    stuck_[i] = sigsafe::sampleBuffer(i).writers.load(std::memory_order_acquire) != 0;
  int first = pickSpare();
  if (first < 0 || !allocate(first)) return false;
  active_ = first;
  sigsafe::startSampling(c_.generation, active_);
  return true;
}

int Session::pickSpare() const {
  for (int i = 0; i < kSampleBuffers; ++i)
    if (i != active_ && !stuck_[i] && sigsafe::sampleBuffer(i).writers.load(std::memory_order_acquire) == 0)
      return i;
  return -1;
}

// Points the handlers at a fresh block and collects the one they wrote into.
void Session::rotate() {
  int spare = pickSpare();
  if (spare < 0 || !allocate(spare)) return;  // keep writing into the active block; it is collected later
  const int old = active_;
  sigsafe::switchSampleBuffer(spare);
  active_ = spare;
  drain(old);
}

// Reads and empties a block that handlers no longer write into. False when a writer did not leave in time: the
// block is then set aside, never read, reused or freed while that writer may still be in it.
bool Session::drain(int index) {
  SampleBuffer& b = sigsafe::sampleBuffer(index);
  const uint64_t give_up = nowNs() + kWriterWaitNs;
  for (int spins = 0; b.writers.load(std::memory_order_acquire) != 0; ++spins) {
    if (nowNs() > give_up) {
      stuck_[index] = true;
      notes_.push_back("a thread stopped inside the sampling handler; its samples since the last collection "
                       "are lost");
      return false;
    }
    if (spins > 100) {
      timespec pause{0, 20000};
      nanosleep(&pause, nullptr);
    }
  }
  if (b.data == nullptr) return true;
  const uint64_t used = b.used.load(std::memory_order_relaxed);
  const uint64_t end = std::min(used, b.capacity);
  uint64_t offset = 0;
  while (offset + sizeof(SampleRecord) <= end) {
    SampleRecord record;
    std::memcpy(&record, b.data + offset, sizeof record);
    if (record.size == sigsafe::kEndOfRecords || record.size < sizeof record || offset + record.size > end) break;
    std::vector<uint64_t> pcs(record.frame_count);
    std::memcpy(pcs.data(), b.data + offset + sizeof record, pcs.size() * sizeof(uint64_t));
    if (wall_)
      answer(record, pcs.data());
    else
      addSample(record.tid, record.weight, "", pcs.data(), pcs.size());
    offset += record.size;
  }
  b.used.store(0, std::memory_order_relaxed);
  // Overflowed: the next blocks get twice the room (this one is resized when it is next made active).
  if (used > b.capacity && capacity_ < kMaxBufferBytes) capacity_ = std::min(capacity_ * 2, kMaxBufferBytes);
  return true;
}

void Session::track(pid_t tid) {
  Tracked t;
  t.name = tasks_.line(tid, "comm");
  if (!wall_) {
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = c_.signo;
    ev.sigev_value.sival_ptr = reinterpret_cast<void*>(sigsafe::sampleValue(c_.generation, 0));
    ev._sigev_un._tid = tid;  // glibc 2.36 has no sigev_notify_thread_id macro
    if (timer_create(threadCpuClock(tid), &ev, &t.timer) == 0) {
      t.has_timer = true;
      itimerspec its{};
      its.it_interval.tv_sec = static_cast<time_t>(period_ns_ / 1000000000ull);
      its.it_interval.tv_nsec = static_cast<long>(period_ns_ % 1000000000ull);
      its.it_value = its.it_interval;
      timer_settime(t.timer, 0, &its, nullptr);
    } else if (errno != EINVAL && errno != ESRCH) {
      // EINVAL/ESRCH: the thread ended between the listing and now. Anything else (EAGAIN: out of timers or of
      // the pending-signal limit) leaves a live thread unsampled, which the reply must say.
      ++timer_failures_;
      timer_errno_ = errno;
    }
  }
  threads_.emplace(tid, std::move(t));
}

void Session::untrack(pid_t, Tracked& t) {
  // timer_delete also discards the timer's signal if it is still pending (Linux frees its queued sigqueue).
  if (t.has_timer) timer_delete(t.timer);
  t.has_timer = false;
  t.alive = false;
}

// The kernel's count of this process's threads, or -1.
long liveThreadCount() {
  char status[4096];
  if (readFileAt(AT_FDCWD, "/proc/self/status", status, sizeof status) == 0) return -1;
  const char* field = std::strstr(status, "\nThreads:");
  return field != nullptr ? std::strtol(field + std::strlen("\nThreads:"), nullptr, 10) : -1;
}

void Session::scanIfChanged(uint64_t now) {
  // Both counts are read before the list: a thread started meanwhile moves them again, for the next time.
  const bool created_seen = metrics::threadCreationVisible();
  const uint64_t created = created_seen ? metrics::threadsCreated() : 0;
  const long live = created_seen ? liveThreadCount() : -1;
  if (created_seen && live >= 0 && created == listed_created_ && live == listed_live_ && now < next_full_scan_)
    return;
  listed_created_ = created;
  listed_live_ = live;
  next_full_scan_ = now + kFullRescanNs;
  scan();
}

void Session::scan() {
  std::vector<pid_t> tids = tasks_.threads();
  std::sort(tids.begin(), tids.end());
  for (auto& [tid, t] : threads_)
    if (t.alive && !std::binary_search(tids.begin(), tids.end(), tid)) untrack(tid, t);
  for (pid_t tid : tids) {
    if (tid == self_ || tid == c_.control_tid || isOwnThread(tid)) continue;
    auto it = threads_.find(tid);
    if (it == threads_.end()) {
      track(tid);
    } else if (!it->second.alive) {
      // A new thread with the tid of one that ended.
      threads_.erase(it);
      track(tid);
    }
  }
}

// Returns the sample's index in samples_, which stands until the reply is encoded.
size_t Session::addSample(pid_t tid, uint64_t weight, const std::string& line, const uint64_t* pcs, size_t frames) {
  // Identical samples (same thread, same kernel facts, same pcs) are merged here: nothing is interpreted, and a
  // hot loop sampled a thousand times travels once.
  std::string key(reinterpret_cast<const char*>(&tid), sizeof tid);
  key.append(line).push_back('\0');
  if (frames > 0) key.append(reinterpret_cast<const char*>(pcs), frames * sizeof(uint64_t));
  auto [it, inserted] = index_.emplace(std::move(key), samples_.size());
  if (inserted) {
    protocol::ProfileSample s;
    s.tid = static_cast<uint32_t>(tid);
    s.syscall_line = line;
    if (frames > 0) s.pcs.assign(pcs, pcs + frames);
    samples_.push_back(std::move(s));
  }
  samples_[it->second].weight += weight;
  return it->second;
}

// Wall mode: a thread answered the request with `tag`; the sample gets the kernel facts read when it was sent.
void Session::answer(const SampleRecord& record, const uint64_t* pcs) {
  auto p = pending_.find(record.tag);
  if (p == pending_.end() || p->second.tid != record.tid) return;  // not a request of this profile
  const size_t sample = addSample(p->second.tid, p->second.weight, p->second.line, pcs, record.frame_count);
  auto t = threads_.find(p->second.tid);
  if (t != threads_.end()) {
    t->second.outstanding = false;
    t->second.last_sample = sample;
    t->second.stack_cpu_ns = -1;
  }
  pending_.erase(p);
}

// Wall mode: one sample of every thread. A thread whose stack was read where it sleeps, and whose CPU time has not
// moved since, is still there: that stack and its kernel facts stand, at the cost of one system call. One that ran
// is read again, though it may be back in the same wait with the same kernel facts (same system call, arguments,
// stack pointer and pc): it may have come there along another chain of calls. Where its stack cannot be read so,
// the last one stands while the kernel facts do: a blocked thread is signalled once per wait, not at the rate.
// `weight`: the periods since the previous tick (more than 1 when this thread woke up late).
void Session::tick(uint64_t weight) {
  rotate();  // the answers to the previous tick's requests
  for (auto& [tid, t] : threads_) {
    if (!t.alive) continue;
    long long arrivals = -1;  // read before the syscall line
    if (!t.outstanding && t.stack_cpu_ns >= 0) {
      if (threadCpuNs(tid) == t.stack_cpu_ns) {
        samples_[t.last_sample].weight += weight;
        continue;
      }
      arrivals = arrivalCount(tasks_, tid);
    }
    std::string line = tasks_.line(tid, "syscall");
    if (line.empty()) continue;  // ended since the last scan
    const bool blocked = line != "running";
    const bool same_wait = blocked && t.last_sample != kNoSample && line == samples_[t.last_sample].syscall_line;
    if (t.outstanding) {
      // Still owes an answer (not scheduled yet, blocks the signal, or in D state): never queue a second signal,
      // which would pile up against the pending-signal limit. If it is still where it was asked, its answer
      // stands for this tick too; if it has moved on, this tick has its kernel facts but no stack.
      auto p = pending_.find(t.outstanding_tag);
      if (p != pending_.end() && p->second.line == line)
        p->second.weight += weight;
      else if (same_wait)
        samples_[t.last_sample].weight += weight;
      else
        addSample(tid, weight, line, nullptr, 0);
      continue;
    }
    t.stack_cpu_ns = -1;
    if (same_wait && line == t.unreadable_line) {
      samples_[t.last_sample].weight += weight;
      continue;
    }
    // Read where the thread sleeps if it can be, so that it is not interrupted at all.
    if (blocked) {
      uint64_t pcs[sigsafe::kMaxFrames];
      const AsleepStacks::Read read = asleep_->read(tasks_, tid, line, pcs, sigsafe::kMaxFrames, arrivals);
      if (read.frames > 0) {
        t.last_sample = addSample(tid, weight, line, pcs, read.frames);
        t.stack_cpu_ns = read.cpu_ns;
        continue;
      }
      if (!read.ran) t.unreadable_line = line;
      if (same_wait) {
        samples_[t.last_sample].weight += weight;
        continue;
      }
    }
    const uint32_t tag = next_tag_;
    next_tag_ = (next_tag_ + 1) & ((1u << sigsafe::kTagBits) - 1);
    if (next_tag_ == 0) next_tag_ = 1;
    if (queueSignal(tid, c_.signo, sigsafe::sampleValue(c_.generation, tag)) != 0) {
      if (errno == EAGAIN) ++dropped_;  // the pending-signal limit: counted, not retried
      continue;
    }
    t.outstanding = true;
    t.outstanding_tag = tag;
    pending_[tag] = Pending{tid, std::move(line), weight};
  }
}

void Session::finish() {
  for (auto& [tid, t] : threads_) untrack(tid, t);
  if (wall_) {
    // Threads that were running at the last tick answer within microseconds; give them a moment.
    const uint64_t until = nowNs() + std::min(period_ns_, kFinalAnswersNs);
    for (;;) {
      rotate();
      if (pending_.empty() || nowNs() >= until) break;
      timespec pause{0, 1000000};
      nanosleep(&pause, nullptr);
    }
  }
  sigsafe::stopSampling();
  for (int i = 0; i < kSampleBuffers; ++i) {
    SampleBuffer& b = sigsafe::sampleBuffer(i);
    if (b.data == nullptr || stuck_[i]) continue;
    if (!drain(i)) continue;  // leaked on purpose: a writer may still be inside
    delete[] reinterpret_cast<uint64_t*>(b.data);
    b.data = nullptr;
    b.capacity = 0;
  }
  // Requests never answered: the thread was sampled (its kernel facts were read) but gave no stack.
  for (auto& [tag, p] : pending_) addSample(p.tid, p.weight, p.line, nullptr, 0);
  pending_.clear();
  dropped_ += sigsafe::droppedSamples();
}

std::vector<uint8_t> Session::encodeReply(uint64_t duration_ns) {
  protocol::ProfileReply reply;
  reply.duration_ns = duration_ns;
  reply.period_ns = period_ns_;
  reply.dropped = dropped_;
  reply.notes = std::move(notes_);
  if (timer_failures_ > 0)
    reply.notes.push_back("no CPU timer could be created for " + std::to_string(timer_failures_) + " thread(s) (" +
                          std::strerror(timer_errno_) + "); they are missing from the profile");
  if (late_periods_ > ticks_ / 10)
    reply.notes.push_back("the profile thread could sample only " + std::to_string(ticks_) + " times instead of " +
                          std::to_string(ticks_ + late_periods_) +
                          " (a busy machine, or many threads for the rate); each sample stands for the time since "
                          "the previous one");
  // The largest samples first, so that a profile too large for one reply loses only its smallest samples.
  std::sort(samples_.begin(), samples_.end(),
            [](const protocol::ProfileSample& a, const protocol::ProfileSample& b) { return a.weight > b.weight; });
  size_t bytes = 0;
  size_t keep = 0;
  for (; keep < samples_.size(); ++keep) {
    bytes += 4 + 8 + 4 + samples_[keep].syscall_line.size() + 4 + 8 * samples_[keep].pcs.size();
    if (bytes > kReplyBudget) break;
  }
  if (keep < samples_.size()) {
    uint64_t lost = 0;
    for (size_t i = keep; i < samples_.size(); ++i) lost += samples_[i].weight;
    reply.dropped += lost;
    reply.notes.push_back("the profile was too large for one reply: its " + std::to_string(samples_.size() - keep) +
                          " smallest distinct stacks were dropped");
    samples_.resize(keep);
  }
  std::vector<pid_t> sampled;
  for (const auto& s : samples_) sampled.push_back(static_cast<pid_t>(s.tid));
  std::sort(sampled.begin(), sampled.end());
  sampled.erase(std::unique(sampled.begin(), sampled.end()), sampled.end());
  // A thread that names itself as it starts may have been listed before it did, under the name it inherited (the
  // process's): such a name is read again while the thread lives.
  const std::string inherited = tasks_.line(static_cast<pid_t>(getpid()), "comm");
  for (pid_t tid : sampled) {
    protocol::ProfileThread t;
    t.tid = static_cast<uint32_t>(tid);
    if (auto it = threads_.find(tid); it != threads_.end()) {
      t.name = it->second.name;
      if (it->second.alive && t.name == inherited)
        if (std::string now = tasks_.line(tid, "comm"); !now.empty()) t.name = std::move(now);
    }
    reply.threads.push_back(std::move(t));
  }
  reply.samples = std::move(samples_);
  wire::Writer w;
  reply.encode(w);
  return w.take();
}

void Session::run() {
  self_ = currentTid();
  wall_ = c_.request.mode == protocol::kProfileWall;
  if (wall_) asleep_ = std::make_unique<AsleepStacks>();
  period_ns_ = 1000000000ull / c_.request.rate_hz;
  const uint64_t start = nowNs();
  const uint64_t end = start + static_cast<uint64_t>(c_.request.duration_ms) * kMsNs;

  // In cpu mode a thread is sampled only while it runs, so at most one sample per CPU per period; in wall mode
  // every thread once per tick, collected every tick.
  const uint64_t cpus = static_cast<uint64_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  const uint64_t threads = tasks_.threads().size();
  const uint64_t expected = wall_ ? threads : cpus * std::max<uint64_t>(1, kRescanNs / period_ns_);
  if (!setUpBuffers(expected)) {
    replyError(c_.fd, protocol::Status::kInternal, "the agent could not allocate its sample buffers",
               c_.reply_timeout_ms);
    c_.fd = -1;
    return;
  }

  bool client_gone = false;
  bool stopped = false;
  uint64_t next_scan = start;
  uint64_t next_collect = start + kRescanNs;
  uint64_t next_tick = start;
  for (;;) {
    uint64_t now = nowNs();
    if (now >= next_scan) {
      scanIfChanged(now);
      next_scan = now + kRescanNs;
    }
    if (wall_ && now >= next_tick && now < end) {
      // Woken late (a busy machine, many threads): the periods missed are given to this tick's samples, so
      // that the profile still adds up to its wall-clock time.
      const uint64_t periods = 1 + (now - next_tick) / period_ns_;
      tick(periods);
      ++ticks_;
      late_periods_ += periods - 1;
      next_tick += periods * period_ns_;
    }
    if (!wall_ && now >= next_collect) {
      rotate();
      next_collect = now + kRescanNs;
    }
    now = nowNs();
    if (now >= end) break;
    uint64_t wake = std::min({end, next_scan, wall_ ? next_tick : next_collect});
    // The client's connection is watched for hang-up only (events 0: POLLHUP and POLLERR are always reported);
    // anything it sends meanwhile stays unread.
    pollfd fds[2] = {{c_.fd, 0, 0}, {c_.stop_fd, POLLIN, 0}};
    const uint64_t wait = wake > now ? wake - now : 0;
    timespec timeout{static_cast<time_t>(wait / 1000000000ull), static_cast<long>(wait % 1000000000ull)};
    int ready = ::ppoll(fds, 2, &timeout, nullptr);
    if (ready > 0 && (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
      client_gone = true;
      break;
    }
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
      stopped = true;
      break;
    }
  }
  // The profile covers the time the timers were armed; tearing them down and draining the buffers is not part
  // of it, however long a loaded machine makes that.
  const uint64_t sampled_ns = nowNs() - start;
  finish();
  if (client_gone) return;  // nobody to answer; the destructor closes nothing else
  if (stopped) notes_.push_back("the agent was stopped before the profile's duration was over");
  std::vector<uint8_t> payload = encodeReply(sampled_ns);
  sendFrame(c_.fd, protocol::Status::kOk, payload,
            nowNs() + static_cast<uint64_t>(c_.reply_timeout_ms) * kMsNs);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

namespace {

struct ProfilerState {
  std::mutex mu;
  pthread_t thread{};
  bool has_thread = false;  // not joined yet
  bool running = false;
  int signo = 0;
  int stack_signo = 0;
  long reply_timeout_ms = 5000;
  int stop_fd = -1;
  uint32_t generation = 0;
  bool handler_ready = false;
  int handler_error = 0;
  // The running profile, for busyReason().
  protocol::ProfileRequest request;
  pid_t requester = 0;
  uint64_t ends_ns = 0;
};

ProfilerState& profilerState() {
  static ProfilerState* s = new ProfilerState;  // leaked: the profile thread may outlive static destruction
  return *s;
}

void* profileThread(void* arg) {
  pthread_setname_np(pthread_self(), "cppops-profile");
  noteOwnThread();
  auto* session = static_cast<Session*>(arg);
  session->run();
  delete session;
  forgetOwnThread();
  ProfilerState& s = profilerState();
  std::lock_guard<std::mutex> lock(s.mu);
  s.running = false;
  return nullptr;
}

}  // namespace

Profiler& profiler() {
  static Profiler* p = new Profiler;
  return *p;
}

void Profiler::configure(int signo, int stack_signo, long reply_timeout_ms) {
  ProfilerState& s = profilerState();
  std::lock_guard<std::mutex> lock(s.mu);
  s.signo = signo;
  s.stack_signo = stack_signo;
  s.reply_timeout_ms = reply_timeout_ms;
}

std::string Profiler::busyReason() {
  ProfilerState& s = profilerState();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.running) return "";
  const uint64_t now = nowNs();
  return std::string("a ") + modeName(s.request.mode) + " profile at " + std::to_string(s.request.rate_hz) +
         " Hz is already running in this process (started by pid " + std::to_string(s.requester) + ", ends in " +
         seconds(s.ends_ns > now ? s.ends_ns - now : 0) + "); only one profile runs at a time: retry after it ends";
}

void Profiler::start(int fd, const protocol::ProfileRequest& request, pid_t requester) {
  ProfilerState& s = profilerState();
  std::unique_lock<std::mutex> lock(s.mu);
  const long reply_timeout_ms = s.reply_timeout_ms;
  if (s.has_thread && !s.running) {
    pthread_join(s.thread, nullptr);  // the previous profile's thread, which has finished
    s.has_thread = false;
  }
  if (s.signo == s.stack_signo) {
    const int signo = s.signo;
    lock.unlock();
    replyError(fd, protocol::Status::kInternal,
               "the profile signal " + std::to_string(signo) +
                   " is also the stack signal; set CPPOPS_PROFILE_SIGNAL to another free real-time signal",
               reply_timeout_ms);
    return;
  }
  if (!s.handler_ready) {
    sigsafe::warmUp();  // normally done already by the stack capture; cheap, and the handler depends on it
    s.handler_error = sigsafe::installSampler(s.signo);
    s.handler_ready = s.handler_error == 0;
  }
  if (!s.handler_ready || !sigsafe::samplerIsOurs(s.signo)) {
    const std::string why = !s.handler_ready ? std::strerror(s.handler_error) : "the program replaced its handler";
    const int signo = s.signo;
    lock.unlock();
    replyError(fd, protocol::Status::kInternal,
               "the agent cannot sample with signal " + std::to_string(signo) + " (" + why +
                   "); set CPPOPS_PROFILE_SIGNAL to a free real-time signal",
               reply_timeout_ms);
    return;
  }
  if (s.stop_fd < 0) s.stop_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  uint64_t stale = 0;
  while (s.stop_fd >= 0 && ::read(s.stop_fd, &stale, sizeof stale) > 0) {
  }

  SessionConfig config;
  config.fd = fd;
  config.request = request;
  config.control_tid = currentTid();
  config.signo = s.signo;
  config.generation = ++s.generation;
  config.stop_fd = s.stop_fd;
  config.reply_timeout_ms = reply_timeout_ms;
  auto* session = new Session(std::move(config));

  s.running = true;
  s.request = request;
  s.requester = requester;
  s.ends_ns = nowNs() + static_cast<uint64_t>(request.duration_ms) * kMsNs;
  // Created from the control thread, the profile thread inherits its mask, which blocks every signal: the host's
  // signals are never delivered to it.
  int err = pthread_create(&s.thread, nullptr, profileThread, session);
  if (err != 0) {
    s.running = false;
    lock.unlock();
    const int own_fd = session->releaseFd();
    delete session;
    replyError(own_fd, protocol::Status::kInternal,
               std::string("the agent could not start its profile thread: ") + std::strerror(err), reply_timeout_ms);
    return;
  }
  s.has_thread = true;
}

void Profiler::stop() {
  ProfilerState& s = profilerState();
  std::unique_lock<std::mutex> lock(s.mu);
  if (!s.has_thread) return;
  if (s.running && s.stop_fd >= 0) {
    uint64_t one = 1;
    ssize_t ignored = ::write(s.stop_fd, &one, sizeof one);
    (void)ignored;
  }
  const pthread_t thread = s.thread;
  s.has_thread = false;
  lock.unlock();
  pthread_join(thread, nullptr);
}

void Profiler::forgetAfterFork() {
  ProfilerState& s = profilerState();
  new (&s.mu) std::mutex;  // the parent's lock state means nothing here
  s.has_thread = false;
  s.running = false;
  sigsafe::stopSampling();
}

}  // namespace cppops::agent
