// cppops metrics against real processes: built-in figures, threads by state from the kernel, application
// metrics through the C API, and output that Prometheus's own checker accepts.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

// The value of the one sample of `name` whose labels contain `labels` (nullopt when there is none; two
// matches fail the test).
std::optional<double> sample(const std::string& text, const std::string& name, const std::string& labels) {
  std::istringstream lines(text);
  std::string line;
  std::optional<double> found;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const size_t close = line.rfind('}');
    if (line.substr(name.size() + 1, close - name.size() - 1).find(labels) == std::string::npos) continue;
    INFO(line);
    REQUIRE_FALSE(found);
    found = std::stod(line.substr(close + 2));
  }
  return found;
}

bool havePromtool() { return runProgram({"/bin/sh", "-c", "command -v promtool"}, {}).exit_code == 0; }

}  // namespace

TEST_CASE("cppops metrics: threads by state, built-ins and application metrics, accepted by promtool") {
  TempDir dir;
  TargetProcess t({"metrics_app", {}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  const std::string pid = std::to_string(t.pid());
  auto r = runCli({"metrics", pid}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);

  const std::string who = "pid=\"" + pid + "\",process=\"metrics_app\"";
  // main and 3 sleepForever threads sleep, 3 wait for the held mutex, 1 waits on a condition variable; the
  // agent's own thread is not counted.
  CHECK(sample(r.out, "cppops_threads", "state=\"blocked\"") == 3);
  CHECK(sample(r.out, "cppops_threads", "state=\"sleeping\"") == 4);
  CHECK(sample(r.out, "cppops_threads", "state=\"waiting\"") == 1);
  CHECK(sample(r.out, "cppops_threads", "state=\"running\"") == 0);
  CHECK(sample(r.out, "cppops_threads", "state=\"io\"") == 0);
  CHECK(sample(r.out, "cppops_threads", "state=\"other\"") == 0);
  CHECK(r.out.find("cppops_threads{" + who) != std::string::npos);
  // 6 joined-or-parked threads, the detached sleeper, the short-lived one and the agent's control thread.
  CHECK(sample(r.out, "cppops_threads_created_total", who) == 9);
  CHECK(sample(r.out, "cppops_threads_exited_total", who) == 1);
  CHECK(sample(r.out, "cppops_cpu_seconds_total", "mode=\"user\"") >= 0);
  CHECK(sample(r.out, "cppops_resident_memory_bytes", who) > 1e6);
  CHECK(sample(r.out, "cppops_heap_in_use_bytes", who) > 0);
  CHECK(sample(r.out, "cppops_open_fds", who) >= 3);
  CHECK(sample(r.out, "cppops_context_switches_total", "kind=\"voluntary\"") > 0);
  CHECK(sample(r.out, "cppops_agent_requests_served_total", who) >= 1);
  CHECK(sample(r.out, "cppops_agent_requests_refused_total", who) == 0);

  CHECK(sample(r.out, "app_requests_total", who) == 42);  // registered without the suffix
  CHECK(sample(r.out, "app_bytes_total", who) == 4096);
  CHECK(sample(r.out, "app_queue_depth", who) == 7.5);
  CHECK(sample(r.out, "app_latency_seconds_bucket", "le=\"0.005\"") == 2);
  CHECK(sample(r.out, "app_latency_seconds_bucket", "le=\"0.1\"") == 3);
  CHECK(sample(r.out, "app_latency_seconds_bucket", "le=\"1\"") == 4);
  CHECK(sample(r.out, "app_latency_seconds_bucket", "le=\"+Inf\"") == 5);
  CHECK(sample(r.out, "app_latency_seconds_count", who) == 5);
  CHECK(sample(r.out, "app_latency_seconds_sum", who) == Approx(7.553));
  CHECK(r.out.find("# HELP app_bytes_total Bytes \"written\", with a \\\\ and\\na newline.\n") != std::string::npos);
  CHECK(r.out.find("# TYPE app_latency_seconds histogram\n") != std::string::npos);
  // The refused registrations: named in the target's log, absent from the output.
  CHECK(r.out.find("9starts_with_a_digit") == std::string::npos);
  CHECK(t.err().find("metric name '9starts_with_a_digit' is not a Prometheus name") != std::string::npos);
  CHECK(t.err().find("metric name 'cppops_threads' uses the agent's reserved prefix") != std::string::npos);
  CHECK(t.err().find("metric 'app_requests' is already registered as a counter") != std::string::npos);

  if (!havePromtool()) FAIL("promtool is missing: run scripts/setup.sh (Debian package prometheus)");
  const std::string file = dir.path() + "/metrics.txt";
  std::ofstream(file) << r.out;
  auto check = runProgram({"/bin/sh", "-c", "promtool check metrics < " + file}, {});
  INFO("promtool: " << check.out << check.err);
  CHECK(check.exit_code == 0);
  CHECK(check.out + check.err == "");
}

TEST_CASE("cppops metrics --json: the same figures for scripts") {
  TempDir dir;
  TargetProcess t({"metrics_app", {}, false, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  auto r = runCli({"metrics", std::to_string(t.pid()), "--json"}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  json doc = json::parse(r.out);
  CHECK(doc.at("schema_version") == 1);
  CHECK(doc.at("pid") == t.pid());
  CHECK(doc.at("process") == "metrics_app");
  CHECK(doc.at("threads").at("by_state").at("blocked") == 3);
  CHECK(doc.at("threads").at("total") == 9);  // the kernel's count: 8 live threads above and the agent's
  CHECK(doc.at("threads").at("created") == 9);
  CHECK(doc.at("heap").at("in_use_bytes").get<uint64_t>() > 0);
  const json& app = doc.at("application");
  REQUIRE(app.size() == 4);
  CHECK(app[0].at("name") == "app_requests_total");
  CHECK(app[0].at("value") == 42);
  CHECK(app[2].at("name") == "app_queue_depth");
  CHECK(app[2].at("value") == 7.5);
  CHECK(app[3].at("type") == "histogram");
  CHECK(app[3].at("count") == 5);
  CHECK(app[3].at("buckets")[1] == json({{"le", "0.1"}, {"count", 3}}));
}

TEST_CASE("cppops metrics on a preloaded program that knows nothing of cppops, and a process without an agent") {
  TempDir dir;
  TargetProcess t({"thread_leak", {"100000"}, true, {}, {}}, dir.path());
  REQUIRE(t.waitForOutput("ready"));
  REQUIRE_FALSE(t.waitForSocket().empty());
  auto r = runCli({"metrics", std::to_string(t.pid())}, dir.path());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // main sleeps, two pollers sleep, one handler waits for the lock main holds.
  CHECK(sample(r.out, "cppops_threads", "state=\"blocked\"") == 1);
  CHECK(sample(r.out, "cppops_threads", "state=\"sleeping\"") == 3);
  CHECK(sample(r.out, "cppops_threads_created_total", "process=\"thread_leak\"") == 4);

  TargetProcess plain({"plain_target", {}, false, {}, {}}, dir.path());
  REQUIRE(plain.waitForOutput("ready"));
  auto none = runCli({"metrics", std::to_string(plain.pid())}, dir.path());
  CHECK(none.exit_code == 3);
  CHECK(none.err.find("has no cppops agent") != std::string::npos);
}
