#include "symbolize/symbolizer.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "symbolize/debug_cache.h"

using cppops::ErrorKind;
using cppops::SourceFrame;
using cppops::Symbolizer;
using Catch::Matchers::Contains;

namespace {

// A copy of this binary exec'd with this variable set idles instead of testing: a target whose symbols we know.
constexpr char kIdleEnv[] = "CPPOPS_SYMBOLIZER_TEST_IDLE";

__attribute__((constructor)) void idleWhenAskedTo() {
  if (std::getenv(kIdleEnv) != nullptr) {
    for (;;) pause();
  }
}

// Keeps GCC from cloning or specializing the functions whose names and lines are checked; clang has no noipa.
#if defined(__clang__)
#define TEST_NOIPA __attribute__((noinline))
#else
#define TEST_NOIPA __attribute__((noipa))
#endif

struct Capture {
  uintptr_t pc;
  int line;
};

TEST_NOIPA uintptr_t returnAddress() {
  return reinterpret_cast<uintptr_t>(__builtin_return_address(0));
}

constexpr int kPlainFunctionLine = __LINE__ + 1;
TEST_NOIPA Capture plainFunction() {
  return Capture{returnAddress(), __LINE__};
}

__attribute__((always_inline)) inline Capture inlinedBody() {
  return Capture{returnAddress(), __LINE__};
}

struct InlineCapture {
  Capture inner;
  int call_line;
};

TEST_NOIPA InlineCapture inlineCaller() {
  return InlineCapture{inlinedBody(), __LINE__};
}

std::string baseName(const std::string& path) { return std::filesystem::path(path).filename().string(); }

std::unique_ptr<Symbolizer> symbolizerFor(pid_t pid) {
  auto symbolizer = Symbolizer::forProcess(pid);
  if (!symbolizer.ok()) FAIL(symbolizer.error().message);
  return std::move(symbolizer).value();
}

uintptr_t libcWrite() {
  // Straight from libc's handle: under ASan the global `write` is the sanitizer's interceptor.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(libc != nullptr);
  void* write_fn = dlsym(libc, "write");
  dlclose(libc);
  REQUIRE(write_fn != nullptr);
  return reinterpret_cast<uintptr_t>(write_fn);
}

uintptr_t loadBaseOf(uintptr_t addr) {
  Dl_info info{};
  REQUIRE(dladdr(reinterpret_cast<void*>(addr), &info) != 0);
  return reinterpret_cast<uintptr_t>(info.dli_fbase);
}

void checkPlainCallSite(const std::vector<SourceFrame>& frames, const Capture& capture) {
  REQUIRE(frames.size() == 1);
  CHECK_THAT(frames[0].function, Contains("plainFunction"));
  CHECK(baseName(frames[0].file) == "test_symbolizer.cpp");
  CHECK(std::abs(frames[0].line - capture.line) <= 1);
  CHECK_FALSE(frames[0].inlined);
}

// Kills and reaps a child on every way out of a test, failed assertions included.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ <= 0 || reaped_) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Reaps the child if it has exited, so a failed setup shows instead of a timeout.
  bool exited(int* status) {
    reaped_ = reaped_ || waitpid(pid_, status, WNOHANG) == pid_;
    return reaped_;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

[[noreturn]] void idleForever() {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (;;) pause();
}

constexpr int kCannotIsolate = 77;

bool copyThisBinary(const std::string& to) {
  std::error_code error;
  return std::filesystem::copy_file("/proc/self/exe", to, error);
}

[[noreturn]] void execIdle(const std::string& binary) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setenv(kIdleEnv, "1", 1);
  execl(binary.c_str(), binary.c_str(), static_cast<char*>(nullptr));
  _exit(127);
}

pid_t spawnIdle(const std::string& binary) {
  const pid_t pid = fork();
  if (pid == 0) execIdle(binary);
  return pid;
}

// The copy lives on a tmpfs mounted in the child's own mount namespace, so its path exists only from inside: the
// situation of a process in a container.
pid_t spawnIdleCopyInPrivateMount(const std::string& dir) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("tmpfs", dir.c_str(), "tmpfs", 0, nullptr) != 0 || !copyThisBinary(dir + "/copy")) {
    _exit(kCannotIsolate);
  }
  execIdle(dir + "/copy");
}

