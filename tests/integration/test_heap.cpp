// cppops heap, cppops gc and the heap profiler against real targets (tests/targets/heap_target.cpp and
// alloc_torture.cpp), with glibc and, when installed, jemalloc and tcmalloc (scripts/setup.sh installs them).
//
// Tolerances, written down once:
//   - accuracy: at --heap-rate 64KiB a site keeping 16 MiB yields ~256 samples (standard deviation ~6%), so each
//     site's in-use figure within 20% of the truth and the 64:16 ratio within 20% of 4 fail about once in 10^4 runs;
//   - gc: the target holds 128 MiB free in 4 KiB chunks; trimming must give back at least 100 MiB of RSS.
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <tuple>

#include "proc/process.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
const std::string kLibDir = "/usr/lib/x86_64-linux-gnu/";

bool exists(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// A target with the agent preloaded, and an allocator preloaded after it ("" for glibc's).
struct Target {
  Target(std::vector<std::string> args, const std::string& allocator = "", std::map<std::string, std::string> env = {})
      : target({"heap_target", std::move(args), false, withPreload(std::move(env), allocator), {}}, dir.path()) {
    REQUIRE(target.waitForOutput("ready", 30s));
    REQUIRE_FALSE(target.waitForSocket().empty());
  }
  static std::map<std::string, std::string> withPreload(std::map<std::string, std::string> env, const std::string& allocator) {
    env["LD_PRELOAD"] = agentLibraryPath() + (allocator.empty() ? "" : " " + allocator);
    return env;
  }
  std::string pid() const { return std::to_string(target.pid()); }
  json cli(std::vector<std::string> args) {
    auto r = runCli(args, dir.path());
    INFO("cppops " << args[0] << ": " << r.err << r.out);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  }
  TempDir dir;
  TargetProcess target;
};

uint64_t figure(const json& j, const char* name) { return j.at(name).get<uint64_t>(); }

// The value of symbol `name` in the ELF file at `path` (its symbol table, else its dynamic one); 0 if absent.
uint64_t symbolValue(const std::string& path, const std::string& name) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  uint64_t value = 0;
  for (Elf_Scn* scn = elf != nullptr ? elf_nextscn(elf, nullptr) : nullptr; scn != nullptr && value == 0;
       scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM)) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    for (size_t i = 0; data != nullptr && shdr.sh_entsize != 0 && i < shdr.sh_size / shdr.sh_entsize; ++i) {
      GElf_Sym sym;
      const char* sym_name = gelf_getsym(data, static_cast<int>(i), &sym) != nullptr
                                 ? elf_strptr(elf, shdr.sh_link, sym.st_name)
                                 : nullptr;
      if (sym_name != nullptr && name == sym_name && sym.st_value != 0) {
        value = sym.st_value;
        break;
      }
    }
  }
  if (elf != nullptr) elf_end(elf);
  ::close(fd);
  return value;
}

// Where process `pid` mapped the start of the file whose path ends in `suffix` (offset 0), and that file's path.
std::pair<uint64_t, std::string> mappedAt(pid_t pid, const std::string& suffix) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode >> path;
    if (offset == "00000000" && path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
      return {std::stoull(range.substr(0, range.find('-')), nullptr, 16), path};
  }
  return {0, ""};
}

template <typename T>
T readRemote(pid_t pid, uint64_t at) {
  T value{};
  iovec local{&value, sizeof value};
  iovec remote{reinterpret_cast<void*>(at), sizeof value};
  REQUIRE(process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(sizeof value));
  return value;
}

// flat of a function in `cppops profile --heap --json --top 0`.
uint64_t flatOf(const json& profile, const std::string& function) {
  for (const auto& row : profile.at("top"))
    if (row.at("function").get<std::string>().find(function) != std::string::npos) return row.at("flat").get<uint64_t>();
  return 0;
}

// glibc's trim gives the pages of free chunks back (MADV_DONTNEED) and keeps the chunks: its free figure stays,
// only RSS drops. jemalloc and tcmalloc count released memory out of their free figures.
void checkGcReleases(Target& t, const std::string& allocator, const std::string& method) {
  json gc = t.cli({"gc", t.pid(), "--json"});
  INFO(gc.dump(2));
  CHECK(gc.at("allocator") == allocator);
  CHECK(gc.at("method") == method);
  CHECK(figure(gc.at("before"), "allocator_free_bytes") >= 100 * kMiB);
  if (allocator != "glibc")
    CHECK(figure(gc.at("after"), "allocator_free_bytes") + 100 * kMiB <= figure(gc.at("before"), "allocator_free_bytes"));
  CHECK(gc.at("released_bytes").get<int64_t>() >= static_cast<int64_t>(100 * kMiB));
  CHECK(figure(gc.at("before"), "rss_bytes") - figure(gc.at("after"), "rss_bytes") == gc.at("released_bytes").get<uint64_t>());
}

// argv with the agent preloaded (before `allocator`, when there is one) and sampling from start-up at `rate` gives
// the same exit status, output and errors as `alone`, its run without the agent.
void checkSameWithAgent(const std::vector<std::string>& argv, const CliResult& alone, const char* rate,
                        const std::string& socket_dir, const std::string& allocator = "") {
  INFO("CPPOPS_HEAP_PROFILE=" << rate);
  auto preloaded = runProgram(argv, {{"LD_PRELOAD", agentLibraryPath() + (allocator.empty() ? "" : " " + allocator)},
                                     {"CPPOPS_SOCKET_DIR", socket_dir},
                                     {"CPPOPS_HEAP_PROFILE", rate}});
  INFO(preloaded.err);
  CHECK(preloaded.exit_code == alone.exit_code);
  CHECK(preloaded.out == alone.out);
  CHECK(preloaded.err == alone.err);
}

