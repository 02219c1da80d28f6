// cppops profile against real targets: a CPU burner that spends 3/4 of its CPU in hotFunction() and 1/4 in
// coldFunction() (tests/targets/cpu_burner.cpp), read back in every format, including by `go tool pprof`.
//
// Tolerances, written down once:
//   - shares: 75% +/- 10 and 25% +/- 10 (the figure), in every format;
//   - sample counts: within 30% of the CPU time the burner threads really used times the rate (the kernel charges
//     CPU time by tick, the profile and the /proc reading bracket slightly different windows);
//   - wall mode: every thread is sampled at the rate, so samples = threads x duration x rate within 15%;
//   - duration: the agent's sampling time within 10% (and 300 ms) of --duration.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <algorithm>
#include <thread>

#include "proc/process.h"
#include "proc/task.h"
#include "stack_scenario.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

constexpr double kShareTolerance = 0.10;
constexpr const char* kHot = "hotFunction";
constexpr const char* kCold = "coldFunction";

// `agent` false: cpu_burner with no cppops code in it, profiled through ptrace.
struct Burner {
  explicit Burner(std::string program = "cpu_burner", std::vector<std::string> args = {}, bool agent = true)
      : target({program, std::move(args), agent && program == "cpu_burner", {}, {}}, dir.path()) {
    REQUIRE(target.waitForOutput("ready", 20s));
    if (agent) REQUIRE_FALSE(target.waitForSocket().empty());
    tids = target.announcedTids();
  }
  std::string pid() const { return std::to_string(target.pid()); }
  TempDir dir;
  TempDir files;
  TargetProcess target;
  std::map<std::string, pid_t> tids;
};

std::string slurp(const std::string& path) { return cppops::proc::readFile(path).value_or(""); }

// A tool's full path from $PATH (runProgram does not search it), or the bare name, which then fails with 127.
void checkShares(double hot, double cold, const std::string& where) {
  INFO(where << ": hot " << hot * 100 << "%, cold " << cold * 100 << "%");
  CHECK(hot == Approx(0.75).margin(kShareTolerance));
  CHECK(cold == Approx(0.25).margin(kShareTolerance));
}

// Runs a profile with --json and returns the summary; the profile itself goes to `output` when given.
json profileJson(const Burner& b, std::vector<std::string> extra, CliResult* raw = nullptr) {
  std::vector<std::string> args{"profile", b.pid(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  CliResult r = runCli(args, b.dir.path());
  INFO("cppops " << args[2] << ": exit " << r.exit_code << "\n" << r.err);
  REQUIRE(r.exit_code == 0);
  if (raw != nullptr) *raw = r;
  return json::parse(r.out);
}

// CPU seconds (user + system) the named threads have used so far.
double cpuSeconds(const Burner& b, const std::vector<std::string>& roles) {
  double total = 0;
  for (const auto& role : roles) {
    std::string stat = slurp("/proc/" + b.pid() + "/task/" + std::to_string(b.tids.at(role)) + "/stat");
    size_t close = stat.rfind(')');
    REQUIRE(close != std::string::npos);
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) {
        stime = std::stoull(field);
        break;
      }
    }
    total += static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return total;
}

size_t timerCount(const Burner& b) {
  std::string timers = slurp("/proc/" + b.pid() + "/timers");
  size_t n = 0;
  for (size_t at = timers.find("ID:"); at != std::string::npos; at = timers.find("ID:", at + 1)) ++n;
  return n;
}

size_t threadCount(const Burner& b) { return cppops::proc::listTasks(b.target.pid()).size(); }

// Starts the CLI as a process of its own (so a test can kill it), output discarded.
pid_t spawnCli(const std::vector<std::string>& args, const std::string& socket_dir) {
  std::vector<std::string> argv{cliPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("CPPOPS_SOCKET_DIR", socket_dir.c_str(), 1);
    int null_fd = ::open("/dev/null", O_RDWR);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

template <typename Predicate>
bool eventually(Predicate p, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return p();
}

// The shares of the hot and cold functions as leaves of folded stacks ("a;b;leaf COUNT" lines).
std::pair<double, double> foldedShares(const std::string& folded, uint64_t* total_out = nullptr) {
  uint64_t hot = 0, cold = 0, total = 0;
  std::istringstream lines(folded);
  std::string line;
  while (std::getline(lines, line)) {
    size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    uint64_t count = std::stoull(line.substr(space + 1));
    std::string stack = line.substr(0, space);
    std::string leaf = stack.substr(stack.rfind(';') == std::string::npos ? 0 : stack.rfind(';') + 1);
    total += count;
    if (leaf.find(kHot) != std::string::npos) hot += count;
    if (leaf.find(kCold) != std::string::npos) cold += count;
  }
  if (total_out != nullptr) *total_out = total;
  REQUIRE(total > 0);
  return {static_cast<double>(hot) / static_cast<double>(total), static_cast<double>(cold) / static_cast<double>(total)};
}

// flat% of a function in a `go tool pprof -top` or `cppops profile` table: the second column.
double flatShare(const std::string& table, const std::string& function) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(function) == std::string::npos) continue;
    std::istringstream fields(line);
    std::string flat, flat_percent;
    fields >> flat >> flat_percent;
    if (!flat_percent.empty() && flat_percent.back() == '%') return std::stod(flat_percent) / 100.0;
  }
  FAIL("no row for " << function << " in:\n" << table);
  return 0;
}