// Start of the mapping at file offset 0, i.e. the load base of a PIE; 0 if the child exits or never maps it.
uintptr_t waitForMapping(Child& child, const std::string& path, int* exit_status) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline && !child.exited(exit_status)) {
    std::ifstream maps("/proc/" + std::to_string(child.pid()) + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      unsigned long long start = 0;
      unsigned long long offset = 0;
      int path_at = 0;
      if (std::sscanf(line.c_str(), "%llx-%*x %*s %llx %*s %*s %n", &start, &offset, &path_at) == 2 &&
          offset == 0 && line.compare(static_cast<size_t>(path_at), std::string::npos, path) == 0) {
        return static_cast<uintptr_t>(start);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/cppops-symbolizer-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Where our pc would be in a child running another copy of this binary, loaded elsewhere.
uintptr_t inChild(uintptr_t child_base, uintptr_t our_pc) { return child_base + (our_pc - loadBaseOf(our_pc)); }

bool anyNoteContains(const Symbolizer& symbolizer, const std::string& text) {
  for (const std::string& note : symbolizer.notes()) {
    if (note.find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("symbolizes a call site in this binary", "[symbolizer]") {
  const Capture capture = plainFunction();
  auto symbolizer = symbolizerFor(getpid());

  const auto& frames = symbolizer->symbolize(capture.pc, true);
  checkPlainCallSite(frames, capture);
  CHECK(frames[0].address == capture.pc);
  CHECK(frames[0].module == std::filesystem::read_symlink("/proc/self/exe").string());
  CHECK(frames[0].module_offset == capture.pc - loadBaseOf(capture.pc));
  CHECK_FALSE(frames[0].module_unreadable);
  CHECK_FALSE(anyNoteContains(*symbolizer, "/proc/"));
}

TEST_CASE("symbolizes a function entry without the return-address adjustment", "[symbolizer]") {
  auto symbolizer = symbolizerFor(getpid());
  const auto entry = reinterpret_cast<uintptr_t>(&plainFunction);

  const auto& frames = symbolizer->symbolize(entry, false);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].function == "(anonymous namespace)::plainFunction()");
  CHECK(std::abs(frames[0].line - kPlainFunctionLine) <= 1);
}

TEST_CASE("caches per pc and per return-address flag", "[symbolizer]") {
  const Capture capture = plainFunction();
  auto symbolizer = symbolizerFor(getpid());

  const auto& first = symbolizer->symbolize(capture.pc, true);
  CHECK(&symbolizer->symbolize(capture.pc, true) == &first);
  CHECK(&symbolizer->symbolize(capture.pc, false) != &first);
}

TEST_CASE("reports the inline chain innermost first", "[symbolizer]") {
  const InlineCapture capture = inlineCaller();
  auto symbolizer = symbolizerFor(getpid());

  const auto& frames = symbolizer->symbolize(capture.inner.pc, true);
  REQUIRE(frames.size() == 2);
  CHECK_THAT(frames[0].function, Contains("inlinedBody"));
  CHECK(frames[0].inlined);
  CHECK(baseName(frames[0].file) == "test_symbolizer.cpp");
  CHECK(std::abs(frames[0].line - capture.inner.line) <= 1);
  CHECK_THAT(frames[1].function, Contains("inlineCaller"));
  CHECK_FALSE(frames[1].inlined);
  CHECK(baseName(frames[1].file) == "test_symbolizer.cpp");
  CHECK(std::abs(frames[1].line - capture.call_line) <= 1);
  CHECK(frames[0].address == capture.inner.pc);
  CHECK(frames[1].address == capture.inner.pc);
}

TEST_CASE("symbolizes a libc function from its symbol table", "[symbolizer]") {
  const uintptr_t write_fn = libcWrite();
  auto symbolizer = symbolizerFor(getpid());

  const auto& frames = symbolizer->symbolize(write_fn, false);
  REQUIRE_FALSE(frames.empty());
  CHECK_THAT(frames.back().function, Contains("write"));
  CHECK_THAT(frames.back().module, Contains("libc.so"));
  CHECK(frames.back().module_offset == write_fn - loadBaseOf(write_fn));
}

TEST_CASE("names the vDSO", "[symbolizer]") {
  const uintptr_t vdso = getauxval(AT_SYSINFO_EHDR);
  if (vdso == 0) return;  // no vDSO on this system
  auto symbolizer = symbolizerFor(getpid());

  CHECK(symbolizer->symbolize(vdso + 0x10, false).front().module == "[vdso]");
}

TEST_CASE("symbolizes another process without stopping it", "[symbolizer]") {
  const Capture capture = plainFunction();
  const uintptr_t write_fn = libcWrite();
  Child child(fork());
  if (child.pid() == 0) idleForever();
  REQUIRE(child.pid() > 0);

  auto symbolizer = symbolizerFor(child.pid());
  checkPlainCallSite(symbolizer->symbolize(capture.pc, true), capture);
  CHECK_THAT(symbolizer->symbolize(write_fn, false).back().function, Contains("write"));

  std::ifstream status("/proc/" + std::to_string(child.pid()) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("TracerPid:", 0) == 0) CHECK(line.find_first_not_of(" \t0", 10) == std::string::npos);
    if (line.rfind("State:", 0) == 0) CHECK_THAT(line, !Contains("stop"));
  }
}

TEST_CASE("symbolizes a process whose files live in another mount namespace", "[symbolizer]") {
  const Capture capture = plainFunction();
  TempDir dir;
  Child child(spawnIdleCopyInPrivateMount(dir.path()));
  REQUIRE(child.pid() > 0);
  int exit_status = 0;
  const uintptr_t child_base = waitForMapping(child, dir.path() + "/copy", &exit_status);
  if (child_base == 0 && WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == kCannotIsolate) {
    WARN("skipped: cannot create a mount namespace here (needs CAP_SYS_ADMIN)");
    return;
  }
  REQUIRE(child_base != 0);
  REQUIRE_FALSE(std::filesystem::exists(dir.path() + "/copy"));

  auto symbolizer = symbolizerFor(child.pid());
  checkPlainCallSite(symbolizer->symbolize(inChild(child_base, capture.pc), true), capture);
  CHECK(anyNoteContains(*symbolizer, "/proc/" + std::to_string(child.pid()) + "/root"));
}

TEST_CASE("symbolizes a process whose executable was deleted", "[symbolizer]") {
  const Capture capture = plainFunction();
  TempDir dir;
  const std::string copy = dir.path() + "/copy";
  REQUIRE(copyThisBinary(copy));
  Child child(spawnIdle(copy));
  REQUIRE(child.pid() > 0);
  int exit_status = 0;
  const uintptr_t child_base = waitForMapping(child, copy, &exit_status);
  REQUIRE(child_base != 0);
  REQUIRE(std::filesystem::remove(copy));

  auto symbolizer = symbolizerFor(child.pid());
  const auto& frames = symbolizer->symbolize(inChild(child_base, capture.pc), true);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].module == copy + " (deleted)");
  if (geteuid() == 0) {
    checkPlainCallSite(frames, capture);
    CHECK_FALSE(frames[0].module_unreadable);
    CHECK(anyNoteContains(*symbolizer, "/map_files/"));
  } else {
    CHECK(frames[0].function.empty());
    CHECK(frames[0].module_unreadable);
    CHECK(anyNoteContains(*symbolizer, "cannot open module " + copy));
  }
}

TEST_CASE("finds DWARF without .debug_aranges, which clang leaves out", "[symbolizer]") {
  const Capture plain = plainFunction();
  const InlineCapture inlined = inlineCaller();
  TempDir dir;
  const std::string copy = dir.path() + "/copy";
  const std::string strip_aranges =
      "objcopy --remove-section=.debug_aranges /proc/" + std::to_string(getpid()) + "/exe " + copy;
  if (std::system(strip_aranges.c_str()) != 0) {
    WARN("skipped: objcopy is not available");
    return;
  }
  Child child(spawnIdle(copy));
  REQUIRE(child.pid() > 0);
  int exit_status = 0;
  const uintptr_t child_base = waitForMapping(child, copy, &exit_status);
  REQUIRE(child_base != 0);

  auto symbolizer = symbolizerFor(child.pid());
  checkPlainCallSite(symbolizer->symbolize(inChild(child_base, plain.pc), true), plain);
  const auto& frames = symbolizer->symbolize(inChild(child_base, inlined.inner.pc), true);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].inlined);
  CHECK(frames[1].line == inlined.call_line);
}

