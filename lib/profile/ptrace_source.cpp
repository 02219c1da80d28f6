#include "profile/ptrace_source.h"

#include <fmt/format.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/deferred_signals.h"
#include "proc/process.h"
#include "proc/ptrace_access.h"
#include "proc/task.h"
#include "profile/wall_state.h"
#include "stack/thread_reader.h"
#include "stack/thread_stop.h"

namespace cppops::profile {

namespace {

using Clock = std::chrono::steady_clock;

// How long a thread may take to stop before its sample is dropped: one that has not stopped by then waits behind
// busy CPUs, or is in uninterruptible sleep.
constexpr std::chrono::milliseconds kStopLimit{100};

// How often the threads of the process are listed: a thread is sampled from at most this long after it starts.
constexpr std::chrono::milliseconds kRelist{100};

// CPU mode: a thread's run time when the sampler last saw it running.
struct CpuClock {
  uint64_t ran_ns = 0;
  uint64_t carry_ns = 0;  // run time short of a whole period, carried to the next sample
  uint64_t tick = 0;      // the tick it was read at
};

// One thread as the sampler last read it.
struct Seen {
  std::string syscall_line;  // when `pcs` was read
  std::vector<uint64_t> pcs;
  bool asleep = false;  // `pcs` stand for the wait that syscall_line names
  size_t sample = 0;    // the sample they were recorded in (RawProfile::samples), for later ticks to add to
  // When `pcs` were read where the thread sleeps: how often it had been given a CPU then. While that stands, it has
  // not run since, and `pcs` and `syscall_line` stand too.
  std::optional<uint64_t> arrivals;
  // The syscall line at which the thread's stack could not be read where it sleeps, whether it ran or not: a
  // frame there needs a register the kernel does not report.
  std::string unreadable_line;
};

// The sampling loop, run on threads of its own (ptrace ties a stopped thread to the thread that stopped it, and
// the kernel lets it go if that thread ends). It stops at a held signal, and carries on after it.
class Sampler {
 public:
  Sampler(pid_t pid, const CaptureOptions& options)
      : pid_(pid), options_(options), period_(std::chrono::nanoseconds(1000000000ull / options.rate_hz)) {
    raw_.pid = pid;
    raw_.mode = options.mode;
    raw_.period_ns = static_cast<uint64_t>(period_.count());
  }

  bool done() const { return failure_ || done_; }
  // The syscall line of each sample, in the order of the samples: their states are named once the symbolizer is
  // at hand, after the profile.
  const std::vector<std::string>& lines() const { return lines_; }
  const std::optional<Error>& failure() const { return failure_; }

  RawProfile finish(std::vector<std::string>& notes) {
    raw_.duration_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 (ended_ ? *ended_ : Clock::now()) - start_)
                                                 .count());
    if (ended_) notes.push_back("the process exited while it was profiled");
    std::string stops = fmt::format("{} thread stops", pauses_ns_.size());
    if (!pauses_ns_.empty()) {
      auto median = pauses_ns_.begin() + static_cast<std::ptrdiff_t>(pauses_ns_.size() / 2);
      std::nth_element(pauses_ns_.begin(), median, pauses_ns_.end());
      stops += fmt::format(" (median {} us, longest {} us)", *median / 1000,
                           *std::max_element(pauses_ns_.begin(), pauses_ns_.end()) / 1000);
    }
    if (options_.mode == Mode::kWall) stops += fmt::format(", {} waits read where they slept", read_asleep_);
    notes.push_back("taken through ptrace: " + stops);
    return std::move(raw_);
  }