// Runs check behind glibc ("") and behind jemalloc and tcmalloc preloaded after the agent.
template <typename Check>
void forEachAllocator(Check check) {
  for (const std::string allocator : {"", "libjemalloc.so.2", "libtcmalloc_minimal.so.4"}) {
    if (!allocator.empty() && !exists(kLibDir + allocator)) {
      WARN(allocator << " is not installed (scripts/setup.sh installs it): not tested behind it");
      continue;
    }
    INFO("allocator: " << (allocator.empty() ? "glibc" : allocator));
    check(allocator.empty() ? allocator : kLibDir + allocator);
  }
}

// sites mode: 64 and 16 MiB kept from two sites, 32 MiB churned through a third, sampled at 64 KiB.
void checkSites(const std::string& allocator) {
  Target t({"sites"}, allocator);
  json started = t.cli({"profile", t.pid(), "--heap", "--start", "--heap-rate", "64KiB", "--json"});
  CHECK(started.at("sampling") == true);
  CHECK(started.at("rate_bytes") == 65536);
  // A second start is refused while the first runs.
  auto again = runCli({"profile", t.pid(), "--heap", "--start"}, t.dir.path());
  CHECK(again.exit_code == 5);
  CHECK(again.err.find("already on") != std::string::npos);

  t.target.kill(SIGUSR1);
  REQUIRE(t.target.waitForOutput("allocated", 30s));
  json allocated = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "--sample-index", "alloc_space"});
  CHECK(allocated.at("sampling") == true);
  const double churned = static_cast<double>(flatOf(allocated, "churn"));
  CHECK(churned == Approx(32.0 * kMiB).epsilon(0.2));

  json inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  INFO(inuse.dump(2));
  CHECK(inuse.at("sampling") == false);
  CHECK(inuse.at("rate_bytes") == 65536);
  CHECK(inuse.at("dropped") == 0);
  const double large = static_cast<double>(flatOf(inuse, "keepLarge"));
  const double small = static_cast<double>(flatOf(inuse, "keepSmall"));
  CHECK(large == Approx(64.0 * kMiB).epsilon(0.2));
  CHECK(small == Approx(16.0 * kMiB).epsilon(0.2));
  REQUIRE(small > 0);
  CHECK(large / small == Approx(4.0).epsilon(0.2));
  // Everything churn() allocated was freed at once.
  CHECK(flatOf(inuse, "churn") < 1 * kMiB);
  CHECK(inuse.at("total").at("inuse_space").get<uint64_t>() < 100 * kMiB);

  json after = t.cli({"heap", t.pid(), "--json"});
  CHECK(after.at("heap_profiler").at("sampling") == false);
}

// `cppops heap --json` of `heap_target gc` with `threads` threads, all asleep: the 128 MiB it freed but glibc kept,
// as the kernel counts them, in [heap]; every thread's stack located, each in a mapping of its own.
void checkKernelViewOfGcTarget(const json& heap, int threads) {
  const json& kernel = heap.at("kernel");
  CHECK(figure(kernel, "rss_bytes") >= 128 * kMiB);
  CHECK(figure(kernel, "anonymous_bytes") + figure(kernel, "file_bytes") == figure(kernel, "rss_bytes"));
  CHECK(figure(kernel, "shared_bytes") + figure(kernel, "private_bytes") == figure(kernel, "rss_bytes"));
  CHECK(heap.at("thread_stacks").at("threads") == threads);
  CHECK(heap.at("thread_stacks").at("located") == threads);
  CHECK(heap.at("thread_stacks").at("mappings") == threads);
  CHECK(heap.at("largest_mappings")[0].at("path") == "[heap]");
}

}  // namespace

TEST_CASE("heap: glibc's figures, its arenas and the kernel's view of a process holding 128 MiB free") {
  Target t({"gc"});
  json heap = t.cli({"heap", t.pid(), "--json"});
  INFO(heap.dump(2));
  const json& allocator = heap.at("allocator");
  CHECK(allocator.at("name") == "glibc");
  CHECK(allocator.at("module").get<std::string>().find("libc.so.6") != std::string::npos);
  CHECK_FALSE(allocator.at("version").get<std::string>().empty());
  // mallinfo2: the 128 MiB freed lie in the main arena's free chunks, never given back by free() itself because
  // the last block still pins the top of the heap.
  CHECK(figure(allocator.at("figures"), "fordblks") >= 127 * kMiB);
  CHECK(figure(allocator, "free_bytes") == figure(allocator.at("figures"), "fordblks"));
  CHECK(figure(allocator, "in_use_bytes") ==
        figure(allocator.at("figures"), "uordblks") + figure(allocator.at("figures"), "hblkhd"));
  REQUIRE_FALSE(allocator.at("arenas").empty());
  CHECK(allocator.at("arenas")[0].at("arena") == 0);
  CHECK(figure(allocator.at("arenas")[0], "system_bytes") >= 128 * kMiB);

  // Two threads, both asleep in a system call or asking: the main thread's [stack] and the agent's own.
  checkKernelViewOfGcTarget(heap, 2);
  CHECK(heap.at("largest_mappings").size() == 10);
  CHECK(heap.at("heap_profiler").at("interposed") == true);
  CHECK(heap.at("heap_profiler").at("sampling") == false);

  auto text = runCli({"heap", t.pid()}, t.dir.path());
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("allocator          glibc ") != std::string::npos);
  CHECK(text.out.find("\narenas\n") != std::string::npos);
  CHECK(text.out.find("[heap]") != std::string::npos);
}

