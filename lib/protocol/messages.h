// Reply payloads of the cppops protocol. Each message has encode() and a decode() that returns false on a
// truncated or inconsistent payload; fields are appended, never reordered (see cppops-protocol(7)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/wire.h"

namespace cppops::protocol {

struct HelloReply {
  std::string agent_version;
  uint16_t protocol_version = 0;
  // As the agent sees itself; inside a PID namespace this differs from the PID the host CLI used.
  uint32_t pid = 0;
  // Process start time in clock ticks since boot (/proc/PID/stat field 22): with the PID, it names exactly one
  // process, so a client can tell a reused PID from the process it meant to reach.
  uint64_t start_ticks = 0;
  std::vector<std::string> capabilities;  // command names, see commandName()

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// Raw kernel figures for the whole process; the CLI turns ticks into seconds and start time into uptime.
struct StatsReply {
  uint32_t threads = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t clock_ticks_per_second = 0;
  uint64_t rss_bytes = 0;
  uint32_t open_fds = 0;
  uint64_t voluntary_switches = 0;
  uint64_t involuntary_switches = 0;
  uint64_t start_ticks = 0;
  uint64_t boottime_ns = 0;  // CLOCK_BOOTTIME when the figures were read: uptime = boottime - start

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct VersionReply {
  std::string agent_version;
  uint16_t protocol_version = 0;
  std::string executable;  // /proc/self/exe as the agent resolves it (its own mount namespace)
  std::string build_id;    // hex GNU build-id of the main executable, "" when it has none
  std::string load_mode;   // "preload" (LD_PRELOAD) or "linked" (cppops_agent_start)

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct StackRequest {
  uint32_t timeout_ms = 1000;  // how long the agent waits for threads to unwind themselves
  uint8_t use_signals = 1;     // 0: kernel facts only, no signal sent to any thread

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// One thread's raw facts. `status` is stack::CaptureStatus as a number: 0 captured, 1 no answer, 2 exited,
// 3 not requested.
struct StackThread {
  uint32_t tid = 0;
  uint8_t status = 0;
  uint64_t handler_ns = 0;
  std::string syscall_line;          // /proc/self/task/TID/syscall, read before the thread was signalled
  uint64_t lock_window_address = 0;  // where lock_window starts in the target
  std::string lock_window;           // bytes around the futex address the thread sleeps on
  std::vector<uint64_t> pcs;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct StackReply {
  uint64_t total_ns = 0;        // the whole capture inside the agent
  uint64_t max_handler_ns = 0;  // longest time one thread spent in the capture handler
  uint32_t agent_tid = 0;       // the control thread, which is not in `threads`
  uint32_t signal = 0;          // the signal used, 0 when none was sent
  std::vector<std::string> notes;
  std::vector<StackThread> threads;
  // Each thread's name as the thread read it itself in the handler ("" when it did not answer). It comes after
  // `threads`, where older decoders stop reading; empty from an agent that predates it.
  std::vector<std::string> thread_names;
  // How many threads were read where they slept, without the signal (their handler_ns is 0); 0 from an agent
  // that predates it.
  uint32_t read_asleep = 0;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// Addresses the CLI could not name because it cannot read the binaries (another mount namespace without
// access, a deleted file and no CAP_SYS_ADMIN for /proc/PID/map_files). The agent answers from its own dynamic
// symbol tables (dladdr), which need no file access.
struct SymbolsRequest {
  std::vector<uint64_t> addresses;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct AgentSymbol {
  std::string module;     // "" when the address is in no loaded object
  std::string name;       // mangled, as dladdr reports it; "" when no dynamic symbol covers the address
  uint64_t offset = 0;    // address - symbol start (or - module base when name is empty)
};

struct SymbolsReply {
  std::vector<AgentSymbol> symbols;  // one per requested address, same order

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// PROFILE: sample every thread's stack for a while. mode: kProfileCpu (each thread's CPU-time timer: samples
// where threads burn CPU) or kProfileWall (every thread at the rate, whatever it does, with its kernel facts).
enum ProfileMode : uint8_t { kProfileCpu = 0, kProfileWall = 1 };

struct ProfileRequest {
  uint32_t duration_ms = 10000;  // 1 to 3600000
  uint32_t rate_hz = 100;        // 1 to 10000
  uint8_t mode = kProfileCpu;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct ProfileLabel {
  std::string key;
  std::string value;
};

// A thread that appears in the samples. `labels` is empty today; it is where per-thread facts the agent learns
// later (request ids and the like) will travel, without a new message.
struct ProfileThread {
  uint32_t tid = 0;
  std::string name;  // /proc/self/task/TID/comm when the thread was first seen
  std::vector<ProfileLabel> labels;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// One distinct stack of one thread. Identical samples (same tid, syscall_line and pcs) are merged by the agent and
// their weights added.
struct ProfileSample {
  uint32_t tid = 0;
  uint64_t weight = 0;        // sampling periods this stands for (cpu mode: 1 + timer overruns per delivery)
  std::string syscall_line;   // wall mode: /proc/self/task/TID/syscall when the sample was taken; "" in cpu mode
  std::vector<uint64_t> pcs;  // innermost first, pcs[0] the interrupted pc; empty when the thread never answered

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct ProfileReply {
  uint64_t duration_ns = 0;  // how long the agent sampled
  uint64_t period_ns = 0;    // 1e9 / rate: the time one unit of weight stands for
  uint64_t dropped = 0;      // samples (by weight) lost: buffers full, signal queue full, reply too large
  std::vector<ProfileThread> threads;
  std::vector<ProfileSample> samples;
  std::vector<std::string> notes;  // remarks for a person (threads without a timer, skipped ticks, ...)

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// METRICS: what a dashboard plots. The agent sends raw figures; the CLI classifies the threads (with the stack
// analysis, from the same kernel facts as `cppops stack --no-signal`) and writes the Prometheus exposition.
enum MetricKind : uint8_t { kMetricCounter = 0, kMetricGauge = 1, kMetricHistogram = 2 };

// One metric the application registered through cppops_agent_counter/gauge/histogram (cppops/agent.h).
struct AppMetric {
  std::string name;
  std::string help;
  uint8_t kind = kMetricCounter;
  double value = 0;                     // counter or gauge
  std::vector<double> bounds;           // histogram: upper bounds, ascending, +Inf implied
  std::vector<uint64_t> bucket_counts;  // histogram: observations per bound, not cumulative; one more for +Inf
  double sum = 0;                       // histogram: sum of observations

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct MetricsReply {
  StatsReply process;
  uint64_t requests_served = 0;   // requests the agent answered, including error replies, since it started
  uint64_t requests_refused = 0;  // connections refused (credentials, too many clients) since it started
  uint8_t thread_counts_known = 0;  // 1 when the agent sees pthread_create (preloaded or linked as a shared library)
  uint64_t threads_created = 0;   // threads the process created since the agent started
  uint64_t threads_exited = 0;    // of those and the ones before, how many have ended
  uint8_t allocator_known = 0;    // 1 when the figures below come from glibc's mallinfo2
  uint64_t heap_arena_bytes = 0;  // obtained from the system with brk/sbrk and in arenas (mallinfo2 arena)
  uint64_t heap_mmap_bytes = 0;   // in large blocks obtained with mmap (hblkhd)
  uint64_t heap_in_use_bytes = 0; // allocated and not freed (uordblks + hblkhd)
  uint64_t heap_free_bytes = 0;   // held by the allocator but free (fordblks)
  uint32_t agent_tid = 0;         // the agent's control thread, not in `threads`
  std::vector<StackThread> threads;  // kernel facts only (status 3, no pcs): syscall line and lock window
  std::string thread_states;         // each thread's scheduler state letter (stat field 3), '?' when unreadable
  std::vector<AppMetric> app;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// Error replies carry a human message that the CLI prints verbatim.
struct ErrorReply {
  std::string message;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

}  // namespace cppops::protocol

namespace cppops::protocol {

// A named figure of the allocator, as it reports it (mallinfo2 fields, mallctl names, tcmalloc properties).
struct AllocatorFigure {
  std::string name;
  uint64_t value = 0;
};

// A thread's stack pointer as the kernel last saw it (/proc/self/task/TID/syscall); 0 when the thread was
// running, so the kernel had none to give.
struct ThreadStackPointer {
  uint32_t tid = 0;
  uint64_t sp = 0;
};

// HEAP: which allocator the process calls and its own figures, with the kernel's raw view of memory; the CLI
// parses and adds up (smaps, the stacks' mappings).
struct HeapReply {
  std::string allocator;          // "glibc", "jemalloc", "tcmalloc" or "unknown"
  std::string allocator_module;   // the object that defines the malloc the process calls
  std::string allocator_version;  // "" when the allocator does not say
  std::vector<AllocatorFigure> figures;
  std::string allocator_report;   // glibc: malloc_info(3)'s XML (per-arena figures); "" for the others
  std::string smaps_rollup;       // /proc/self/smaps_rollup
  std::string smaps;              // /proc/self/smaps
  std::vector<ThreadStackPointer> stacks;
  uint8_t heap_hooks = 0;         // 1: the agent's allocation entry points are the ones the process calls
  uint8_t heap_sampling = 0;      // 1: allocation sampling is on
  uint64_t heap_rate_bytes = 0;   // mean bytes between samples while sampling

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// GC: the allocator's figures and the kernel's before and after it gave free memory back.
struct GcReply {
  std::string allocator;
  std::string method;             // what was called, e.g. "malloc_trim(0)"
  int64_t result = 0;             // what it returned (malloc_trim: 1 if memory was released; mallctl: 0 or errno)
  uint64_t duration_ns = 0;
  std::vector<AllocatorFigure> before;
  std::vector<AllocatorFigure> after;
  std::string smaps_rollup_before;
  std::string smaps_rollup_after;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// HEAP_PROFILE: kHeapRead reads what sampling has recorded so far and leaves it as it is; kHeapStart switches it
// on from empty tables (kBusy when it is on already); kHeapStop reads and switches it off, emptying the tables.
// Sampling stays on between requests: a client that wants a profile over a duration starts, waits, and stops.
enum HeapProfileAction : uint8_t { kHeapRead = 0, kHeapStart = 1, kHeapStop = 2 };

struct HeapProfileRequest {
  uint8_t action = kHeapRead;
  uint64_t rate_bytes = 512 * 1024;  // mean bytes between samples, when this request switches sampling on

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

// One allocation stack. Figures are estimates of the whole population the samples stand for (each sampled block
// of n bytes stands for 1 / (1 - exp(-n / rate)) blocks), rounded; in use = allocated - freed.
struct HeapSample {
  uint64_t alloc_objects = 0;
  uint64_t alloc_bytes = 0;
  uint64_t free_objects = 0;
  uint64_t free_bytes = 0;
  std::vector<uint64_t> pcs;  // return addresses, innermost first: pcs[0] is in the caller of malloc

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

struct HeapProfileReply {
  uint8_t interposed = 0;      // the agent's allocation entry points are the ones the process calls
  uint8_t sampling = 0;        // sampling is on after this request
  uint64_t rate_bytes = 0;
  uint64_t sampled_ns = 0;     // how long sampling had been on when the figures were read
  uint64_t dropped = 0;        // samples not recorded (tables full)
  std::vector<HeapSample> samples;
  std::vector<std::string> notes;

  void encode(wire::Writer& w) const;
  bool decode(wire::Reader& r);
};

}  // namespace cppops::protocol