TEST_CASE("a PID that cannot exist is kNoProcess", "[symbolizer]") {
  constexpr pid_t kAbovePidMaxLimit = 4194304;  // PID_MAX_LIMIT: the kernel only hands out smaller PIDs
  auto symbolizer = Symbolizer::forProcess(kAbovePidMaxLimit);
  REQUIRE_FALSE(symbolizer.ok());
  CHECK(symbolizer.error().kind == ErrorKind::kNoProcess);
  CHECK_THAT(symbolizer.error().message, Contains("cppops ps"));
}

TEST_CASE("a non-positive PID is a usage error", "[symbolizer]") {
  auto symbolizer = Symbolizer::forProcess(0);
  REQUIRE_FALSE(symbolizer.ok());
  CHECK(symbolizer.error().kind == ErrorKind::kUsage);
}

TEST_CASE("another user's process is kPermission", "[symbolizer]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root to drop to another user");
    return;
  }
  constexpr uid_t kNobody = 65534;
  const pid_t parent = getpid();
  Child child(fork());
  if (child.pid() == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0) {
      _exit(kCannotIsolate);
    }
    auto symbolizer = Symbolizer::forProcess(parent);
    const bool permission = !symbolizer.ok() && symbolizer.error().kind == ErrorKind::kPermission &&
                            symbolizer.error().message.find("root") != std::string::npos;
    _exit(permission ? 0 : 1);
  }
  REQUIRE(child.pid() > 0);
  int status = 0;
  while (!child.exited(&status)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == kCannotIsolate) {
    WARN("skipped: cannot switch to another user here");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a thread dump's worth of repeated frames is cheap after the first lookups", "[symbolizer]") {
  void* stack[32];
  const int depth = backtrace(stack, 32);
  auto symbolizer = symbolizerFor(getpid());
  const auto symbolizeStack = [&] {
    for (int i = 0; i < depth; ++i) symbolizer->symbolize(reinterpret_cast<uintptr_t>(stack[i]), i > 0);
  };
  symbolizeStack();

  const auto start = std::chrono::steady_clock::now();
  for (int thread = 0; thread < 1000; ++thread) symbolizeStack();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::milliseconds(100));
}