TEST_CASE("heap without an agent: the kernel's view from /proc, the allocator named as needing the agent") {
  TempDir dir;
  TargetProcess t({"heap_target", {"gc"}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready", 30s));
  const std::string pid = std::to_string(t.pid());
  auto r = runCli({"heap", pid, "--json"}, dir.path());
  INFO(r.err << r.out);
  REQUIRE(r.exit_code == 0);
  const json heap = json::parse(r.out);
  CHECK(heap.at("source") == "proc");
  CHECK(heap.at("allocator").at("name") == "unknown");
  CHECK(heap.at("allocator").at("figures").empty());
  // One thread, asleep: the main thread's [stack].
  checkKernelViewOfGcTarget(heap, 1);
  CHECK(heap.at("heap_profiler").at("interposed") == false);

  auto text = runCli({"heap", pid}, dir.path());
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("allocator      no agent: only the kernel's view; start the process with "
                      "LD_PRELOAD=libcppops_agent.so") != std::string::npos);
  CHECK(text.out.find("\nunknown figures\n") == std::string::npos);  // no section for an allocator unseen
  CHECK(text.out.find("[heap]") != std::string::npos);

  // gc works inside the process only.
  auto gc = runCli({"gc", pid}, dir.path());
  CHECK(gc.exit_code == 3);
  CHECK(gc.err.find("has no cppops agent") != std::string::npos);
}

TEST_CASE("gc: malloc_trim gives glibc's free memory back, and the figures before and after say so") {
  Target t({"gc"});
  checkGcReleases(t, "glibc", "malloc_trim(0)");
  auto text = runCli({"gc", t.pid()}, t.dir.path());
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("glibc malloc_trim(0) returned") != std::string::npos);
  CHECK(text.out.find("released ") != std::string::npos);
}

TEST_CASE("heap and gc: jemalloc and tcmalloc are detected by their own functions and purged their own way") {
  for (const auto& [library, name, method] :
       {std::tuple<std::string, std::string, std::string>{"libjemalloc.so.2", "jemalloc", "mallctl(\"arena.4096.purge\")"},
        {"libtcmalloc_minimal.so.4", "tcmalloc", "MallocExtension_ReleaseFreeMemory()"}}) {
    if (!exists(kLibDir + library)) {
      WARN(library << " is not installed (scripts/setup.sh installs it): " << name << " not tested");
      continue;
    }
    Target t({"gc"}, kLibDir + library);
    json heap = t.cli({"heap", t.pid(), "--json"});
    INFO(heap.dump(2));
    CHECK(heap.at("allocator").at("name") == name);
    CHECK(heap.at("allocator").at("module") == kLibDir + library);
    CHECK_FALSE(heap.at("allocator").at("version").get<std::string>().empty());
    CHECK(figure(heap.at("allocator"), "free_bytes") >= 100 * kMiB);
    CHECK(heap.at("allocator").at("arenas").empty());
    checkGcReleases(t, name, method);
  }
}

TEST_CASE("heap profile: two sites keeping 64 and 16 MiB show within 20% and 4:1, churn shows allocated, not in use") {
  forEachAllocator(checkSites);
}

// Behind glibc the free check finds a block's end from its chunk header; behind jemalloc and tcmalloc it asks their
// malloc_usable_size. gc mode allocates 32,768 blocks of 4 KiB at start-up, sampled from the environment (some 2,000
// samples), and frees all but the last: a sampled block whose free went unnoticed would still count as in use.
TEST_CASE("heap profile: frees of 32768 distinct blocks find every sampled one behind glibc and jemalloc and tcmalloc") {
  forEachAllocator([](const std::string& allocator) {
    Target t({"gc"}, allocator, {{"CPPOPS_HEAP_PROFILE", "65536"}});
    json allocated = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "--sample-index", "alloc_space"});
    json inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
    INFO(inuse.dump(2));
    CHECK(static_cast<double>(flatOf(allocated, "allocateAndFreeMost")) == Approx(128.0 * kMiB).epsilon(0.2));
    CHECK(flatOf(inuse, "allocateAndFreeMost") < 1 * kMiB);
  });
}

// Every block sampled: the slot table doubles to 131,072 slots as the 32,769th sample comes in, near the end of the
// allocations, and its records move over 16 slots at a time, at each sample and each sampled free. The frees
// therefore start while most of them are still in the old table, where they must be found and taken out.
TEST_CASE("heap profile: frees while the sampled blocks move to a larger table find every one of them") {
  Target t({"gc"}, "glibc", {{"CPPOPS_HEAP_PROFILE", "1"}});
  json allocated = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "--sample-index", "alloc_objects"});
  json inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  INFO(inuse.dump(2));
  CHECK(flatOf(allocated, "allocateAndFreeMost") == 32768);
  CHECK(flatOf(inuse, "allocateAndFreeMost") == 4096);
}

