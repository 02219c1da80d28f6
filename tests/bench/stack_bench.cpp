// Benchmark for `cppops stack`: a target with about 1,000 threads in mixed states, dumped by cppops, by
// `eu-stack -s -p` and by `gdb -batch -ex 'thread apply all bt'` in the same run. For each tool: the median wall
// time end to end, the ratio to cppops, and the longest stall a probe thread inside the target saw while the
// tool ran (plus the same probe while idle, the noise floor). Also cppops' own report of the per-thread handler
// time (p50, p99, max), taken from its --json output.
//
// The same target is then started again without the agent and dumped by cppops through ptrace (one thread stopped
// at a time) next to eu-stack and gdb, which stop threads the same way; for cppops its own report of the longest
// time any thread was stopped, for all three the longest stall the probe saw.
//
// Usage: stack_bench CPPOPS_BINARY AGENT_SO TARGET [--threads N] [--runs N]
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Run {
  double ms = 0;
  double stall_ms = 0;
  int exit_code = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Runs argv with stdout to `out_path` (or /dev/null), returns wall time and exit code.
Run runTimed(const std::vector<std::string>& argv, volatile uint64_t* probe, const std::string& out_path = "/dev/null") {
  *probe = 0;
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_WRONLY);
    dup2(out, 1);
    dup2(null, 2);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Run r;
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  r.stall_ms = static_cast<double>(*probe) / 1e6;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

struct DumpFigures {
  std::vector<double> pause_us;  // per thread held (in the handler, or stopped by ptrace)
  size_t read_asleep = 0;        // threads captured without being held (pause_ns 0): read where they slept
  size_t dumped = 0;
  size_t with_lines = 0;  // threads with at least one file:line frame
};

DumpFigures readDump(const std::string& json_path) {
  DumpFigures figures;
  try {
    std::ifstream in(json_path);
    nlohmann::json dump = nlohmann::json::parse(in);
    for (const auto& t : dump.at("threads")) {
      if (t.find("pause_ns") != t.end()) {
        const double pause_ns = t.at("pause_ns").get<double>();
        if (pause_ns > 0)
          figures.pause_us.push_back(pause_ns / 1e3);
        else
          ++figures.read_asleep;
      }
      ++figures.dumped;
      for (const auto& f : t.at("frames"))
        if (f.find("line") != f.end() && f.at("line").get<double>() > 0) {
          ++figures.with_lines;
          break;
        }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "could not read cppops --json output: %s\n", e.what());
  }
  return figures;
}

struct Summary {
  std::string tool;
  double median_ms = 0;
  double median_stall_ms = 0;
  double worst_stall_ms = 0;
  double worst_self_pause_ms = -1;  // cppops --json runs: the longest cost.max_pause_ns it reported
  std::vector<double> pause_us;     // cppops --json runs: every held thread's own pause, over all runs
  size_t read_asleep = 0;           // cppops --json runs: threads never held, over all runs
  int runs = 0;
  bool ok = true;
};

// The longest time any one thread was held, as cppops reported it in a --json dump; -1 when unreadable.
double selfReportedPauseMs(const std::string& json_path) {
  try {
    std::ifstream in(json_path);
    return nlohmann::json::parse(in).at("cost").at("max_pause_ns").get<double>() / 1e6;
  } catch (const std::exception&) {
    return -1;
  }
}

// json_path: where each run's stdout goes when it is a cppops --json dump whose own pause figure counts.
Summary measure(const std::string& tool, const std::vector<std::string>& argv, int runs, volatile uint64_t* probe,
                std::vector<int> ok_codes = {0}, const std::string& json_path = "") {
  Summary s;
  s.tool = tool;
  std::vector<double> ms, stall;
  for (int i = 0; i < runs; ++i) {
    Run r = json_path.empty() ? runTimed(argv, probe) : runTimed(argv, probe, json_path);
    if (std::find(ok_codes.begin(), ok_codes.end(), r.exit_code) == ok_codes.end()) s.ok = false;
    if (!json_path.empty()) {
      s.worst_self_pause_ms = std::max(s.worst_self_pause_ms, selfReportedPauseMs(json_path));
      const DumpFigures figures = readDump(json_path);
      s.pause_us.insert(s.pause_us.end(), figures.pause_us.begin(), figures.pause_us.end());
      s.read_asleep += figures.read_asleep;
    }
    ms.push_back(r.ms);
    stall.push_back(r.stall_ms);
    std::this_thread::sleep_for(50ms);
  }
  s.runs = runs;
  s.median_ms = median(ms);
  s.median_stall_ms = median(stall);
  s.worst_stall_ms = *std::max_element(stall.begin(), stall.end());
  return s;
}

// The probe alone, over a window like cppops' runs.
Summary noiseFloor(volatile uint64_t* probe) {
  std::vector<double> stall;
  for (int i = 0; i < 5; ++i) {
    *probe = 0;
    std::this_thread::sleep_for(100ms);
    stall.push_back(static_cast<double>(*probe) / 1e6);
  }
  Summary idle;
  idle.tool = "idle (noise floor)";
  idle.median_stall_ms = median(stall);
  idle.worst_stall_ms = *std::max_element(stall.begin(), stall.end());
  idle.runs = 5;
  return idle;
}

struct Target {
  pid_t pid = -1;
  volatile uint64_t* probe = nullptr;
};

// Starts the scenario target with `extra` more threads and a probe; with the agent preloaded unless agent is "".
// Returns once the probe runs (every thread is in place by then).
Target startTarget(const std::string& target, int extra, const std::string& dir, const std::string& probe_path,
                   const std::string& agent) {
  Target t;
  t.pid = fork();
  if (t.pid == 0) {
    setenv("CPPOPS_SOCKET_DIR", dir.c_str(), 1);
    setenv("CPPOPS_PROBE_FILE", probe_path.c_str(), 1);
    if (!agent.empty()) setenv("LD_PRELOAD", agent.c_str(), 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    std::string extra_arg = std::to_string(extra);
    execl(target.c_str(), target.c_str(), "--extra", extra_arg.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 600 && t.probe == nullptr; ++i) {
    std::this_thread::sleep_for(50ms);
    int fd = open(probe_path.c_str(), O_RDWR);
    if (fd < 0) continue;
    void* p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) t.probe = static_cast<volatile uint64_t*>(p);
  }
  if (t.probe == nullptr) {
    kill(t.pid, SIGKILL);
    waitpid(t.pid, nullptr, 0);
  }
  return t;
}

void stopTarget(const Target& t) {
  kill(t.pid, SIGKILL);
  waitpid(t.pid, nullptr, 0);
}

void printTable(const std::vector<Summary>& results, const Summary& base) {
  std::printf("\n%-30s %5s %12s %10s %18s %18s %18s\n", "tool", "runs", "median ms", "x cppops", "median stall ms",
              "worst stall ms", "longest stop ms");
  for (const auto& r : results) {
    std::string self = r.worst_self_pause_ms >= 0 ? std::to_string(r.worst_self_pause_ms).substr(0, 6) : "-";
    if (r.median_ms > 0)
      std::printf("%-30s %5d %12.1f %10.1f %18.2f %18.2f %18s%s\n", r.tool.c_str(), r.runs, r.median_ms,
                  r.median_ms / base.median_ms, r.median_stall_ms, r.worst_stall_ms, self.c_str(),
                  r.ok ? "" : "  (some runs failed)");
    else
      std::printf("%-30s %5d %12s %10s %18.2f %18.2f %18s\n", r.tool.c_str(), r.runs, "-", "-", r.median_stall_ms,
                  r.worst_stall_ms, "-");
  }
}

// pause_us: every thread's own figure over all the timed --json runs, so that the p99 is not one dump's luck.
void printPauses(const char* what, const Summary& timed, const DumpFigures& figures, int exit_code) {
  const std::vector<double>& pause_us = timed.pause_us;
  std::printf("%s: p50 %.1f us, p99 %.1f us, max %.1f us over %zu threads held in %d dumps; %zu read asleep, "
              "never held\n",
              what, percentile(pause_us, 0.5), percentile(pause_us, 0.99), percentile(pause_us, 1.0), pause_us.size(),
              timed.runs, timed.read_asleep);
  std::printf("threads dumped: %zu, with a file:line frame: %zu (exit %d)\n", figures.dumped, figures.with_lines,
              exit_code);
}

bool available(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s CPPOPS AGENT_SO TARGET [--threads N] [--runs N]\n", argv[0]);
    return 2;
  }
  const std::string cppops = argv[1], agent = argv[2], target = argv[3];
  int threads = 1000, runs = 21;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::atoi(argv[i + 1]);
  }

  char dir_template[] = "/tmp/cppopsbench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  setenv("CPPOPS_SOCKET_DIR", dir.c_str(), 1);
  // The scenario target has 25 threads of its own plus the probe; the rest are extras in mixed states.
  const int extra = std::max(0, threads - 26);

  // 1. With the agent.
  Target with_agent = startTarget(target, extra, dir, dir + "/probe-agent", agent);
  if (with_agent.probe == nullptr) {
    std::fprintf(stderr, "the target did not start\n");
    return 1;
  }
  std::this_thread::sleep_for(1s);
  std::string pid = std::to_string(with_agent.pid);
  std::printf("target: %s with %d threads (pid %s), with the agent\n", target.c_str(), threads, pid.c_str());
  std::vector<Summary> results{noiseFloor(with_agent.probe)};
  // A debug-info cache of the benchmark's own: the first run fills it (compressed debug files such as libc6-dbg's
  // are inflated once), the timed runs read it. The cold row turns the cache off, as on a first dump ever.
  const std::string cache = dir + "/debuginfo";
  setenv("CPPOPS_CACHE_DIR", cache.c_str(), 1);
  runTimed({cppops, "stack", pid}, with_agent.probe);
  // Exit 7 is success with deadlocks found: the scenario target has two on purpose.
  results.push_back(measure("cppops stack", {cppops, "stack", pid}, runs, with_agent.probe, {0, 7}));
  results.push_back(measure("cppops stack --json", {cppops, "stack", pid, "--json"}, runs, with_agent.probe, {0, 7},
                            dir + "/agent-run.json"));
  setenv("CPPOPS_CACHE_DIR", "", 1);
  results.push_back(measure("cppops stack (no debug cache)", {cppops, "stack", pid}, std::max(3, runs / 4),
                            with_agent.probe, {0, 7}));
  setenv("CPPOPS_CACHE_DIR", cache.c_str(), 1);
  Run agent_json = runTimed({cppops, "stack", pid, "--json"}, with_agent.probe, dir + "/agent-dump.json");
  const Summary agent_base = results[1];
  printTable(results, agent_base);
  std::printf("\n");
  const DumpFigures agent_figures = readDump(dir + "/agent-dump.json");
  const std::vector<double> handler_us = results[2].pause_us;
  printPauses("cppops per-thread handler time", results[2], agent_figures, agent_json.exit_code);
  stopTarget(with_agent);

  // 2. The same program without any agent: cppops through ptrace, next to eu-stack and gdb.
  Target bare = startTarget(target, extra, dir, dir + "/probe-bare", "");
  if (bare.probe == nullptr) {
    std::fprintf(stderr, "the target did not start without the agent\n");
    return 1;
  }
  std::this_thread::sleep_for(1s);
  pid = std::to_string(bare.pid);
  std::printf("\ntarget: %s with %d threads (pid %s), without an agent\n", target.c_str(), threads, pid.c_str());
  results = {noiseFloor(bare.probe)};
  results.push_back(measure("cppops stack (ptrace)", {cppops, "stack", pid}, runs, bare.probe, {0, 7}));
  results.push_back(measure("cppops stack --json (ptrace)", {cppops, "stack", pid, "--json"}, runs, bare.probe,
                            {0, 7}, dir + "/ptrace-run.json"));
  if (available("eu-stack"))
    results.push_back(measure("eu-stack -s -p", {"eu-stack", "-s", "-p", pid}, std::max(3, runs / 4), bare.probe));
  if (available("gdb"))
    results.push_back(measure("gdb thread apply all bt",
                              {"gdb", "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt"}, std::max(3, runs / 7),
                              bare.probe));
  Run ptrace_json = runTimed({cppops, "stack", pid, "--json"}, bare.probe, dir + "/ptrace-dump.json");
  const Summary ptrace_base = results[1];
  printTable(results, ptrace_base);
  std::printf("\n(ratios to cppops through ptrace; through the agent it took %.1f ms)\n", agent_base.median_ms);
  printPauses("cppops per-thread stop (ptrace, interrupt to detach)", results[2], readDump(dir + "/ptrace-dump.json"),
              ptrace_json.exit_code);
  // The stack issue's targets: the agent path against the same program without the agent under eu-stack and gdb.
  std::printf("\nthrough the agent: median %.1f ms (target <= 50) -> %s; handler p99 %.1f us (target <= 20) -> %s\n",
              agent_base.median_ms, agent_base.median_ms <= 50 ? "met" : "NOT met",
              percentile(handler_us, 0.99), percentile(handler_us, 0.99) <= 20 ? "met" : "NOT met");
  for (const auto& r : results) {
    const double ratio = r.median_ms / agent_base.median_ms;
    if (r.tool == "eu-stack -s -p")
      std::printf("through the agent vs eu-stack -s: %.1fx faster (target >= 20x) -> %s\n", ratio,
                  ratio >= 20 ? "met" : "NOT met");
    if (r.tool == "gdb thread apply all bt")
      std::printf("through the agent vs gdb: %.1fx faster (target >= 15x) -> %s\n", ratio,
                  ratio >= 15 ? "met" : "NOT met");
  }
  for (const auto& r : results) {
    if (r.tool != "eu-stack -s -p") continue;
    // eu-stack stops every thread for its whole run, so the probe's longest stall is its longest per-thread stop;
    // cppops reports its own, which the probe can only see for the one thread it is.
    const double cppops_stop = results[2].worst_self_pause_ms;
    std::printf("vs eu-stack -s: %.1fx faster (target: faster); longest per-thread stop %.2f ms vs %.2f ms "
                "(target: no longer) -> %s\n",
                r.median_ms / ptrace_base.median_ms, cppops_stop, r.worst_stall_ms,
                ptrace_base.median_ms < r.median_ms && cppops_stop <= r.worst_stall_ms ? "met" : "NOT met");
  }
  stopTarget(bare);
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
