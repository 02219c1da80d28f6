// Dumps in a loop while the target churns threads, loads and unloads libraries, throws exceptions and hammers
// malloc: no hang, no crash, and nothing left behind in the target.
#include <dirent.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "proc/process.h"
#include "client/client.h"
#include "protocol/messages.h"
#include "subprocess.h"

using namespace cppops;
using namespace cppops::test;

namespace {

// Descriptors the agent could leak: anything of the target's that points into /proc.
int procFds(pid_t pid) {
  int n = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      char link[256];
      ssize_t len = readlink((dir + "/" + e->d_name).c_str(), link, sizeof link - 1);
      if (len > 0 && std::string(link, static_cast<size_t>(len)).rfind("/proc/", 0) == 0) ++n;
    }
    closedir(d);
  }
  return n;
}

uint64_t rssKiB(pid_t pid) {
  auto status = proc::readFile("/proc/" + std::to_string(pid) + "/status").value_or("");
  size_t at = status.find("VmRSS:");
  return at == std::string::npos ? 0 : std::stoull(status.substr(at + 6));
}

}  // namespace

TEST_CASE("stack dumps every 20 ms during heavy churn never hang, crash or leak") {
  TempDir dir;
  TargetProcess t({"thread_churn", {}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());

  // Straight to the agent: the point is what the target goes through, not how fast the CLI symbolizes.
  auto conn = client::Connection::open(t.pid(), 20s);
  REQUIRE(conn);
  wire::Writer w;
  // A deadline far beyond anything a healthy dump takes: reaching it would mean a thread was waited for in vain.
  constexpr uint32_t kCaptureTimeoutMs = 5000;
  protocol::StackRequest{kCaptureTimeoutMs, 1}.encode(w);
  const std::vector<uint8_t> request = w.take();
  int ok = 0;
  uint64_t rss_after_warmup = 0;
  const auto until = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < until) {
    auto payload = conn->call(protocol::Command::kStack, request);
    INFO((payload ? "" : payload.error().message));
    REQUIRE(payload);
    auto dump = client::decode<protocol::StackReply>(*payload);
    REQUIRE(dump);
    CHECK(dump->threads.size() >= 6);
    // Threads caught starting or exiting block all signals (glibc does so around clone and exit); they are
    // listed as not answering, and must not hold the dump to its deadline.
    CHECK(dump->total_ns < kCaptureTimeoutMs * 1000000ull);
    size_t captured = 0;
    std::string statuses;  // what each thread answered, for a failure to say who did not
    for (const auto& thread : dump->threads) {
      captured += thread.status == 0;
      statuses += std::to_string(thread.tid) + ": status " + std::to_string(thread.status) + ", " +
                  thread.syscall_line + "\n";
    }
    INFO(statuses);
    CHECK(captured >= 4);  // the four long-lived churners always answer
    if (++ok == 20) rss_after_warmup = rssKiB(t.pid());
    std::this_thread::sleep_for(20ms);
  }
  CHECK(ok >= 50);  // a count of dumps taken, not a speed figure: the benchmark measures speed
  CHECK(t.alive());
  CHECK(procFds(t.pid()) == 0);
  // Churn allocates on its own; the agent's arenas are allocated once. A leak of even one frame array per dump
  // would show here over hundreds of dumps.
  CHECK(rssKiB(t.pid()) < rss_after_warmup + 8 * 1024);
}