// 2,060 blocks of 4 KiB, each sampled: the table doubles to 8,192 slots at 2,049 live samples, a few dozen samples
// before the program idles, and its 4,096 old slots move over 16 at each sample and sampled free after that, so
// most are still to move when the profile is read, and after 64 frees. Each block must count once, wherever it is.
TEST_CASE("heap profile: read while the sampled blocks move to a larger table, each block counts once") {
  Target t({"hold", "2060"}, "", {{"CPPOPS_HEAP_PROFILE", "1"}});
  json inuse = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0"});
  CHECK(flatOf(inuse, "holdNested") == 2060 * 4096);
  t.target.kill(SIGUSR1);
  REQUIRE(t.target.waitForOutput("freed 64"));
  inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  CHECK(flatOf(inuse, "holdNested") == (2060 - 64) * 4096);
}

// The folded lines through holdNested(), counted by their in-use space: "64 of 36864, 136 of 40960".
std::string nestedLines(const std::string& folded_file) {
  std::map<uint64_t, size_t> lines;
  std::istringstream text(cppops::proc::readFile(folded_file).value_or(""));
  for (std::string line; std::getline(text, line);)
    if (line.find("holdNested") != std::string::npos) ++lines[std::stoull(line.substr(line.rfind(' ') + 1))];
  std::string counted;
  for (const auto& [bytes, count] : lines)
    counted += (counted.empty() ? "" : ", ") + std::to_string(count) + " of " + std::to_string(bytes);
  return counted;
}

// 2,000 blocks of 4 KiB, each sampled, from 200 distinct stacks (10 blocks each): a profile is read 64 stacks per
// hold of the sampler's lock, so these take four. Each stack must come out once, with exactly its blocks, in a read
// while sampling goes on and in the read that stops it. Sampling from start-up, the agent's own start is not in it.
TEST_CASE("heap profile: a read of 200 stacks, taken a few at a time, has each once with exactly its blocks") {
  Target t({"hold", "2000", "200"}, "", {{"CPPOPS_HEAP_PROFILE", "1"}});
  const std::string file = t.dir.path() + "/heap.folded";
  json first = t.cli({"profile", t.pid(), "--heap", "--json", "-o", file});
  CHECK(first.at("dropped") == 0);
  CHECK(nestedLines(file) == "200 of 40960");
  const std::string folded = cppops::proc::readFile(file).value_or("");
  INFO(folded);
  CHECK(folded.find("cppops_agent_start") == std::string::npos);
  t.target.kill(SIGUSR1);  // frees blocks 0 to 63: one of each of the first 64 stacks
  REQUIRE(t.target.waitForOutput("freed 64"));
  json last = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "-o", file});
  CHECK(last.at("sampling") == false);
  CHECK(nestedLines(file) == "64 of 36864, 136 of 40960");
}

namespace {

// RSS of `heap_target mapped` behind `allocator` ("" for glibc) without the agent, from `cppops heap`'s kernel view.
uint64_t mappedRssAlone(const std::string& allocator) {
  TempDir dir;
  std::map<std::string, std::string> env;
  if (!allocator.empty()) env["LD_PRELOAD"] = allocator;
  TargetProcess alone({"heap_target", {"mapped"}, false, env, {}}, dir.path());
  REQUIRE(alone.waitForOutput("ready", 30s));
  auto r = runCli({"heap", std::to_string(alone.pid()), "--json"}, dir.path());
  REQUIRE(r.exit_code == 0);
  return figure(json::parse(r.out).at("kernel"), "rss_bytes");
}

}  // namespace

// At the default rate every large block is sampled, and taken as the allocator hands it out: behind jemalloc, whose
// large blocks start anywhere in their first page (and tcmalloc), a sample is asked for at a page's alignment (the
// free filter), and a zeroed one from jemalloc's own mallocx, which leaves fresh pages untouched where a memset
// would make all 512 MiB resident; a block grown in place keeps its start and is not copied. The process's RSS is
// what it is without the agent, and every free is seen.
TEST_CASE("heap profile: large blocks are sampled as the allocator hands them out, untouched, and their frees seen") {
  forEachAllocator([](const std::string& allocator) {
    const uint64_t alone = mappedRssAlone(allocator);
    Target t({"mapped"}, allocator, {{"CPPOPS_HEAP_PROFILE", "524288"}});
    json heap = t.cli({"heap", t.pid(), "--json"});
    INFO("RSS alone " << alone << ", with the agent sampling:\n" << heap.at("kernel").dump(2));
    CHECK(figure(heap.at("kernel"), "rss_bytes") < alone + 24 * kMiB);
    json inuse = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0"});
    INFO(inuse.dump(2));
    CHECK(static_cast<double>(flatOf(inuse, "callocUntouched")) == Approx(512.0 * kMiB).epsilon(0.01));
    CHECK(static_cast<double>(flatOf(inuse, "growUntouched")) == Approx(64.0 * kMiB).epsilon(0.01));
    t.target.kill(SIGUSR1);
    REQUIRE(t.target.waitForOutput("freed mapped"));
    inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
    CHECK(flatOf(inuse, "callocUntouched") == 0);
    CHECK(flatOf(inuse, "growUntouched") == 0);
  });
}

// Sampling switched on, off and on again at another rate: the entry points go back to counting, every thread
// draws its countdown for the new rate, and the table of sampled blocks grows from its first size to hold ~3,000
// live samples (16 KiB blocks at 16 KiB: each is sampled with probability 1 - 1/e).
TEST_CASE("heap profile: sampling stopped and started again at another rate holds thousands of live samples, within 20%") {
  Target t({"sites"});
  t.cli({"profile", t.pid(), "--heap", "--start", "--heap-rate", "4MiB", "--json"});
  json first = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  CHECK(first.at("rate_bytes") == 4 * kMiB);
  t.cli({"profile", t.pid(), "--heap", "--start", "--heap-rate", "16KiB", "--json"});
  t.target.kill(SIGUSR1);
  REQUIRE(t.target.waitForOutput("allocated", 30s));
  json inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  INFO(inuse.dump(2));
  CHECK(inuse.at("rate_bytes") == 16 * 1024);
  CHECK(inuse.at("dropped") == 0);
  CHECK(static_cast<double>(flatOf(inuse, "keepLarge")) == Approx(64.0 * kMiB).epsilon(0.2));
  CHECK(static_cast<double>(flatOf(inuse, "keepSmall")) == Approx(16.0 * kMiB).epsilon(0.2));
  CHECK(flatOf(inuse, "churn") < 1 * kMiB);
}