const std::vector<std::string> kBurners{"burner-0", "burner-1"};

}  // namespace

TEST_CASE("profile: go tool pprof reads the pprof output, names the hot function and sees the 3:1 split") {
  Burner b;
  const std::string file = b.files.path() + "/cpu.pb.gz";
  json summary = profileJson(b, {"-d", "4s", "-r", "250", "-o", file});
  CHECK(summary.at("output").at("format") == "pprof");
  CHECK(summary.at("samples").get<uint64_t>() > 100);
  CliResult top = runProgram({findTool("go"), "tool", "pprof", "-top", file},
                             {{"HOME", b.files.path()}, {"PPROF_TMPDIR", b.files.path()}});
  INFO("go tool pprof -top (install golang-go: scripts/setup.sh):\n" << top.out << top.err);
  REQUIRE(top.exit_code == 0);
  CHECK(top.out.find("Type: cpu") != std::string::npos);
  // The first row after the header is the hottest function.
  const size_t header = top.out.find("flat%");
  REQUIRE(header != std::string::npos);
  const size_t first_row = top.out.find('\n', header) + 1;
  CHECK(top.out.substr(first_row, top.out.find('\n', first_row) - first_row).find(kHot) != std::string::npos);
  checkShares(flatShare(top.out, kHot), flatShare(top.out, kCold), "go tool pprof -top");

  // Thread labels travel as pprof tags.
  CliResult tags = runProgram({findTool("go"), "tool", "pprof", "-tags", file},
                              {{"HOME", b.files.path()}, {"PPROF_TMPDIR", b.files.path()}});
  REQUIRE(tags.exit_code == 0);
  CHECK(tags.out.find("thread_name") != std::string::npos);
  CHECK(tags.out.find("burner-0") != std::string::npos);
  CHECK(tags.out.find("thread_id") != std::string::npos);
  CHECK(tags.out.find(std::to_string(b.tids.at("burner-1"))) != std::string::npos);
}

TEST_CASE("profile: folded stacks parse, sum to the sample count and show the 3:1 split") {
  Burner b;
  const std::string file = b.files.path() + "/cpu.folded";
  json summary = profileJson(b, {"-d", "4s", "-r", "250", "-o", file});
  CHECK(summary.at("output").at("format") == "folded");
  uint64_t total = 0;
  auto [hot, cold] = foldedShares(slurp(file), &total);
  CHECK(total == summary.at("samples").get<uint64_t>());
  checkShares(hot, cold, "folded");

  // --threads: one flame per thread, the thread as the root frame.
  const std::string per_thread = b.files.path() + "/threads.txt";
  profileJson(b, {"-d", "1s", "-o", per_thread, "--threads"});
  std::string text = slurp(per_thread);
  CHECK(text.find("burner-0 (" + std::to_string(b.tids.at("burner-0")) + ");") != std::string::npos);
}