  // Samples until the duration is over, a held signal is pending, or a thread did not stop in time. Runs on a
  // thread made for it (stack::readWithSignalsHeld), again until done().
  void run() {
    pthread_setname_np(pthread_self(), "cppops-profile");
    auto reader = stack::ThreadReader::create(pid_, true);
    if (!reader) {
      failure_ = reader.error();
      return;
    }
    if (!started_) {
      started_ = true;
      start_ = Clock::now();
      next_ = start_;
    }
    const Clock::time_point end = start_ + options_.duration;
    while (!DeferredSignals::pending()) {
      next_ += period_;
      if (next_ > end) {
        done_ = true;
        return;
      }
      std::this_thread::sleep_until(next_);
      // A tick that comes late (a busy machine, a slow stop) stands for the periods it missed.
      const auto late = Clock::now() - next_;
      const uint64_t missed = late > period_ ? static_cast<uint64_t>(late / period_) : 0;
      next_ += missed * period_;
      // Listed again every kRelist, as the agent's sampler does: a listing of a thousand threads costs more than
      // reading whether each one ran. A thread that has ended meanwhile reads as gone and is passed over.
      if (Clock::now() >= next_listing_) {
        tids_ = proc::listTasks(pid_);
        next_listing_ = Clock::now() + kRelist;
      }
      if (tids_.empty()) {
        ended_ = Clock::now();
        done_ = true;
        return;
      }
      ++tick_;
      for (pid_t tid : tids_)
        if (sample(**reader, tid, 1 + missed) == Next::kRelease) return;
    }
  }

 private:
  enum class Next {
    kGoOn,
    // A thread did not stop in time: it stays attached and will stop when it gets there, to be let go only when
    // the sampling thread ends. So it ends now, and sampling carries on from a new one.
    kRelease,
  };

  // Wall mode: a thread whose stack was read where it sleeps, and that has not been given a CPU since, is still
  // there, and nothing else is read. One that ran is read again, though it may be back in the same wait with the
  // same syscall line (same call, arguments, stack pointer and pc): it may have come there along another chain of
  // calls. Where its stack cannot be read so, the last one stands while the syscall line does: a blocked thread is
  // stopped once per wait, not at the rate.
  Next sample(stack::ThreadReader& reader, pid_t tid, uint64_t weight) {
    std::optional<proc::RunCount> runs;  // read before the syscall line
    if (auto known = seen_.find(tid); options_.mode == Mode::kWall && known != seen_.end() && known->second.arrivals) {
      Seen& seen = known->second;
      if (Result<proc::RunCount> now = run_counter_.read(tid); now && now->arrivals) {
        if (now->count == *seen.arrivals) {
          raw_.samples[seen.sample].weight += weight;
          return Next::kGoOn;
        }
        runs = *now;
      }
    }
    std::string line = stack::readSyscallLine(pid_, tid);
    if (line.empty()) return Next::kGoOn;  // ended since the listing
    // "-1 sp pc": off the CPU outside a system call (a page fault, a stop): not running, but not in a wait either.
    const proc::SyscallInfo::Kind kind = proc::parseSyscall(line).kind;
    const bool running = kind == proc::SyscallInfo::Kind::kRunning;
    if (options_.mode == Mode::kCpu) {
      if (!running) return Next::kGoOn;
      weight = cpuPeriods(tid, weight);
      if (weight == 0) return Next::kGoOn;
    }
    Seen& seen = seen_[tid];
    nameThread(tid);
    const bool same_wait = !running && seen.asleep && line == seen.syscall_line;
    seen.arrivals.reset();
    if (same_wait && line == seen.unreadable_line) {
      raw_.samples[seen.sample].weight += weight;
      return Next::kGoOn;
    }
    std::vector<uint64_t> pcs;
    if (!running) {
      stack::ThreadReader::Asleep asleep = reader.readAsleep(tid, line, runs);
      if (!asleep.pcs.empty()) {
        ++read_asleep_;
        seen.arrivals = asleep.arrivals;
      } else if (!asleep.ran) {
        seen.unreadable_line = line;
      }
      pcs = std::move(asleep.pcs);
    }
    if (pcs.empty() && same_wait) {
      raw_.samples[seen.sample].weight += weight;
      return Next::kGoOn;
    }
    if (pcs.empty()) {
      // It would not stop until the kernel lets go of it.
      if (Result<proc::TaskStat> stat = proc::readTaskStat(pid_, tid); !running && stat && stat->state == 'D') {
        raw_.dropped += weight;
        return Next::kGoOn;
      }
      stack::ThreadReader::Stopped stopped = reader.readStopped(tid, kStopLimit);
      if (stopped.outcome == stack::ThreadStop::Outcome::kDenied && pauses_ns_.empty()) {
        failure_ = proc::explainPtraceDenied(proc::readPtraceFacts(pid_), stopped.error, "profile");
        return Next::kRelease;
      }
      if (stopped.outcome != stack::ThreadStop::Outcome::kStopped || stopped.copy_error || stopped.pcs.empty()) {
        raw_.dropped += weight;
        return stopped.outcome == stack::ThreadStop::Outcome::kTimedOut ? Next::kRelease : Next::kGoOn;
      }
      pauses_ns_.push_back(stopped.pause_ns);
      pcs = std::move(stopped.pcs);
    }
    seen.syscall_line = line;
    seen.pcs = pcs;
    seen.asleep = !running;
    seen.sample = record(tid, std::move(pcs), line, weight);
    return Next::kGoOn;
  }