TEST_CASE("heap profile: go tool pprof reads the heap profile, in use and allocated") {
  Target t({"sites"});
  const std::string file = t.dir.path() + "/heap.pb.gz";
  t.cli({"profile", t.pid(), "--heap", "--start", "--heap-rate", "64KiB", "--json"});
  t.target.kill(SIGUSR1);
  REQUIRE(t.target.waitForOutput("allocated", 30s));
  json written = t.cli({"profile", t.pid(), "--heap", "--stop", "-o", file, "--json"});
  CHECK(written.at("output").at("format") == "pprof");
  const std::map<std::string, std::string> env{{"HOME", t.dir.path()}, {"PPROF_TMPDIR", t.dir.path()}};
  CliResult top = runProgram({"/usr/bin/go", "tool", "pprof", "-top", file}, env);
  INFO("go tool pprof -top (install golang-go: scripts/setup.sh):\n" << top.out << top.err);
  REQUIRE(top.exit_code == 0);
  CHECK(top.out.find("Type: inuse_space") != std::string::npos);
  // The first row after the header is the site keeping the most.
  const size_t header = top.out.find("flat%");
  REQUIRE(header != std::string::npos);
  const size_t first_row = top.out.find('\n', header) + 1;
  CHECK(top.out.substr(first_row, top.out.find('\n', first_row) - first_row).find("keepLarge") != std::string::npos);
  CHECK(top.out.find("keepSmall") != std::string::npos);
  CliResult alloc = runProgram({"/usr/bin/go", "tool", "pprof", "-sample_index=alloc_space", "-top", file}, env);
  CHECK(alloc.out.find("Type: alloc_space") != std::string::npos);
  CHECK(alloc.out.find("churn") != std::string::npos);
}

TEST_CASE("heap profile: a steady leak grows between two reads while sampling stays on") {
  Target t({"leak"});
  const std::string first_file = t.dir.path() + "/first.pb.gz";
  t.cli({"profile", t.pid(), "--heap", "--start", "--heap-rate", "64KiB", "--json"});
  std::this_thread::sleep_for(500ms);
  json first = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "-o", first_file});
  std::this_thread::sleep_for(1500ms);
  json grown = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "--base", first_file});
  json second = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
  const uint64_t before = flatOf(first, "leakSteadily");
  const uint64_t growth = flatOf(grown, "leakSteadily");
  const uint64_t after = flatOf(second, "leakSteadily");
  INFO("leakSteadily in use: " << before << ", grown by " << growth << ", then " << after);
  CHECK(before > 0);
  // 64 KiB every ~5 ms: at least another 6 MiB in 1.5 s, whatever the machine's load does to the sleeps.
  CHECK(after > before + 6 * kMiB);
  // --base: only the growth, which is what the second read adds to the first (the third read came a little later).
  CHECK(growth > 6 * kMiB);
  CHECK(growth <= after - before);
  CHECK(flatOf(grown, "churn") == 0);
  CHECK(flatOf(second, "churn") < 1 * kMiB);
  bool noted = false;
  for (const auto& note : grown.at("notes")) noted = noted || note.get<std::string>().find("growth since") != std::string::npos;
  CHECK(noted);
}

TEST_CASE("heap profile: one run over --duration switches sampling on and off again, with folded and SVG outputs") {
  Target t({"leak"});
  const std::string folded = t.dir.path() + "/heap.folded";
  json summary = t.cli({"profile", t.pid(), "--heap", "-d", "1s", "--heap-rate", "64KiB", "-o", folded, "--json"});
  CHECK(summary.at("sampling") == false);
  CHECK(summary.at("sampled_ns").get<uint64_t>() >= 1000000000ull);
  auto text = cppops::proc::readFile(folded).value_or("");
  CHECK(text.find("leakSteadily") != std::string::npos);
  CHECK(text.find("main;") != std::string::npos);
  auto svg = runCli({"profile", t.pid(), "--heap", "-d", "300ms", "--format", "svg"}, t.dir.path());
  CHECK(svg.exit_code == 0);
  CHECK(svg.out.find("<svg") != std::string::npos);
  CHECK(svg.out.find("inuse_space") != std::string::npos);
  json heap = t.cli({"heap", t.pid(), "--json"});
  CHECK(heap.at("heap_profiler").at("sampling") == false);
}

