// cppops stack against a target with every scenario the command must recognise: exact states, owners, the
// frame that made the call (function and file), and both deadlocks.
#include <catch2/catch.hpp>
#include <string>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <filesystem>
#include <fstream>
#include <cstdint>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <memory>

#include "stack_scenario.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

void checkScenarios(ScenarioAgent agent) {
  Scenario s(agent);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--json"}, s.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 7);  // deadlocks found
  json dump = json::parse(r.out);
  CHECK(dump.at("source") == "agent");
  checkScenarioDump(dump, s);

  const json& blocked = threadOf(dump, s.tids.at("no-signals"));
  if (agent == ScenarioAgent::kPreload) {
    // Built without frame pointers: every sleeping thread is read where it sleeps, the one that blocks the signal
    // too, and only the spinner is interrupted.
    checkThread(dump, s, "no-signals", "sleep", "sleepWithSignalsBlocked");
    CHECK(blocked.at("capture") == "captured");
    checkOnlySpinnerHeld(dump, s);
  } else {
    // Frame pointers: a thread's rbp, which the kernel does not report, is needed to walk it. It is found from the
    // prologue of the first frame-pointer frame where that frame keeps rsp fixed, so every sleeping thread is read
    // where it sleeps, but for the one whose frame moved rsp (alloca): the signal would ask it, and it blocks it.
    CHECK(blocked.at("capture") == "no_answer");
    CHECK(blocked.at("state") == "sleep");
    CHECK(blocked.at("reason").get<std::string>().find("blocks signal") != std::string::npos);
    CHECK(blocked.at("frames").empty());
    for (const json& t : dump.at("threads")) {
      if (t.at("tid") == s.tids.at("no-signals") || t.at("tid") == s.tids.at("spinner")) continue;
      INFO(t.dump(1));
      CHECK(t.at("capture") == "captured");
      CHECK(t.at("pause_ns") == 0);
    }
    CHECK(dump.at("cost").at("read_asleep") == dump.at("threads").size() - 2);
  }
}

// SigQ in /proc/PID/status: real-time signals queued for the process's user, over all of their processes.
long queuedSignals(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigQ:\t", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST_CASE("stack: every scenario in a preloaded target has its exact state, owner, frame and deadlock") {
  checkScenarios(ScenarioAgent::kPreload);
}

TEST_CASE("stack: the same through the linked agent (sanitized with the target in sanitizer builds)") {
  // ThreadSanitizer runs a sanitized thread's asynchronous signal handlers only at its own interceptors, so many
  // threads of a TSan-built target cannot unwind themselves on request. The ASan tree covers this test; the
  // other linked-agent tests still run the agent under TSan.
  if (std::string(CPPOPS_TEST_SANITIZE) == "thread") {
    WARN("skipped under ThreadSanitizer: it defers signal handlers of sanitized threads to its interceptors");
    return;
  }
  checkScenarios(ScenarioAgent::kLinked);
}

TEST_CASE("stack: a thread that blocks the signal is asked once and not again at every dump") {
  if (std::string(CPPOPS_TEST_SANITIZE) == "thread") {
    WARN("skipped under ThreadSanitizer: it defers signal handlers of sanitized threads to its interceptors");
    return;
  }
  // In the linked build, built with frame pointers, that thread's frame moves rsp, so only the signal could ask it
  // (see checkScenarios).
  Scenario s(ScenarioAgent::kLinked);
  const std::string pid = std::to_string(s.target.pid());
  const long before = queuedSignals(s.target.pid());
  REQUIRE(before >= 0);
  for (int round = 0; round < 12; ++round) {
    auto r = runCli({"stack", pid, "--json"}, s.dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 7);
    const json dump = json::parse(r.out);
    const json& blocked = threadOf(dump, s.tids.at("no-signals"));
    CHECK(blocked.at("capture") == "no_answer");
    CHECK(blocked.at("reason").get<std::string>().find("blocks signal") != std::string::npos);
  }
  // One left pending by the first dump; the user's other processes (tests running alongside) may hold a few.
  CHECK(queuedSignals(s.target.pid()) - before <= 4);
}