TEST_CASE("profile: the top table and --json show the 3:1 split") {
  Burner b;
  CliResult r = runCli({"profile", b.pid(), "-d", "4s", "-r", "250"}, b.dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("Type: cpu") != std::string::npos);
  checkShares(flatShare(r.out, kHot), flatShare(r.out, kCold), "top table");

  json summary = profileJson(b, {"-d", "4s", "-r", "250"});
  CHECK(summary.at("schema_version") == 1);
  CHECK(summary.at("mode") == "cpu");
  CHECK(summary.at("rate_hz") == 250);
  CHECK(summary.at("dropped") == 0);
  const json& top = summary.at("top");
  REQUIRE(top.size() >= 2);
  CHECK(top[0].at("function").get<std::string>().find(kHot) != std::string::npos);
  CHECK(top[1].at("function").get<std::string>().find(kCold) != std::string::npos);
  checkShares(top[0].at("flat_fraction").get<double>(), top[1].at("flat_fraction").get<double>(), "--json top");
  std::set<std::string> names;
  for (const auto& t : summary.at("threads")) names.insert(t.at("name").get<std::string>());
  CHECK(names.count("burner-0") == 1);
  CHECK(names.count("burner-1") == 1);
  CHECK(names.count("sleeper") == 0);  // it used no CPU
}

TEST_CASE("profile: speedscope weights and the SVG flame graph show the 3:1 split") {
  Burner b;
  const std::string json_file = b.files.path() + "/cpu.json";
  profileJson(b, {"-d", "4s", "-r", "250", "-o", json_file});
  json doc = json::parse(slurp(json_file));
  CHECK(doc.at("$schema").get<std::string>().find("speedscope") != std::string::npos);
  const json& frames = doc.at("shared").at("frames");
  double hot = 0, cold = 0, total = 0;
  for (const auto& p : doc.at("profiles")) {
    CHECK(p.at("type") == "sampled");
    const json& samples = p.at("samples");
    const json& weights = p.at("weights");
    REQUIRE(samples.size() == weights.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      const std::string leaf = frames.at(samples[i].back().get<size_t>()).at("name");
      const double w = weights[i].get<double>();
      total += w;
      if (leaf.find(kHot) != std::string::npos) hot += w;
      if (leaf.find(kCold) != std::string::npos) cold += w;
    }
  }
  REQUIRE(total > 0);
  checkShares(hot / total, cold / total, "speedscope");

  const std::string svg_file = b.files.path() + "/flame.svg";
  profileJson(b, {"-d", "4s", "-r", "250", "-o", svg_file});
  std::string svg = slurp(svg_file);
  CliResult lint = runProgram({findTool("xmllint"), "--noout", svg_file}, {});
  INFO("xmllint (libxml2-utils): " << lint.err);
  CHECK(lint.exit_code == 0);
  // Each frame is <g data-s=".." data-n="COUNT"><title>NAME (COUNT samples, P%)</title>: add up the leaves.
  double svg_hot = 0, svg_cold = 0, svg_total = 0;
  const std::string count_attr = "data-n=\"", title_open = "<title>";
  for (size_t at = svg.find("<g data-s="); at != std::string::npos; at = svg.find("<g data-s=", at + 1)) {
    const size_t count = svg.find(count_attr, at) + count_attr.size();
    const size_t title = svg.find(title_open, at) + title_open.size();
    const std::string text = svg.substr(title, svg.find("</title>", title) - title);
    const std::string name = text.substr(0, text.rfind(" ("));
    const double n = std::stod(svg.substr(count, svg.find('"', count) - count));
    if (name == "all") svg_total = n;
    if (name.find(kHot) != std::string::npos) svg_hot += n;
    if (name.find(kCold) != std::string::npos) svg_cold += n;
  }
  REQUIRE(svg_total > 0);
  checkShares(svg_hot / svg_total, svg_cold / svg_total, "svg");
}