// The resolved-frames cache, against this binary: what one symbolizer saved, the next answers from; an entry
// that is damaged, was resolved without the debug info the module has now, or sits where others can write, is not.
TEST_CASE("a symbolizer answers from the frames an earlier one saved under the module's build ID", "[symbolizer]") {
  TempDir cache;
  REQUIRE(setenv("CPPOPS_CACHE_DIR", cache.path().c_str(), 1) == 0);
  struct Unset {
    ~Unset() { unsetenv("CPPOPS_CACHE_DIR"); }
  } unset;
  const Capture capture = plainFunction();
  uint64_t key = 0;
  {
    auto first = symbolizerFor(getpid());
    const auto& frames = first->symbolize(capture.pc, true);
    checkPlainCallSite(frames, capture);
    key = cppops::resolvedKey(frames[0].module_offset, true);
    first->saveResolved();
  }
  std::vector<std::string> entries;
  for (const auto& entry : std::filesystem::directory_iterator(cache.path()))
    if (entry.path().extension() == ".frames") entries.push_back(entry.path().stem().string());
  REQUIRE(entries.size() == 1);  // only this binary's pc was resolved
  const std::string build_id = entries[0];
  std::optional<cppops::ResolvedFrames> saved = cppops::cachedResolvedFrames(cache.path(), build_id);
  REQUIRE(saved.has_value());
  CHECK(saved->with_dwarf);
  REQUIRE(saved->by_key.count(key) == 1);
  CHECK(saved->by_key.at(key).at(0).function == "(anonymous namespace)::plainFunction()");
  // A line no lookup of the file gives: it can only come from the entry.
  saved->by_key.at(key).at(0).line = 99999;

  SECTION("the next symbolizer answers from the entry") {
    cppops::cacheResolvedFrames(cache.path(), build_id, *saved);
    auto next = symbolizerFor(getpid());
    CHECK(next->symbolize(capture.pc, true).at(0).line == 99999);
  }
  SECTION("an entry resolved without debug info is not used now that there is some") {
    saved->with_dwarf = false;
    cppops::cacheResolvedFrames(cache.path(), build_id, *saved);
    checkPlainCallSite(symbolizerFor(getpid())->symbolize(capture.pc, true), capture);
  }
  SECTION("a damaged entry is ignored, and written anew") {
    const std::string path = cache.path() + "/" + build_id + ".frames";
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
    CHECK_FALSE(cppops::cachedResolvedFrames(cache.path(), build_id).has_value());
    auto next = symbolizerFor(getpid());
    checkPlainCallSite(next->symbolize(capture.pc, true), capture);
    next->saveResolved();
    CHECK(cppops::cachedResolvedFrames(cache.path(), build_id).has_value());
  }
  SECTION("a few new pcs, such as running threads bring on every dump, do not rewrite a large entry") {
    cppops::ResolvedFrames large;
    large.with_dwarf = true;
    for (uint64_t i = 0; i < 100; ++i) large.by_key[cppops::resolvedKey(i, true)] = {{"f", "f.cpp", 1, false}};
    cppops::cacheResolvedFrames(cache.path(), build_id, large);
    auto next = symbolizerFor(getpid());
    checkPlainCallSite(next->symbolize(capture.pc, true), capture);
    next->saveResolved();
    CHECK(cppops::cachedResolvedFrames(cache.path(), build_id)->by_key.count(key) == 0);
  }
  SECTION("a cache directory others can write to is not read") {
    cppops::cacheResolvedFrames(cache.path(), build_id, *saved);
    REQUIRE(::chmod(cache.path().c_str(), 0777) == 0);
    checkPlainCallSite(symbolizerFor(getpid())->symbolize(capture.pc, true), capture);
  }
}