  // CPU mode: the periods of CPU time a running thread used since the last tick, as the agent's CPU-time timers
  // count them (the rest carries over), so that a thread that waits for a CPU, and so stays where it is, is not
  // sampled again and again. A thread that was not running at the last tick counts one period; where the kernel
  // does not account run time, every thread seen running counts `weight`.
  uint64_t cpuPeriods(pid_t tid, uint64_t weight) {
    Result<uint64_t> ran = proc::readRunTimeNs(pid_, tid);
    if (!ran) return weight;
    auto [at, first] = cpu_.try_emplace(tid);
    CpuClock& clock = at->second;
    const bool running_before = !first && clock.tick + 1 == tick_ && *ran >= clock.ran_ns;
    uint64_t periods = 1;
    if (running_before) {
      const uint64_t owed = clock.carry_ns + (*ran - clock.ran_ns);
      const auto period = static_cast<uint64_t>(period_.count());
      periods = owed / period;
      clock.carry_ns = owed % period;
    } else {
      clock.carry_ns = 0;
    }
    clock.ran_ns = *ran;
    clock.tick = tick_;
    return periods;
  }

  // Returns the sample's index.
  size_t record(pid_t tid, std::vector<uint64_t> pcs, const std::string& line, uint64_t weight) {
    RawSample sample;
    sample.tid = tid;
    sample.pcs = std::move(pcs);
    sample.weight = weight;
    raw_.samples.push_back(std::move(sample));
    lines_.push_back(line);
    return raw_.samples.size() - 1;
  }

  void nameThread(pid_t tid) {
    if (!named_.insert(tid).second) return;
    if (auto stat = proc::readTaskStat(pid_, tid)) raw_.thread_names.emplace_back(tid, stat->name);
  }

  pid_t pid_;
  proc::RunCounter run_counter_{pid_};
  const CaptureOptions& options_;
  const std::chrono::nanoseconds period_;
  RawProfile raw_;
  std::vector<std::string> lines_;
  std::map<pid_t, Seen> seen_;
  std::map<pid_t, CpuClock> cpu_;
  uint64_t tick_ = 0;
  std::vector<pid_t> tids_;  // the process's threads, as last listed
  Clock::time_point next_listing_{};
  std::set<pid_t> named_;
  bool started_ = false;
  bool done_ = false;
  Clock::time_point start_{};
  Clock::time_point next_{};
  std::optional<Clock::time_point> ended_;
  std::vector<uint64_t> pauses_ns_;  // each stop's length
  uint64_t read_asleep_ = 0;
  std::optional<Error> failure_;
};

}  // namespace

Result<Capture> profileThroughPtrace(pid_t pid, const CaptureOptions& options) {
  if (Status access = stack::checkPtraceTarget(pid, "profile", "profile itself"); !access) return access.error();

  // The sampler keeps every thread's schedstat open (proc::RunCounter): as many files as the hard limit allows.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  Sampler sampler(pid, options);
  // A thread that did not stop in time ends a round too, and the next one carries on.
  stack::readWithSignalsHeld([&] { sampler.run(); }, [&] { return sampler.done(); });
  if (sampler.failure()) return *sampler.failure();

  Capture capture;
  capture.source = "ptrace";
  capture.raw = sampler.finish(capture.notes);
  auto symbolizer = Symbolizer::forProcess(pid);
  if (symbolizer)
    capture.symbolizer = std::move(*symbolizer);
  else
    capture.notes.push_back("frames are not symbolized: " + symbolizer.error().message);
  if (options.mode == Mode::kWall)
    for (size_t i = 0; i < capture.raw.samples.size(); ++i)
      capture.raw.samples[i].state =
          wallState(sampler.lines()[i], capture.raw.samples[i].pcs, capture.symbolizer.get());
  return capture;
}

}  // namespace cppops::profile
