// Benchmark for `cppops stack`: a target with about 1,000 threads in mixed states, dumped by cppops, by
// `eu-stack -s -p` and by `gdb -batch -ex 'thread apply all bt'` in the same run. For each tool: the median wall
// time end to end, the ratio to cppops, and the longest stall a probe thread inside the target saw while the
// tool ran (plus the same probe while idle, the noise floor). Also cppops' own report of the per-thread handler
// time (p50, p99, max), taken from its --json output.
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

struct Summary {
  std::string tool;
  double median_ms = 0;
  double median_stall_ms = 0;
  double worst_stall_ms = 0;
  int runs = 0;
  bool ok = true;
};

Summary measure(const std::string& tool, const std::vector<std::string>& argv, int runs, volatile uint64_t* probe,
                std::vector<int> ok_codes = {0}) {
  Summary s{tool};
  std::vector<double> ms, stall;
  for (int i = 0; i < runs; ++i) {
    Run r = runTimed(argv, probe);
    if (std::find(ok_codes.begin(), ok_codes.end(), r.exit_code) == ok_codes.end()) s.ok = false;
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
  const std::string probe_path = dir + "/probe";
  // The scenario target has 25 threads of its own plus the probe; the rest are extras in mixed states.
  const int extra = std::max(0, threads - 26);
  pid_t target_pid = fork();
  if (target_pid == 0) {
    setenv("CPPOPS_SOCKET_DIR", dir.c_str(), 1);
    setenv("CPPOPS_PROBE_FILE", probe_path.c_str(), 1);
    setenv("LD_PRELOAD", agent.c_str(), 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    std::string extra_arg = std::to_string(extra);
    execl(target.c_str(), target.c_str(), "--extra", extra_arg.c_str(), nullptr);
    _exit(127);
  }
  // Wait for the probe file and the agent socket.
  volatile uint64_t* probe = nullptr;
  for (int i = 0; i < 600 && probe == nullptr; ++i) {
    std::this_thread::sleep_for(50ms);
    int fd = open(probe_path.c_str(), O_RDWR);
    if (fd < 0) continue;
    void* p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) probe = static_cast<volatile uint64_t*>(p);
  }
  if (probe == nullptr) {
    std::fprintf(stderr, "the target did not start\n");
    kill(target_pid, SIGKILL);
    return 1;
  }
  std::this_thread::sleep_for(1s);
  setenv("CPPOPS_SOCKET_DIR", dir.c_str(), 1);
  const std::string pid = std::to_string(target_pid);

  std::printf("target: %s with %d threads (pid %s)\n", target.c_str(), threads, pid.c_str());
  std::vector<Summary> results;

  // Noise floor: the probe alone, over a window like cppops' runs.
  {
    std::vector<double> stall;
    for (int i = 0; i < 5; ++i) {
      *probe = 0;
      std::this_thread::sleep_for(100ms);
      stall.push_back(static_cast<double>(*probe) / 1e6);
    }
    Summary idle{"idle (noise floor)"};
    idle.median_stall_ms = median(stall);
    idle.worst_stall_ms = *std::max_element(stall.begin(), stall.end());
    idle.runs = 5;
    results.push_back(idle);
  }
  // Exit 7 is success with deadlocks found: the scenario target has two on purpose.
  results.push_back(measure("cppops stack", {cppops, "stack", pid}, runs, probe, {0, 7}));
  results.push_back(measure("cppops stack --json", {cppops, "stack", pid, "--json"}, runs, probe, {0, 7}));
  if (available("eu-stack"))
    results.push_back(measure("eu-stack -s -p", {"eu-stack", "-s", "-p", pid}, std::max(3, runs / 4), probe));
  if (available("gdb"))
    results.push_back(measure("gdb thread apply all bt",
                              {"gdb", "-p", pid, "-batch", "-nx", "-ex", "thread apply all bt"}, std::max(3, runs / 7),
                              probe));

  // cppops' own account of the per-thread handler time.
  Run json_run = runTimed({cppops, "stack", pid, "--json"}, probe, dir + "/dump.json");
  std::vector<double> handler_us;
  size_t frames_with_lines = 0, dumped = 0;
  try {
    std::ifstream in(dir + "/dump.json");
    nlohmann::json dump = nlohmann::json::parse(in);
    for (const auto& t : dump.at("threads")) {
      if (t.find("pause_ns") != t.end()) handler_us.push_back(t.at("pause_ns").get<double>() / 1e3);
      ++dumped;
      for (const auto& f : t.at("frames"))
        if (f.find("line") != f.end() && f.at("line").get<double>() > 0) {
          ++frames_with_lines;
          break;
        }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "could not read cppops --json output: %s\n", e.what());
  }

  const double base = results[1].median_ms;
  std::printf("\n%-26s %5s %12s %10s %18s %18s\n", "tool", "runs", "median ms", "x cppops", "median stall ms",
              "worst stall ms");
  for (const auto& r : results) {
    if (r.median_ms > 0)
      std::printf("%-26s %5d %12.1f %10.1f %18.2f %18.2f%s\n", r.tool.c_str(), r.runs, r.median_ms,
                  r.median_ms / base, r.median_stall_ms, r.worst_stall_ms, r.ok ? "" : "  (some runs failed)");
    else
      std::printf("%-26s %5d %12s %10s %18.2f %18.2f\n", r.tool.c_str(), r.runs, "-", "-", r.median_stall_ms,
                  r.worst_stall_ms);
  }
  std::printf("\ncppops per-thread handler time: p50 %.1f us, p99 %.1f us, max %.1f us over %zu threads\n",
              percentile(handler_us, 0.5), percentile(handler_us, 0.99), percentile(handler_us, 1.0),
              handler_us.size());
  std::printf("threads dumped: %zu, with a file:line frame: %zu (exit %d)\n", dumped, frames_with_lines,
              json_run.exit_code);

  kill(target_pid, SIGKILL);
  waitpid(target_pid, nullptr, 0);
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