TEST_CASE("stack: a thread read where it sleeps keeps the scheduler's state: one a debugger holds shows stopped") {
  Scenario s(ScenarioAgent::kPreload);
  TracedByTest debugged(s.tids.at("sleeper"), TracedByTest::Hold::kStopped);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--json"}, s.dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 7);
  const json dump = json::parse(r.out);
  CHECK(dump.at("source") == "agent");
  const json& sleeper = threadOf(dump, s.tids.at("sleeper"));
  INFO(sleeper.dump(1));
  CHECK(sleeper.at("capture") == "captured");
  CHECK(sleeper.at("pause_ns") == 0);
  CHECK(sleeper.at("kernel_state") == "t");
  CHECK(sleeper.at("state") == "stopped");
  CHECK(sleeper.at("name") == "sleeper");
  CHECK(hasFrame(sleeper, "sleepLong"));
  // Its neighbours sleep as before.
  checkThread(dump, s, "waiter", "mutex", "waitForHeldMutex", "holder");
}

TEST_CASE("stack: threads asleep in calls that a signal cuts short are read where they sleep, and none wakes") {
  checkUninterruptedDumps(ScenarioAgent::kPreload, "agent");
}

TEST_CASE("stack: the same in a program built with frame pointers, whose rbp is found from its code") {
  checkUninterruptedDumps(ScenarioAgent::kPreload, "agent", "uninterrupted_fp");
}

TEST_CASE("stack: threads that wake while they are read are asked with the signal instead, and every stack holds") {
  checkFlickeringStacksHold(ScenarioAgent::kPreload);
}

TEST_CASE("stack: the same in a program built with frame pointers: every stack holds") {
  checkFlickeringStacksHold(ScenarioAgent::kPreload, "uninterrupted_fp");
}

TEST_CASE("stack: the human view leads with deadlocks, then groups, and --threads lists every thread") {
  Scenario s(ScenarioAgent::kPreload);
  const std::string pid = std::to_string(s.target.pid());
  auto r = runCli({"stack", pid}, s.dir.path());
  CHECK(r.exit_code == 7);
  CHECK(r.out.find("Found 2 deadlocks") != std::string::npos);
  CHECK(r.out.find("Found 2 deadlocks") < r.out.find("deadlockRing", r.out.find("Found 2 deadlocks")));
  CHECK(r.out.find("states: ") != std::string::npos);

  auto every = runCli({"stack", pid, "--threads", "--state", "condvar"}, s.dir.path());
  CHECK(every.out.find("waitOnCondition") != std::string::npos);
  CHECK(every.out.find("sleepLong") == std::string::npos);

  auto bad = runCli({"stack", pid, "--state", "napping"}, s.dir.path());
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown state 'napping'") != std::string::npos);
}

TEST_CASE("stack --no-signal: kernel facts, owners and the stacks of sleeping threads, without touching any thread") {
  Scenario s(ScenarioAgent::kPreload);
  auto r = runCli({"stack", std::to_string(s.target.pid()), "--no-signal", "--json"}, s.dir.path());
  REQUIRE(r.exit_code == 7);  // the deadlocks are found from lock owners alone
  json dump = json::parse(r.out);
  CHECK(dump.at("source") == "agent");
  checkNoSignalDump(dump, s);
}

TEST_CASE("stack --json filters threads by state, name and tid") {
  Scenario s(ScenarioAgent::kPreload);
  const std::string pid = std::to_string(s.target.pid());
  auto by_state = json::parse(runCli({"stack", pid, "--json", "--state", "rwlock_read,rwlock_write"}, s.dir.path()).out);
  std::set<pid_t> tids;
  for (const auto& t : by_state.at("threads")) tids.insert(t.at("tid").get<pid_t>());
  CHECK(tids == std::set<pid_t>{s.tids.at("rw-reader"), s.tids.at("rw-writer2")});
  auto by_tid = json::parse(
      runCli({"stack", pid, "--json", "--tid", std::to_string(s.tids.at("sleeper"))}, s.dir.path()).out);
  REQUIRE(by_tid.at("threads").size() == 1);
  CHECK(by_tid.at("threads")[0].at("name") == "sleeper");
  auto by_name = json::parse(runCli({"stack", pid, "--json", "--name", "dl3-"}, s.dir.path()).out);
  CHECK(by_name.at("threads").size() == 3);
}