// folly, for one, frees through jemalloc's sdallocx with the size it asked for, where a sampled block is 8 bytes
// larger and may belong to the next size class: the agent's sdallocx (tcmalloc's tc_free_sized, C23's free_sized
// too) sends sampled blocks through free, which takes no size. heap_target calls its allocator's own.
TEST_CASE("heap profile: sized frees of sampled blocks reach the allocator without the size and are seen") {
  forEachAllocator([](const std::string& allocator) {
    Target t({"sized"}, allocator, {{"CPPOPS_HEAP_PROFILE", "1024"}});
    CHECK(t.target.out().find("sized: 32768 blocks, 0 overwritten") != std::string::npos);
    json allocated = t.cli({"profile", t.pid(), "--heap", "--json", "--top", "0", "--sample-index", "alloc_space"});
    json inuse = t.cli({"profile", t.pid(), "--heap", "--stop", "--json", "--top", "0"});
    INFO(inuse.dump(2));
    // Twice 32768 blocks of 136 B on average.
    CHECK(static_cast<double>(flatOf(allocated, "allocateAndFreeSized")) == Approx(2 * 32768 * 136.0).epsilon(0.2));
    CHECK(flatOf(inuse, "allocateAndFreeSized") == 0);
  });
}

TEST_CASE("heap profile: a process that allocates nothing meanwhile gets no samples and a note saying what to do") {
  Target t({"sites"});
  auto r = runCli({"profile", t.pid(), "--heap", "-d", "200ms"}, t.dir.path());
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("No samples.") != std::string::npos);
  CHECK(r.out.find("note: nothing was sampled over 2") != std::string::npos);  // 200 ms and a little more
  CHECK(r.out.find("one sample every 524288 allocated bytes") != std::string::npos);
  CHECK(r.out.find("--heap-rate (16KiB, say)") != std::string::npos);
  // Sampling every byte: the agent's own threads allocate as they answer, and none of that is the program's.
  json every_byte = t.cli({"profile", t.pid(), "--heap", "-d", "200ms", "--heap-rate", "1", "--json", "--top", "0"});
  INFO(every_byte.dump(2));
  CHECK(every_byte.at("total").at("alloc_objects") == 0);
  CHECK(every_byte.at("top").empty());
}

TEST_CASE("heap profile: the static agent says what it needs instead") {
  TempDir dir;
  TargetProcess t({"linked_target", {}, false, {}, {}}, dir.path());
  REQUIRE_FALSE(t.waitForSocket().empty());
  auto r = runCli({"profile", std::to_string(t.pid()), "--heap", "--start"}, dir.path());
  CHECK(r.exit_code == 5);
  CHECK(r.err.find("linked statically") != std::string::npos);
  CHECK(r.err.find("LD_PRELOAD=libcppops_agent.so") != std::string::npos);
  // heap itself works everywhere.
  CHECK(runCli({"heap", std::to_string(t.pid())}, dir.path()).exit_code == 0);
}

TEST_CASE("heap profile: usage errors") {
  TempDir dir;
  for (std::vector<std::string> args : {std::vector<std::string>{"profile", "1", "--heap", "--heap-rate", "0"},
                                        {"profile", "1", "--heap", "--heap-rate", "2GiB"},
                                        {"profile", "1", "--heap", "--sample-index", "bogus"},
                                        {"profile", "1", "--heap", "--start", "--stop"},
                                        {"profile", "1", "--start"},
                                        {"profile", "1", "--heap", "--mode", "wall"},
                                        {"profile", "1", "--heap", "-o", "x.json"},
                                        {"profile", "1", "--base", "x.pb.gz"},
                                        {"profile", "1", "--heap", "--base", "/nonexistent.pb.gz"},
                                        {"profile", "1", "--heap", "--base", "/etc/hostname"}}) {
    auto r = runCli(args, dir.path());
    INFO(args.back() << ": " << r.err);
    CHECK(r.exit_code == 2);
  }
}

TEST_CASE("interposition: every entry point, threads, fork, overflows give the same results with sampling at every byte, every 4 KiB, and off") {
  TempDir dir;
  const auto plain = runProgram({targetPath("alloc_torture")}, {});
  REQUIRE(plain.exit_code == 0);
  CHECK(plain.out.find("fork: 20 of 20 children") != std::string::npos);
  CHECK(plain.out.find("calloc overflow: null, errno ENOMEM") != std::string::npos);
  for (const char* rate : {"1", "4096", "0"})
    checkSameWithAgent({targetPath("alloc_torture")}, plain, rate, dir.path());
  // tcmalloc and jemalloc behind the agent: the same as each alone. Samples there are aligned to 64 bytes (every
  // 4 KiB) and to a page (every 512 KiB), and behind jemalloc zeroed and grown through its mallocx and rallocx.
  // (jemalloc has no pvalloc: glibc's answers, and jemalloc crashes on that block with or without the agent.)
  for (const auto& [allocator, mode] : {std::pair<std::string, std::string>{"libtcmalloc_minimal.so.4", "work"},
                                        {"libjemalloc.so.2", "work-without-pvalloc"}}) {
    if (!exists(kLibDir + allocator)) {
      WARN(allocator << " is not installed (scripts/setup.sh installs it): not tested behind it");
      continue;
    }
    INFO("behind " << allocator);
    auto alone = runProgram({targetPath("alloc_torture"), mode}, {{"LD_PRELOAD", kLibDir + allocator}});
    CHECK(alone.exit_code == 0);
    CHECK(alone.out.find("threads: 0 failures") != std::string::npos);
    for (const char* rate : {"4096", "524288"})
      checkSameWithAgent({targetPath("alloc_torture"), mode}, alone, rate, dir.path(), kLibDir + allocator);
  }
}