TEST_CASE("profile: --duration and --rate are honoured, and cpu samples follow the CPU the threads used") {
  Burner b;
  for (uint32_t rate : {100u, 500u}) {
    INFO("rate " << rate);
    const double cpu_before = cpuSeconds(b, kBurners);
    const auto start = std::chrono::steady_clock::now();
    json summary = profileJson(b, {"-d", "2s", "-r", std::to_string(rate)});
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = cpuSeconds(b, kBurners) - cpu_before;
    const double duration = summary.at("duration_ns").get<double>() / 1e9;
    CHECK(duration == Approx(2.0).margin(0.3));
    CHECK(wall >= 2.0);
    CHECK(summary.at("period_ns") == 1000000000ull / rate);
    // The CPU the burners used while the agent sampled lies between all they used in the window the test could
    // bracket and that prorated to the profile's duration: on a loaded machine the CLI's symbolizing after the
    // profile takes CPU from the burners, so it is not spread evenly over the window.
    const double at_most = cpu * rate;
    const double at_least = cpu * (duration / wall) * rate;
    const double samples = summary.at("samples").get<double>();
    INFO("samples " << samples << ", CPU " << cpu << " s over " << wall << " s, expected " << at_least << " to "
                    << at_most);
    CHECK(samples >= at_least * 0.7);
    CHECK(samples <= at_most * 1.3);
    CHECK(samples <= duration * rate * static_cast<double>(kBurners.size()) * 1.1);
  }
  const auto start = std::chrono::steady_clock::now();
  profileJson(b, {"-d", "500ms"});
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

namespace {

// main (joining), sleeper and two burners, each sampled at the rate, with states that go tool pprof reads back.
void checkWallEveryThread(const Burner& b, const std::string& source) {
  const std::string file = b.files.path() + "/wall.pb.gz";
  json summary = profileJson(b, {"-d", "2s", "--mode", "wall", "-o", file});
  CHECK(summary.at("mode") == "wall");
  CHECK(summary.at("source") == source);
  // The agent's own threads are left out. A sample of a thread that did not stop in time (through ptrace, on a
  // machine busier than its CPUs) is dropped, and counted as such.
  const double expected = 4 * 2.0 * 100;
  const double samples = summary.at("samples").get<double>();
  const double dropped = summary.at("dropped").get<double>();
  INFO(samples << " samples, " << dropped << " dropped");
  CHECK(samples + dropped == Approx(expected).epsilon(0.15));
  CHECK(samples >= expected / 2);
  std::map<std::string, uint64_t> per_thread;
  for (const auto& t : summary.at("threads")) per_thread[t.at("name")] = t.at("samples");
  CHECK(per_thread.count("sleeper") == 1);
  CHECK(per_thread["sleeper"] == Approx(per_thread["burner-0"]).epsilon(0.05));

  const std::map<std::string, std::string> env{{"HOME", b.files.path()}, {"PPROF_TMPDIR", b.files.path()}};
  CliResult tags = runProgram({findTool("go"), "tool", "pprof", "-tags", file}, env);
  INFO(tags.out << tags.err);
  REQUIRE(tags.exit_code == 0);
  CHECK(tags.out.find("state") != std::string::npos);
  CHECK(tags.out.find("sleep") != std::string::npos);
  CHECK(tags.out.find("running") != std::string::npos);
  CliResult sleeping = runProgram({findTool("go"), "tool", "pprof", "-top", "-tagfocus=state=sleep", file}, env);
  REQUIRE(sleeping.exit_code == 0);
  CHECK(sleeping.out.find("sleepForever") != std::string::npos);
  CHECK(sleeping.out.find(kHot) == std::string::npos);
}

// tests/targets/uninterrupted.cpp: threads in pause, epoll_wait, poll (twice), sleep and futex, each of which a
// signal or a ptrace stop would make return early (futex: restart), which the thread would print. Each wait gets
// the rate's samples, from one stack.
void checkWallWaitsUntouched(ScenarioAgent agent, const std::string& program = "uninterrupted") {
  Uninterrupted u(agent, {}, program);
  CliResult r = runCli({"profile", std::to_string(u.target.pid()), "-d", "1s", "--mode", "wall", "--format", "folded"},
                       u.dir.path());
  INFO(r.err << r.out);
  REQUIRE(r.exit_code == 0);
  for (const char* function :
       {"waitInPause()", "waitInEpoll()", "waitInPoll()", "waitInSleep()", "pollUnlessStopping(int)",
        "futexWait(int*)"}) {
    INFO(function);
    const size_t at = r.out.find(std::string("(anonymous namespace)::") + function);
    REQUIRE(at != std::string::npos);
    const size_t end = r.out.find('\n', at);
    const uint64_t samples = std::stoull(r.out.substr(r.out.rfind(' ', end) + 1));
    CHECK(samples == Approx(100).epsilon(0.2));  // 1 s at 100 Hz, all from one stack
  }
  checkNoWaitReturnedEarly(u);
}

// tests/targets/uninterrupted.cpp, alternate mode: two threads nap in turn along two chains of calls whose nap has
// the same syscall line (same call, arguments, stack pointer and pc), for 10 to 30 ms drawn at random, so each
// spends half its time in each chain, and is almost never seen running. So must its samples go: a stack kept for
// as long as the syscall line reads the same would give one chain them all.
void checkWallFollowsChains(ScenarioAgent agent, const std::string& program = "uninterrupted") {
  Uninterrupted u(agent, {"alternate"}, program);
  CliResult r = runCli({"profile", std::to_string(u.target.pid()), "-d", "3s", "--mode", "wall", "--threads",
                        "--format", "folded"},
                       u.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string ns = "(anonymous namespace)::";
  std::map<std::string, std::pair<uint64_t, uint64_t>> chains;  // by thread: samples in the first and second chain
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const bool first = line.find(ns + "alternateInner1()") != std::string::npos;
    if (!first && line.find(ns + "alternateInner2()") == std::string::npos) continue;
    INFO(line);
    // Each inner function under its own outer one: a stack read while its thread went from one chain to the other
    // would mix them.
    const std::string chain = first ? ns + "alternateOuter1();" + ns + "alternateInner1()"
                                    : ns + "alternateOuter2();" + ns + "alternateInner2()";
    CHECK(line.find(chain) != std::string::npos);
    const uint64_t samples = std::stoull(line.substr(line.rfind(' ') + 1));
    auto& [in_first, in_second] = chains[line.substr(0, line.find(';'))];
    (first ? in_first : in_second) += samples;
  }
  REQUIRE(chains.size() == 2);
  for (const auto& [thread, counts] : chains) {
    const auto [in_first, in_second] = counts;
    INFO(thread << ": " << in_first << " samples in the first chain, " << in_second << " in the second");
    CHECK(in_first + in_second >= 250);  // nearly all of 3 s at 100 Hz go to the naps
    // Some 150 naps of random length in 3 s: each chain's share is 50% give or take 5 (one standard deviation).
    CHECK(in_first >= (in_first + in_second) * 3 / 10);
    CHECK(in_second >= (in_first + in_second) * 3 / 10);
  }
  checkNoWaitReturnedEarly(u);
}

}  // namespace

TEST_CASE("profile --mode wall: a thread back in the same wait along another chain of calls gets that chain") {
  SECTION("agent") { checkWallFollowsChains(ScenarioAgent::kPreload); }
  SECTION("agent, frame pointers") { checkWallFollowsChains(ScenarioAgent::kPreload, "uninterrupted_fp"); }
  SECTION("ptrace") { checkWallFollowsChains(ScenarioAgent::kNone); }
  SECTION("ptrace, frame pointers") { checkWallFollowsChains(ScenarioAgent::kNone, "uninterrupted_fp"); }
}

TEST_CASE("profile --mode wall: every thread at the rate, with its state from the stack analysis") {
  Burner b;
  checkWallEveryThread(b, "agent");
}

TEST_CASE("profile --mode wall without an agent: every thread at the rate through ptrace, with its state") {
  Burner b("cpu_burner", {}, false);
  checkWallEveryThread(b, "ptrace");
  CHECK(b.target.alive());
}

TEST_CASE("profile --mode wall: threads asleep where they can be read are sampled without a signal, none wakes") {
  checkWallWaitsUntouched(ScenarioAgent::kPreload);
}

TEST_CASE("profile --mode wall without an agent: sleeping threads are read where they sleep, never stopped") {
  checkWallWaitsUntouched(ScenarioAgent::kNone);
}

TEST_CASE("profile --mode wall: the same in a program built with frame pointers, through the agent and ptrace") {
  SECTION("agent") { checkWallWaitsUntouched(ScenarioAgent::kPreload, "uninterrupted_fp"); }
  SECTION("ptrace") { checkWallWaitsUntouched(ScenarioAgent::kNone, "uninterrupted_fp"); }
}

TEST_CASE("profile without an agent: cpu samples through ptrace show the 3:1 split, and go tool pprof reads them") {
  Burner b("cpu_burner", {}, false);
  const std::string file = b.files.path() + "/cpu.pb.gz";
  const double cpu_before = cpuSeconds(b, kBurners);
  const auto start = std::chrono::steady_clock::now();
  json summary = profileJson(b, {"-d", "4s", "-r", "250", "-o", file});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = cpuSeconds(b, kBurners) - cpu_before;
  CHECK(summary.at("source") == "ptrace");
  CHECK(summary.at("mode") == "cpu");
  // Samples follow the CPU time the burners used, as through the agent (see the test of --rate above).
  const double duration = summary.at("duration_ns").get<double>() / 1e9;
  const double samples = summary.at("samples").get<double>();
  INFO("samples " << samples << ", CPU " << cpu << " s over " << wall << " s");
  CHECK(samples >= cpu * (duration / wall) * 250 * 0.7);
  CHECK(samples <= cpu * 250 * 1.3);
  const json& top = summary.at("top");
  REQUIRE(top.size() >= 2);
  CHECK(top[0].at("function").get<std::string>().find(kHot) != std::string::npos);
  checkShares(top[0].at("flat_fraction").get<double>(), top[1].at("flat_fraction").get<double>(), "--json top");
  std::set<std::string> names;
  for (const auto& t : summary.at("threads")) names.insert(t.at("name").get<std::string>());
  CHECK(names == std::set<std::string>{"burner-0", "burner-1"});  // the sleeper and main used no CPU
  bool noted = false;
  for (const auto& note : summary.at("notes"))
    noted = noted || note.get<std::string>().rfind("taken through ptrace: ", 0) == 0;
  CHECK(noted);

  CliResult pprof = runProgram({findTool("go"), "tool", "pprof", "-top", file},
                               {{"HOME", b.files.path()}, {"PPROF_TMPDIR", b.files.path()}});
  INFO(pprof.out << pprof.err);
  REQUIRE(pprof.exit_code == 0);
  checkShares(flatShare(pprof.out, kHot), flatShare(pprof.out, kCold), "go tool pprof -top");

  CliResult text = runCli({"profile", b.pid(), "-d", "500ms", "-o", b.files.path() + "/short.folded"}, b.dir.path());
  INFO(text.out << text.err);
  CHECK(text.out.find(" samples of process " + b.pid() + " through ptrace over ") != std::string::npos);
  CHECK(b.target.alive());
}

TEST_CASE("profile without an agent: a thread a debugger traces is counted as dropped, the others sampled") {
  Burner b("cpu_burner", {}, false);
  TracedByTest debugged(b.tids.at("burner-0"), TracedByTest::Hold::kRunning);
  const double traced_before = cpuSeconds(b, {"burner-0"});
  const double other_before = cpuSeconds(b, {"burner-1"});
  const auto start = std::chrono::steady_clock::now();
  json summary = profileJson(b, {"-d", "2s"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Each burner's samples (taken, or dropped) follow the CPU it used, as in the test of --rate above: between
  // what it used in the window prorated to the profile's duration, and all of it.
  const double prorate = summary.at("duration_ns").get<double>() / 1e9 / wall;
  const double traced = (cpuSeconds(b, {"burner-0"}) - traced_before) * 100;
  const double other = (cpuSeconds(b, {"burner-1"}) - other_before) * 100;
  std::map<std::string, double> per_thread;
  for (const auto& t : summary.at("threads")) per_thread[t.at("name")] = t.at("samples");
  const double dropped = summary.at("dropped");
  INFO("burner-0: " << dropped << " dropped for " << traced / 100 << " s of CPU; burner-1: " << per_thread["burner-1"]
                    << " samples for " << other / 100 << " s");
  CHECK(per_thread.count("burner-0") == 0);
  CHECK(per_thread["burner-1"] >= other * prorate * 0.7);
  CHECK(per_thread["burner-1"] <= other * 1.3);
  CHECK(dropped >= traced * prorate * 0.7);
  CHECK(dropped <= traced * 1.3);
  CHECK(b.target.alive());
}

TEST_CASE("profile: --tid and --name keep only those threads") {
  Burner b;
  json by_name = profileJson(b, {"-d", "1s", "--name", "burner-1"});
  REQUIRE(by_name.at("threads").size() == 1);
  CHECK(by_name.at("threads")[0].at("name") == "burner-1");
  json by_tid = profileJson(b, {"-d", "1s", "--tid", std::to_string(b.tids.at("burner-0"))});
  REQUIRE(by_tid.at("threads").size() == 1);
  CHECK(by_tid.at("threads")[0].at("tid") == b.tids.at("burner-0"));
}

TEST_CASE("profile: nothing runs in the target before or after, a second profile gets busy, a stack dump works") {
  Burner b;
  const size_t idle_threads = threadCount(b);
  CHECK(timerCount(b) == 0);

  auto first = std::async(std::launch::async, [&] { return runCli({"profile", b.pid(), "-d", "3s"}, b.dir.path()); });
  // While it runs: one CPU timer per thread of the program and one more thread, the profile thread.
  REQUIRE(eventually([&] { return timerCount(b) >= 4; }));
  CHECK(threadCount(b) == idle_threads + 1);

  CliResult second = runCli({"profile", b.pid(), "-d", "1s"}, b.dir.path());
  CHECK(second.exit_code == 5);
  CHECK(second.err.find("already running") != std::string::npos);
  CHECK(second.err.find("ends in") != std::string::npos);

  CliResult stack = runCli({"stack", b.pid(), "--json"}, b.dir.path());
  INFO(stack.err);
  REQUIRE(stack.exit_code == 0);
  json dump = json::parse(stack.out);
  bool burner_frames = false;
  for (const auto& t : dump.at("threads")) {
    if (t.at("tid") != b.tids.at("burner-0")) continue;
    for (const auto& f : t.at("frames")) burner_frames |= f.value("function", "").find("burner") != std::string::npos;
  }
  CHECK(burner_frames);

  CliResult done = first.get();
  CHECK(done.exit_code == 0);
  CHECK(done.out.find(kHot) != std::string::npos);
  CHECK(eventually([&] { return threadCount(b) == idle_threads && timerCount(b) == 0; }));
}

TEST_CASE("profile: a client that goes away ends the profile, and the agent serves again") {
  Burner b;
  const size_t idle_threads = threadCount(b);
  pid_t client = spawnCli({"profile", b.pid(), "-d", "30s"}, b.dir.path());
  REQUIRE(eventually([&] { return timerCount(b) >= 4; }));
  ::kill(client, SIGKILL);
  int status = 0;
  waitpid(client, &status, 0);
  // The profile thread sees the hang-up at once: no thread and no timer are left long before the 30 s.
  CHECK(eventually([&] { return threadCount(b) == idle_threads && timerCount(b) == 0; }, 3s));
  json again = profileJson(b, {"-d", "500ms"});
  CHECK(again.at("samples").get<uint64_t>() > 0);
  CHECK(b.target.alive());
}

// Thirty seconds of CPU samples, as an incident-length profile would take, then a wall-clock one: timers armed
// and disarmed for threads that come and go, samples taken while libraries are mapped and unmapped and exceptions
// unwind.
// The agent lists the target's threads again when the kernel's count of them moves, or when the shared agent saw a
// pthread_create; and once a second all the same. A burner started 0.2 s into a 2 s wall-clock profile, through
// pthread_create or through libc's own (as a runtime that starts threads with clone: only the kernel's count shows
// it), is sampled from the next check on, within 0.1 s: at nearly every tick after its start. Found only at the
// once-a-second listing, it would have half the ticks.
TEST_CASE("profile: a thread started during a profile is sampled from then on, however it was started") {
  for (const char* via : {"pthread", "libc"}) {
    INFO("started through " << via);
    Burner b("cpu_burner", {"--late", "1", "--late-via", via});
    BackgroundCli cli({"profile", b.pid(), "-d", "2s", "--mode", "wall", "--json"}, b.dir.path());
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (taskNamed(b.target.pid(), "cppops-profile") == 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(200ms);
    b.target.kill(SIGUSR1);
    REQUIRE(b.target.waitForOutput("late", 10s));
    REQUIRE(cli.wait(20s));
    json summary = json::parse(cli.out());
    INFO(summary.at("threads").dump());
    std::map<std::string, double> per_thread;
    for (const auto& t : summary.at("threads")) per_thread[t.at("name")] = t.at("samples").get<double>();
    CHECK(per_thread["late-0"] >= 0.7 * per_thread["sleeper"]);
  }
}

// A relay of burners, each of which starts its successor after 0.3 s and ends: the kernel's count of threads never
// moves, only the shared agent's count of pthread_create calls does, and each is sampled from the next check on.
// Found only at the once-a-second listing, a relay burner would be sampled for a fraction of the ticks.
// The relay burners are told by their tids (every thread but the main one and the announced ones): one that ended
// carries the name it was listed with, which may be the one it inherited if it was listed before it named itself.
TEST_CASE("profile: threads that replace one another, their number unchanged, are each sampled from the start") {
  Burner b("cpu_burner", {"--relay", "1"});
  json summary = profileJson(b, {"-d", "3s", "--mode", "wall"});
  INFO(summary.at("threads").dump());
  double relays = 0, sleeper = 0;
  for (const auto& t : summary.at("threads")) {
    const auto tid = t.at("tid").get<pid_t>();
    const double samples = t.at("samples").get<double>();
    if (tid == b.tids.at("sleeper")) sleeper = samples;
    if (tid != b.target.pid() &&
        std::none_of(b.tids.begin(), b.tids.end(), [&](const auto& announced) { return announced.second == tid; }))
      relays += samples;
  }
  CHECK(relays >= 0.6 * sleeper);
}

TEST_CASE("profile: a target that churns threads, libraries and exceptions is profiled without a hang or crash") {
  TempDir dir;
  TargetProcess target({"thread_churn", {}, true, {}, {}}, dir.path());
  REQUIRE(target.waitForOutput("ready", 20s));
  REQUIRE_FALSE(target.waitForSocket().empty());
  const std::string pid = std::to_string(target.pid());
  const auto start = std::chrono::steady_clock::now();
  CliResult cpu = runCli({"profile", pid, "-d", "30s", "--json"}, dir.path(), std::nullopt, 90s);
  INFO(cpu.err);
  REQUIRE(cpu.exit_code == 0);
  CHECK(std::chrono::steady_clock::now() - start < 60s);
  json summary = json::parse(cpu.out);
  CHECK(summary.at("samples").get<uint64_t>() > 0);
  CliResult wall = runCli({"profile", pid, "-d", "3s", "--mode", "wall", "--json"}, dir.path());
  INFO(wall.err);
  CHECK(wall.exit_code == 0);
  CHECK(target.alive());
  CHECK(runCli({"stack", pid}, dir.path()).exit_code == 0);
}

TEST_CASE("profile: the linked agent (sanitized with the target in sanitizer builds) profiles too") {
  Burner b("cpu_burner_linked");
  json summary = profileJson(b, {"-d", "2s", "-r", "250"});
  CHECK(summary.at("samples").get<uint64_t>() > 0);
  const json& top = summary.at("top");
  REQUIRE_FALSE(top.empty());
  CHECK(top[0].at("function").get<std::string>().find(kHot) != std::string::npos);
  json wall = profileJson(b, {"-d", "1s", "--mode", "wall"});
  CHECK(wall.at("samples").get<uint64_t>() > 0);
}

TEST_CASE("profile: usage errors are caught before any sampling") {
  Burner b;
  auto bad_duration = runCli({"profile", b.pid(), "-d", "ten"}, b.dir.path());
  CHECK(bad_duration.exit_code == 2);
  CHECK(bad_duration.err.find("--duration") != std::string::npos);
  auto bad_mode = runCli({"profile", b.pid(), "--mode", "io"}, b.dir.path());
  CHECK(bad_mode.exit_code == 2);
  auto bad_name = runCli({"profile", b.pid(), "-o", b.files.path() + "/out.bin"}, b.dir.path());
  CHECK(bad_name.exit_code == 2);
  CHECK(bad_name.err.find("--format") != std::string::npos);
  const auto start = std::chrono::steady_clock::now();
  auto unwritable = runCli({"profile", b.pid(), "-o", "/nonexistent/dir/cpu.pb.gz"}, b.dir.path());
  CHECK(unwritable.exit_code == 2);
  CHECK(std::chrono::steady_clock::now() - start < 5s);  // not after a 10 s profile
  auto bad_rate = runCli({"profile", b.pid(), "-r", "0"}, b.dir.path());
  CHECK(bad_rate.exit_code == 2);
  auto heap_through_ptrace = runCli({"profile", b.pid(), "--heap", "--ptrace"}, b.dir.path());
  CHECK(heap_through_ptrace.exit_code == 2);
  CHECK(heap_through_ptrace.err.find("heap profiles need the agent") != std::string::npos);
  CHECK(timerCount(b) == 0);
}