namespace {

// The frame of split_debug_wait in the target's only thread, or null.
const json* splitDebugFrame(const json& dump) {
  for (const json& thread : dump.at("threads"))
    for (const json& frame : thread.at("frames"))
      if (frame.at("function") == "split_debug_wait") return &frame;
  return nullptr;
}

// split_debug_target, finding libsplit_debug_lib.so in `libs`, with the agent, started and ready.
std::unique_ptr<TargetProcess> startSplitDebugTarget(const std::string& libs, const std::string& sockets) {
  TargetOptions options;
  options.program = "split_debug_target";
  options.preload = true;
  options.env = {{"LD_LIBRARY_PATH", libs}};
  auto target = std::make_unique<TargetProcess>(options, sockets);
  REQUIRE(target->waitForOutput("ready"));
  REQUIRE_FALSE(target->waitForSocket().empty());
  return target;
}

bool hasCompressedSections(const std::string& file) {
  auto sections = runProgram({findTool("readelf"), "-S", "-W", file}, {});
  REQUIRE(sections.exit_code == 0);
  std::istringstream lines(sections.out);
  for (std::string line; std::getline(lines, line);) {
    // Section rows read "[Nr] Name Type Address Off Size ES Flg ..."; a compressed section has C among its flags.
    std::istringstream fields(line.substr(line.find(']') == std::string::npos ? 0 : line.find(']') + 1));
    std::string name, type, address, offset, size, entsize, flags;
    if (line.find(".debug_") != std::string::npos && fields >> name >> type >> address >> offset >> size >> entsize >> flags &&
        flags.find('C') != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace

TEST_CASE("stack: compressed separate debug info is inflated once into a private cache, then read from it") {
  TempDir dir;
  TempDir libs;  // the library and its debug file, copied so the test may delete the debug file
  TempDir cache_home;
  const std::string cache = cache_home.path() + "/debuginfo";
  const std::string library = targetPath("libsplit_debug_lib.so");
  for (const std::string& file : {library, library + ".debug"})
    std::filesystem::copy(file, libs.path());
  const std::string debug_file = libs.path() + "/libsplit_debug_lib.so.debug";
  REQUIRE(hasCompressedSections(debug_file));

  const auto target = startSplitDebugTarget(libs.path(), dir.path());
  auto dump = [&] {
    auto r = runProgram({cliPath(), "stack", std::to_string(target->pid()), "--json"},
                        {{"CPPOPS_SOCKET_DIR", dir.path()}, {"CPPOPS_CACHE_DIR", cache}});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  };

  const json first = dump();
  const json* frame = splitDebugFrame(first);
  REQUIRE(frame != nullptr);
  CHECK(frame->at("file").get<std::string>().find("tests/targets/split_debug_lib.c") != std::string::npos);
  CHECK(frame->at("line") == 11);
  // Named by the library's build ID (on machines with libc6-dbg, libc's debug file is cached beside it).
  auto notes = runProgram({findTool("readelf"), "-n", library}, {});
  const size_t id_at = notes.out.find("Build ID: ");
  REQUIRE(id_at != std::string::npos);
  const std::string build_id = notes.out.substr(id_at + 10, notes.out.find('\n', id_at) - id_at - 10);
  const std::string cached_file = cache + "/" + build_id + ".debug";
  REQUIRE(std::filesystem::exists(cached_file));
  CHECK_FALSE(hasCompressedSections(cached_file));

  SECTION("later dumps read the cache: the original debug file is no longer needed") {
    REQUIRE(std::remove(debug_file.c_str()) == 0);
    const json second = dump();
    REQUIRE(splitDebugFrame(second) != nullptr);
    CHECK(*splitDebugFrame(second) == *frame);
  }
  SECTION("where its compile units lie is cached too; a damaged or misleading entry changes no frame") {
    const std::string spans_file = cache + "/" + build_id + ".cus";
    REQUIRE(std::filesystem::exists(spans_file));
    // Each dump below must look its pc up in the DWARF, not in what the one before resolved.
    const std::string frames_file = cache + "/" + build_id + ".frames";
    REQUIRE(std::filesystem::exists(frames_file));
    auto dumpAfresh = [&] {
      std::filesystem::remove(frames_file);
      return dump();
    };
    CHECK(*splitDebugFrame(dumpAfresh()) == *frame);  // read from the entry
    {
      std::ofstream damaged(spans_file, std::ios::trunc | std::ios::binary);
      damaged << "not a span table";
    }
    CHECK(*splitDebugFrame(dumpAfresh()) == *frame);
    CHECK(std::filesystem::file_size(spans_file) > 16);  // written anew from the DWARF
    {
      // Well-formed, but naming a unit that is not there for every address.
      std::ofstream misleading(spans_file, std::ios::trunc | std::ios::binary);
      const char magic[8] = {'C', 'P', 'P', 'O', 'P', 'S', 'C', 'U'};
      const uint32_t version_and_count[2] = {1, 1};
      const uint64_t span[3] = {0, UINT64_MAX, 1};
      misleading.write(magic, sizeof magic);
      misleading.write(reinterpret_cast<const char*>(version_and_count), sizeof version_and_count);
      misleading.write(reinterpret_cast<const char*>(span), sizeof span);
    }
    CHECK(*splitDebugFrame(dumpAfresh()) == *frame);
  }
  SECTION("a cache directory others can write to is neither read nor written") {
    REQUIRE(std::remove(debug_file.c_str()) == 0);
    REQUIRE(::chmod(cache.c_str(), 0777) == 0);
    const json second = dump();
    REQUIRE(splitDebugFrame(second) != nullptr);
    CHECK(splitDebugFrame(second)->at("file") == "");
    REQUIRE(std::remove(cached_file.c_str()) == 0);
    dump();
    CHECK_FALSE(std::filesystem::exists(cached_file));
  }
}

namespace {

std::string buildIdOf(const std::string& file) {
  auto notes = runProgram({findTool("readelf"), "-n", file}, {});
  const size_t id_at = notes.out.find("Build ID: ");
  REQUIRE(id_at != std::string::npos);
  return notes.out.substr(id_at + 10, notes.out.find('\n', id_at) - id_at - 10);
}

}  // namespace

TEST_CASE("stack: a library without debug info gets a note that says what its frames lack and where to put it") {
  TempDir dir;
  TempDir libs;  // the library alone: its debug file is not beside it
  TempDir cache_home;  // and no inflated copy of it from another test
  const std::string library = libs.path() + "/libsplit_debug_lib.so";
  std::filesystem::copy(targetPath("libsplit_debug_lib.so"), library);
  const std::string build_id = buildIdOf(library);
  const std::string debug_file =
      "/usr/lib/debug/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug";
  const bool stripped = GENERATE(false, true);
  if (stripped) REQUIRE(runProgram({findTool("objcopy"), "--strip-all", library}, {}).exit_code == 0);
  INFO((stripped ? "symbol table stripped too" : "symbol table kept"));

  const auto target = startSplitDebugTarget(libs.path(), dir.path());
  auto r = runProgram({cliPath(), "stack", std::to_string(target->pid()), "--json"},
                      {{"CPPOPS_SOCKET_DIR", dir.path()}, {"CPPOPS_CACHE_DIR", cache_home.path()}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json dump = json::parse(r.out);
  const json& frames = dump.at("threads").at(0).at("frames");
  // pause, then split_debug_park (static), then split_debug_wait (exported), then main.
  auto in_library = std::find_if(frames.begin(), frames.end(), [&](const json& frame) {
    return frame.at("module").get<std::string>().find("libsplit_debug_lib.so") != std::string::npos;
  });
  REQUIRE(in_library != frames.end());
  REQUIRE(std::next(in_library) != frames.end());
  const json& park = *in_library;
  const json& wait = *std::next(in_library);
  CHECK(park.at("function") == (stripped ? "" : "split_debug_park"));
  CHECK(park.at("file") == "");
  CHECK(wait.at("function") == "split_debug_wait");
  CHECK(wait.at("file") == "");

  const std::string lacks = stripped ? "no debug info or symbol table for " + library +
                                           ": only its exported functions have names, the others show as "
                                           "module+offset, and no frame has file:line; "
                                     : "no debug info for " + library +
                                           ": its frames have function names but no file:line; ";
  const json& notes = dump.at("notes");
  INFO(notes.dump(2));
  CHECK(std::count(notes.begin(), notes.end(),
                   lacks + "install its debug symbols (looked for as " + debug_file + ")") == 1);
}

TEST_CASE("stack: a thread hung in its crash handler shows the handler, the signal, and the write that faulted") {
  // tests/targets/handler_hang.cpp: "crasher" writes through a null pointer; its SIGSEGV handler waits for a
  // mutex main holds. The walk goes from the handler through glibc's signal trampoline to the faulting write.
  TempDir dir;
  TargetOptions options;
  options.program = "handler_hang";
  options.preload = true;
  TargetProcess target(options, dir.path());
  REQUIRE(target.waitForOutput("ready"));
  REQUIRE_FALSE(target.waitForSocket().empty());
  const std::map<std::string, pid_t> tids = target.announcedTids();
  REQUIRE(tids.size() == 2);

  const bool ptrace = GENERATE(false, true);
  INFO((ptrace ? "through ptrace" : "through the agent"));
  std::vector<std::string> args{"stack", std::to_string(target.pid()), "--json"};
  if (ptrace) args.push_back("--ptrace");
  auto r = runCli(args, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json dump = json::parse(r.out);
  const json& crasher = threadOf(dump, tids.at("crasher"));
  INFO(crasher.dump(1));
  CHECK(crasher.at("state") == "mutex");
  CHECK(crasher.at("owner_tid") == tids.at("main"));
  const json& frames = crasher.at("frames");
  auto handler = std::find_if(frames.begin(), frames.end(), [](const json& f) { return f.at("function") == "onCrash"; });
  REQUIRE(handler != frames.end());
  REQUIRE(frames.end() - handler >= 4);
  auto file_is = [](const json& frame, const std::string& name) {
    return frame.at("file").get<std::string>().find("tests/targets/" + name) != std::string::npos;
  };
  CHECK(file_is(*handler, "handler_hang.cpp"));
  CHECK(handler->at("line") == 22);
  const json& signal = *(handler + 1);
  CHECK(signal.at("function") == "<signal handler called>");
  CHECK(signal.at("module").get<std::string>().find("libc.so.6") != std::string::npos);
  // The pc after the trampoline is where the thread was, not a return address: faultAtEntry's first byte.
  CHECK((handler + 2)->at("function") == "faultAtEntry");
  const json& caller = *(handler + 3);
  CHECK(caller.at("function") == "(anonymous namespace)::crashSite(int*)");
  CHECK(file_is(caller, "handler_hang.cpp"));
  CHECK(caller.at("line") == 40);
  REQUIRE(frames.end() - handler >= 5);
  CHECK((handler + 4)->at("function") == "(anonymous namespace)::crasher(void*)");
  CHECK(target.alive());
}

TEST_CASE("stack: frames of a deleted binary the CLI cannot read are named by the agent, and the dump says so") {
  if (!runningAsRoot()) {
    WARN("skipped: needs root to run the target and cppops as another user");
    return;
  }
  // As root, the CLI would read the deleted file through /proc/PID/map_files; as the target's unprivileged user
  // it cannot. Everything that user touches is theirs: the binary's copy and the socket directory.
  TempDir scratch;
  REQUIRE(::chmod(scratch.path().c_str(), 0755) == 0);
  const std::string copy = scratch.path() + "/deleted_binary";
  std::filesystem::copy(targetPath("deleted_binary"), copy);
  TempDir sockets_parent;
  REQUIRE(::chown(sockets_parent.path().c_str(), kNobody.uid, kNobody.gid) == 0);
  const std::string sockets = sockets_parent.path() + "/s";

  TargetOptions options;
  options.program = copy;
  options.preload = true;
  options.run_as = kNobody;
  TargetProcess target(options, sockets);
  REQUIRE(target.waitForOutput("ready"));
  REQUIRE_FALSE(target.waitForSocket().empty());
  REQUIRE(std::remove(copy.c_str()) == 0);

  auto r = runCli({"stack", std::to_string(target.pid()), "--json"}, sockets, kNobody);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json dump = json::parse(r.out);
  INFO(dump.dump(2));
  const json* parked = nullptr;
  for (const json& thread : dump.at("threads"))
    for (const json& frame : thread.at("frames"))
      if (frame.at("function") == "parkedInDeletedBinary") parked = &frame;
  REQUIRE(parked != nullptr);
  CHECK(parked->at("module") == copy + " (deleted)");
  CHECK(parked->at("file") == "");  // the agent knows names, not lines
  bool noted = false;
  for (const json& note : dump.at("notes"))
    noted = noted || note.get<std::string>().find("named by the agent from the target's dynamic symbol tables") !=
                         std::string::npos;
  CHECK(noted);

  // libc is readable: its frames keep the CLI's own names and lines.
  const json& sleeper = *std::find_if(dump.at("threads").begin(), dump.at("threads").end(), [](const json& t) {
    return t.at("state") == "sleep";
  });
  CHECK(sleeper.at("frames")[0].at("module").get<std::string>().find("libc.so.6") != std::string::npos);
}

TEST_CASE("unwinding: a frame whose unwind information points off its thread's stack ends the stack, and the target lives") {
  // tests/targets/lying_cfi.c: lying_frame's CFI puts its caller 1 MiB above it, where nothing is readable;
  // lying_drap_frame's, the CFA of a realigned frame, has the walker read a word there. The same walker serves
  // stack dumps, CPU profiles and the heap sampler, so each of the three is asked.
  TempDir dir;
  const bool drap = GENERATE(false, true);
  const std::string lying_frame = drap ? "lying_drap_frame" : "lying_frame";
  INFO(lying_frame);
  auto start = [&](const char* mode) {
    TargetOptions options;
    options.program = "lying_cfi";
    options.args = {mode};
    if (drap) options.args.push_back("drap");
    options.preload = true;
    return std::make_unique<TargetProcess>(options, dir.path());
  };
  auto ask = [&](const TargetProcess& target, std::vector<std::string> args) {
    args.insert(args.begin() + 1, std::to_string(target.pid()));
    auto r = runCli(args, dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
  };

  SECTION("stack dumps") {
    auto target = start("sleep");
    REQUIRE(target->waitForOutput("ready"));
    REQUIRE_FALSE(target->waitForSocket().empty());
    for (int dump = 0; dump < 2; ++dump) {  // the second one walks from the cached rules
      const json threads = json::parse(ask(*target, {"stack", "--json"})).at("threads");
      const auto lying = std::find_if(threads.begin(), threads.end(), [](const json& t) { return t.at("name") == "lying"; });
      REQUIRE(lying != threads.end());
      INFO(lying->dump(2));
      CHECK(lying->at("state") == "sleep");
      const json& frames = lying->at("frames");
      REQUIRE(frames.size() == 3);
      CHECK(frames[0].at("function") == "pause");
      CHECK(frames[1].at("function") == "wait_forever");
      CHECK(frames[1].at("file").get<std::string>().find("tests/targets/lying_cfi.c") != std::string::npos);
      CHECK(frames[2].at("function") == lying_frame);
    }
    CHECK(target->alive());
  }
  SECTION("CPU profiles") {
    auto target = start("spin");
    REQUIRE(target->waitForOutput("ready"));
    REQUIRE_FALSE(target->waitForSocket().empty());
    const std::string folded = ask(*target, {"profile", "-d", "1s", "--format", "folded"});
    INFO(folded);
    CHECK(folded.rfind(lying_frame + ";spin_forever ", 0) == 0);
    CHECK(target->alive());
  }
  SECTION("heap profiles") {
    auto target = start("malloc");
    REQUIRE(target->waitForOutput("ready"));
    REQUIRE_FALSE(target->waitForSocket().empty());
    const std::string folded = ask(*target, {"profile", "--heap", "--heap-rate", "1", "-d", "1s", "--sample-index",
                                             "alloc_space", "--format", "folded"});
    INFO(folded);
    CHECK(folded.rfind(lying_frame + ";allocate_forever ", 0) == 0);
    CHECK(target->alive());
  }
}