// With an allocator other than glibc, the free check finds a block's tag through the allocator's own
// malloc_usable_size. page_edge_malloc aborts on a free, realloc or malloc_usable_size of anything it never returned,
// and its small blocks straddle a page boundary.
TEST_CASE("interposition: behind an allocator other than glibc every pointer handed back is one it returned") {
  TempDir dir;
  const std::string edge = targetPath("libpage_edge_malloc.so");
  auto alone = runProgram({targetPath("alloc_torture")}, {{"LD_PRELOAD", edge}});
  INFO(alone.err);
  REQUIRE(alone.exit_code == 0);
  CHECK(alone.out.find("fork: 20 of 20 children") != std::string::npos);
  for (const char* rate : {"1", "4096"})
    checkSameWithAgent({targetPath("alloc_torture")}, alone, rate, dir.path(), edge);
}

// A library loaded with RTLD_DEEPBIND binds free and realloc to glibc's own, past the agent: sampled or not, the
// blocks it is given must be the allocator's own. deepbind_host has such a plugin free and grow its blocks, and frees
// blocks the plugin allocated.
TEST_CASE("interposition: a library loaded with RTLD_DEEPBIND frees and grows sampled blocks as glibc's own") {
  TempDir dir;
  const std::string plugin = targetPath("libdeepbind_plugin.so");
  auto plain = runProgram({targetPath("deepbind_host"), plugin}, {});
  INFO(plain.err);
  REQUIRE(plain.exit_code == 0);
  CHECK(plain.out == "deepbind: 40 rounds, 15360 blocks checked, 0 bad\n");
  for (const char* rate : {"1", "4096"})
    checkSameWithAgent({targetPath("deepbind_host"), plugin}, plain, rate, dir.path());
  // The sampler never heard of the blocks the plugin freed; the 4 MiB the program then keeps are counted as they are.
  TargetProcess t({"deepbind_host", {plugin, "hold"}, true, {{"CPPOPS_HEAP_PROFILE", "4096"}}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready", 30s));
  REQUIRE_FALSE(t.waitForSocket().empty());
  auto r = runCli({"profile", std::to_string(t.pid()), "--heap", "--json", "--top", "0"}, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json inuse = json::parse(r.out);
  CHECK(static_cast<double>(flatOf(inuse, "keepBlocks")) == Approx(4.0 * kMiB).epsilon(0.2));
}

TEST_CASE("heap profile: an allocator without malloc_usable_size is not sampled and the error says why") {
  Target t({"sites"}, targetPath("libpage_edge_malloc_no_usable_size.so"));
  auto r = runCli({"profile", t.pid(), "--heap", "--start"}, t.dir.path());
  CHECK(r.exit_code == 5);
  CHECK(r.err.find("has no malloc_usable_size of its own") != std::string::npos);
  CHECK(r.err.find("allocator's own tools") != std::string::npos);
  CHECK(t.cli({"heap", t.pid(), "--json"}).at("heap_profiler").at("sampling") == false);
}

// Under a valgrind tool that replaces the allocator, glibc's entry points hand out valgrind's blocks, which have no
// glibc chunk header to find a tag by.
TEST_CASE("heap profile: under valgrind's memcheck sampling is refused and the process runs on") {
  TempDir dir;
  TargetProcess t({"/usr/bin/valgrind", {"-q", "--tool=memcheck", targetPath("heap_target"), "sites"}, true, {}, {}},
                  dir.path());
  REQUIRE(t.waitForOutput("ready", 60s));
  REQUIRE_FALSE(t.waitForSocket().empty());
  const std::string pid = std::to_string(t.pid());
  auto r = runCli({"profile", pid, "--heap", "--start"}, dir.path());
  CHECK(r.exit_code == 5);
  CHECK(r.err.find("valgrind tool that replaces the allocator") != std::string::npos);
  CHECK(r.err.find("--tool=massif") != std::string::npos);
  CHECK(runCli({"heap", pid}, dir.path()).exit_code == 0);
}

TEST_CASE("interposition: sampling off, malloc and free go straight to glibc's, with no bootstrap block to mind") {
  // What an idle agent costs every allocation: one indirect jump. A block handed out from the bootstrap arena while
  // the agent looked the allocator up would make every free check for one for good (about 1 ns a free, seen when
  // failed lookups of sized frees glibc does not have allocated dlsym's error message there). Read from the agent's
  // own state in the target's memory, by its symbols.
  Target t({"sites"});
  const pid_t pid = t.target.pid();
  const auto [agent_base, agent_path] = mappedAt(pid, "/libcppops_agent.so.0.1.0");
  const auto [libc_base, libc_path] = mappedAt(pid, "/libc.so.6");
  REQUIRE(agent_base != 0);
  REQUIRE(libc_base != 0);
  const uint64_t free_check = symbolValue(agent_path, "_ZN6cppops5agent4heap12g_free_checkE");
  const uint64_t arena_top = symbolValue(agent_path, "_ZN6cppops5agent4heap12_GLOBAL__N_111g_arena_topE");
  const uint64_t hot = symbolValue(agent_path, "_ZN6cppops5agent4heap12_GLOBAL__N_15g_hotE");
  REQUIRE(free_check != 0);
  REQUIRE(arena_top != 0);
  REQUIRE(hot != 0);
  CHECK(readRemote<uint8_t>(pid, agent_base + free_check) == 0);
  CHECK(readRemote<uint64_t>(pid, agent_base + arena_top) == 0);
  // g_hot starts with the routes: malloc, calloc, free.
  CHECK(readRemote<uint64_t>(pid, agent_base + hot) == libc_base + symbolValue(libc_path, "malloc"));
  CHECK(readRemote<uint64_t>(pid, agent_base + hot + 16) == libc_base + symbolValue(libc_path, "free"));
}

TEST_CASE("interposition: a double free still reaches glibc, which catches it") {
  TempDir dir;
  auto plain = runProgram({targetPath("alloc_torture"), "doublefree"}, {});
  auto preloaded = runProgram({targetPath("alloc_torture"), "doublefree"},
                              {{"LD_PRELOAD", agentLibraryPath()}, {"CPPOPS_SOCKET_DIR", dir.path()},
                               {"CPPOPS_HEAP_PROFILE", "1"}});
  CHECK(plain.exit_code == 128 + SIGABRT);
  CHECK(preloaded.exit_code == 128 + SIGABRT);
  CHECK(preloaded.err.find("double free detected") != std::string::npos);
  CHECK(preloaded.out.empty());
}

TEST_CASE("interposition: profiles read and stopped while threads churn every entry point") {
  TempDir dir;
  TargetProcess t({"alloc_torture", {"forever"}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());
  const std::string pid = std::to_string(t.pid());
  for (const char* rate : {"1", "4096", "512KiB"}) {
    CHECK(runCli({"profile", pid, "--heap", "--start", "--heap-rate", rate}, dir.path()).exit_code == 0);
    CHECK(runCli({"profile", pid, "--heap", "--json"}, dir.path()).exit_code == 0);
    CHECK(runCli({"profile", pid, "--heap", "--stop", "--json"}, dir.path()).exit_code == 0);
  }
  t.kill(SIGTERM);
  auto status = t.wait(30s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(t.out().find("ok") != std::string::npos);
}

TEST_CASE("interposition: bash, python3 and g++ under the preload, sampling every allocation or every 4 KiB, give identical results") {
  TempDir dir;
  const std::map<std::string, std::string> plain_env{};
  const std::string script =
      "for i in $(seq 1 200); do a[$i]=$((i * i)); done; echo ${#a[@]} ${a[200]}; "
      "printf '%s\\n' c b a | sort | tr '\\n' ' '; echo; x=$(cat /proc/self/comm); echo $x";
  const std::string python =
      "import json, collections; d = {str(i): [i] * (i % 7) for i in range(20000)}; "
      "print(len(json.dumps(d)), collections.Counter(len(v) for v in d.values()).most_common(2))";
  const std::string source = dir.path() + "/hello.cpp";
  {
    std::ofstream out(source);
    out << "#include <iostream>\n#include <map>\n#include <string>\n"
           "int main() { std::map<std::string, int> m; for (int i = 0; i < 1000; ++i) m[std::to_string(i)] = i;"
           " std::cout << m.size() << '\\n'; }\n";
  }
  for (const char* rate : {"1", "4096"}) {
    INFO("CPPOPS_HEAP_PROFILE=" << rate);
    const std::map<std::string, std::string> env{{"LD_PRELOAD", agentLibraryPath()}, {"CPPOPS_SOCKET_DIR", dir.path()},
                                                 {"CPPOPS_HEAP_PROFILE", rate}, {"CPPOPS_QUIET", "1"}};
    auto bash_plain = runProgram({"/bin/bash", "-c", script}, plain_env);
    auto bash_preloaded = runProgram({"/bin/bash", "-c", script}, env);
    CHECK(bash_plain.exit_code == 0);
    CHECK(bash_preloaded.exit_code == 0);
    CHECK(bash_preloaded.out == bash_plain.out);
    CHECK(bash_preloaded.err == bash_plain.err);

    auto py_plain = runProgram({"/usr/bin/python3", "-c", python}, plain_env);
    auto py_preloaded = runProgram({"/usr/bin/python3", "-c", python}, env);
    CHECK(py_plain.exit_code == 0);
    CHECK(py_preloaded.out == py_plain.out);
    CHECK(py_preloaded.err == py_plain.err);
  }
  // The compiler driver, cc1plus, as and ld, each with its own agent, sampling every 4 KiB: byte-identical binaries.
  const std::map<std::string, std::string> env{{"LD_PRELOAD", agentLibraryPath()}, {"CPPOPS_SOCKET_DIR", dir.path()},
                                               {"CPPOPS_HEAP_PROFILE", "4096"}, {"CPPOPS_QUIET", "1"}};
  auto cc_plain = runProgram({"/usr/bin/g++", "-O1", "-o", dir.path() + "/plain", source}, plain_env, 120s);
  auto cc_preloaded = runProgram({"/usr/bin/g++", "-O1", "-o", dir.path() + "/preloaded", source}, env, 120s);
  REQUIRE(cc_plain.exit_code == 0);
  REQUIRE(cc_preloaded.exit_code == 0);
  CHECK(cppops::proc::readFile(dir.path() + "/plain") == cppops::proc::readFile(dir.path() + "/preloaded"));
  CHECK(runProgram({dir.path() + "/preloaded"}, plain_env).out == "1000\n");
}

TEST_CASE("heap and gc: --help with examples, --json errors for a process without an agent") {
  TempDir dir;
  for (const char* command : {"heap", "gc"}) {
    auto help = runCli({command, "--help"}, dir.path());
    INFO(command);
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("Examples:") != std::string::npos);
    CHECK(help.out.find("--json") != std::string::npos);
    auto missing = runCli({command, "999999999", "--json"}, dir.path());
    CHECK(missing.exit_code == 3);
    CHECK(json::parse(missing.out).at("error").at("kind") == "no_agent");
  }
  auto profile = runCli({"profile", "--help"}, dir.path());
  CHECK(profile.out.find("--heap") != std::string::npos);
  CHECK(profile.out.find("--base") != std::string::npos);
}
