// cppops exporter: /metrics for every agent process on the host, a process that cannot answer skipped and
// counted without holding up the scrape, and a real Prometheus server scraping it.
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_get.h"
#include "subprocess.h"

using namespace cppops::test;
using nlohmann::json;

namespace {

// Starts the exporter on a free port and returns the port it printed, 0 when it never said.
// The port the exporter says it serves on; `host` as it appears in its URL.
uint16_t startExporter(BackgroundCli& exporter, const std::string& host = "127.0.0.1") {
  const std::string marker = "serving http://" + host + ":";
  for (int i = 0; i < 100; ++i) {
    const std::string out = exporter.out();
    const size_t at = out.find(marker);
    if (at != std::string::npos && out.find("/metrics", at) != std::string::npos)
      return static_cast<uint16_t>(std::stoi(out.substr(at + marker.size())));
    std::this_thread::sleep_for(100ms);
  }
  return 0;
}

}  // namespace

TEST_CASE("cppops exporter serves every agent process, and a frozen one is skipped and counted, not waited for") {
  TempDir dir;
  TargetProcess app({"metrics_app", {}, false, {}, {}}, dir.path());
  TargetProcess frozen({"plain_target", {}, true, {}, {}}, dir.path());
  REQUIRE(app.waitForOutput("ready"));
  REQUIRE_FALSE(frozen.waitForSocket().empty());
  frozen.kill(SIGSTOP);

  BackgroundCli exporter({"exporter", "--listen", "127.0.0.1:0", "--scrape-deadline", "700"}, dir.path());
  const uint16_t port = startExporter(exporter);
  REQUIRE(port != 0);

  const auto start = std::chrono::steady_clock::now();
  auto r = httpGet(port, "/metrics");
  const auto took = std::chrono::steady_clock::now() - start;
  frozen.kill(SIGCONT);
  REQUIRE(r);
  INFO(r->headers << "\n" << r->body);
  CHECK(r->status == 200);
  CHECK(r->headers.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  // The deadline is 700 ms; the generous bound only says the frozen agent's 2 s timeout was not waited out.
  CHECK(took < 1900ms);
  const std::string app_pid = "pid=\"" + std::to_string(app.pid()) + "\",process=\"metrics_app\"";
  CHECK(r->body.find("cppops_threads{" + app_pid + ",cgroup=") != std::string::npos);
  CHECK(r->body.find("app_requests_total{" + app_pid) != std::string::npos);
  CHECK(r->body.find("cppops_threads{pid=\"" + std::to_string(frozen.pid()) + "\"") == std::string::npos);
  // Discovery also sees the agents of anything else running on this host, so only our processes are asserted.
  CHECK(r->body.find("cppops_exporter_skipped_process{pid=\"" + std::to_string(frozen.pid()) +
                     "\",process=\"plain_target\"} 1\n") != std::string::npos);
  CHECK(r->body.find("cppops_exporter_skipped_process{pid=\"" + std::to_string(app.pid()) + "\"") ==
        std::string::npos);
  CHECK(r->body.find("cppops_exporter_skipped_total ") != std::string::npos);

  // Thawed, it answers in the next scrape; processes are found at scrape time.
  TargetProcess late({"thread_leak", {"100000"}, true, {}, {}}, dir.path());
  REQUIRE_FALSE(late.waitForSocket().empty());
  auto again = httpGet(port, "/metrics");
  REQUIRE(again);
  CHECK(again->body.find("cppops_threads{pid=\"" + std::to_string(frozen.pid()) + "\",process=\"plain_target\"") !=
        std::string::npos);
  CHECK(again->body.find("cppops_threads{pid=\"" + std::to_string(late.pid()) + "\",process=\"thread_leak\"") !=
        std::string::npos);
  CHECK(again->body.find("cppops_exporter_scrapes_total 2\n") != std::string::npos);

  auto missing = httpGet(port, "/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
}

TEST_CASE("a real Prometheus scrapes the exporter and returns the blocked-thread series") {
  if (runProgram({"/bin/sh", "-c", "command -v prometheus"}, {}).exit_code != 0)
    FAIL("prometheus is missing: run scripts/setup.sh (Debian package prometheus)");
  TempDir dir;
  TargetProcess app({"metrics_app", {}, false, {}, {}}, dir.path());
  REQUIRE(app.waitForOutput("ready"));
  BackgroundCli exporter({"exporter", "--listen", "127.0.0.1:0"}, dir.path());
  const uint16_t exporter_port = startExporter(exporter);
  REQUIRE(exporter_port != 0);

  const uint16_t prometheus_port = freeLoopbackPort();
  REQUIRE(prometheus_port != 0);
  const std::string config = dir.path() + "/prometheus.yml";
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                           "scrape_configs:\n  - job_name: cppops\n    static_configs:\n"
                           "      - targets: ['127.0.0.1:"
                        << exporter_port << "']\n";
  TargetProcess prometheus({"/usr/bin/prometheus",
                            {"--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/data",
                             "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)},
                            false,
                            {},
                            {}},
                           dir.path());

  const std::string query = "cppops_threads{state=\"blocked\",pid=\"" + std::to_string(app.pid()) + "\"}";
  json result;
  for (int i = 0; i < 60 && result.empty(); ++i) {
    std::this_thread::sleep_for(500ms);
    auto r = httpGet(prometheus_port, "/api/v1/query?query=" + urlEncode(query), 5s);
    if (!r || r->status != 200) continue;
    json doc = json::parse(r->body, nullptr, false);
    if (doc.is_object() && doc.value("status", "") == "success") result = doc.at("data").at("result");
  }
  INFO("prometheus log: " << prometheus.err());
  REQUIRE(result.size() == 1);
  CHECK(result[0].at("metric").at("job") == "cppops");
  CHECK(result[0].at("metric").at("process") == "metrics_app");
  CHECK(result[0].at("metric").at("instance") == "127.0.0.1:" + std::to_string(exporter_port));
  CHECK(result[0].at("value")[1] == "3");
}

TEST_CASE("cppops exporter listens on IPv6 too, and a host that is neither address form is a usage error") {
  TempDir dir;
  TargetProcess app({"metrics_app", {}, false, {}, {}}, dir.path());
  REQUIRE(app.waitForOutput("ready"));
  BackgroundCli exporter({"exporter", "--listen", "[::1]:0"}, dir.path());
  const uint16_t port = startExporter(exporter, "[::1]");
  INFO(exporter.out());
  REQUIRE(port != 0);
  auto r = httpGet(port, "/metrics", 10s, "::1");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("cppops_threads{pid=\"" + std::to_string(app.pid()) + "\"") != std::string::npos);

  for (const std::string bad : {"::1:9464", "[::1:9464", "localhost:9464", "[127.0.0.1]:9464"}) {
    INFO(bad);
    CliResult refused = runCli({"exporter", "--listen", bad}, dir.path());
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("write it like 127.0.0.1:9464 or [::1]:9464") != std::string::npos);
  }
}
