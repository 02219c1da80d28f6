// cppops exporter --listen HOST:PORT: /metrics over HTTP for every agent process on this host, for Prometheus.
// Processes are discovered at each scrape; one that does not answer in time is skipped and counted.
#include <fmt/format.h>

#include <atomic>

#include "command.h"
#include "exit_codes.h"
#include "metrics/exposition.h"
#include "metrics/http_server.h"
#include "metrics/scrape.h"

namespace cppops::cli {

namespace {

struct ExporterFlags {
  std::string listen = "127.0.0.1:9464";
  int scrape_deadline_ms = 5000;
};

std::string exporterFamilies(const metrics::HostScrape& scrape, uint64_t skipped_total, uint64_t scrapes_total) {
  std::string out;
  out += "# HELP cppops_exporter_processes Agent processes found in the last scrape, by whether they answered.\n"
         "# TYPE cppops_exporter_processes gauge\n";
  out += fmt::format("cppops_exporter_processes{{result=\"answered\"}} {}\n", scrape.answered.size());
  out += fmt::format("cppops_exporter_processes{{result=\"skipped\"}} {}\n", scrape.skipped.size());
  out += "# HELP cppops_exporter_skipped_process Processes left out of the last scrape (1 each), to find the one "
         "that does not answer.\n# TYPE cppops_exporter_skipped_process gauge\n";
  for (const auto& s : scrape.skipped)
    out += fmt::format("cppops_exporter_skipped_process{{pid=\"{}\",process=\"{}\"}} 1\n", s.pid,
                       metrics::escapeLabelValue(s.process));
  out += "# HELP cppops_exporter_skipped_total Processes left out of a scrape because they did not answer in time "
         "or answered with an error.\n# TYPE cppops_exporter_skipped_total counter\n";
  out += fmt::format("cppops_exporter_skipped_total {}\n", skipped_total);
  out += "# HELP cppops_exporter_scrapes_total Scrapes served.\n# TYPE cppops_exporter_scrapes_total counter\n";
  out += fmt::format("cppops_exporter_scrapes_total {}\n", scrapes_total);
  out += "# HELP cppops_exporter_scrape_duration_seconds How long the last scrape took.\n"
         "# TYPE cppops_exporter_scrape_duration_seconds gauge\n";
  out += "cppops_exporter_scrape_duration_seconds " + metrics::formatValue(scrape.duration_seconds) + "\n";
  return out;
}

int runExporter(const ExporterFlags& f, const CommonFlags& flags) {
  auto server = metrics::HttpServer::listen(f.listen);
  if (!server) return reportError(server.error(), flags);
  const std::string url = fmt::format("http://{}:{}/metrics", server->host(), server->port());
  if (flags.json)
    printJson({{"listen", fmt::format("{}:{}", server->host(), server->port())}, {"url", url}});
  else
    fmt::print("cppops exporter: serving {}\n", url);
  std::fflush(stdout);

  uint64_t skipped_total = 0;
  uint64_t scrapes_total = 0;
  const auto per_agent = std::min(flags.timeout(), std::chrono::milliseconds(f.scrape_deadline_ms));
  server->serve(
      [&](const std::string&, const std::string& path) -> metrics::HttpResponse {
        if (path == "/")
          return {200, "text/html; charset=utf-8",
                  "<html><body><h1>cppops exporter</h1><p><a href=\"/metrics\">/metrics</a></p></body></html>\n"};
        if (path != "/metrics") return {404, "text/plain; charset=utf-8", "only /metrics is here\n"};
        metrics::HostScrape scrape =
            metrics::scrapeHost(per_agent, std::chrono::milliseconds(f.scrape_deadline_ms));
        skipped_total += scrape.skipped.size();
        ++scrapes_total;
        for (const auto& s : scrape.skipped)
          fmt::print(stderr, "cppops exporter: skipped process {}: {}\n", s.pid, s.reason);
        return {200, "text/plain; version=0.0.4; charset=utf-8",
                metrics::renderPrometheus(scrape.answered) + exporterFamilies(scrape, skipped_total, scrapes_total)};
      },
      5000);
}

}  // namespace

void registerExporter(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static ExporterFlags f;
  auto* cmd = app.add_subcommand(
      "exporter", "Serve /metrics over HTTP for every agent process on this host (point Prometheus at it)");
  cmd->add_option("--listen", f.listen, "HOST:PORT to listen on (default 127.0.0.1:9464; port 0 picks a free one)");
  cmd->add_option("--scrape-deadline", f.scrape_deadline_ms,
                  "Milliseconds one scrape may take; processes that have not answered by then are skipped "
                  "(default 5000; keep it under Prometheus's scrape_timeout)")
      ->check(CLI::Range(50, 600000));
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "Every process is labelled pid, process (its name) and cgroup. Only numeric IPv4 addresses; listen on a\n"
      "loopback or private address: the metrics name your processes. --timeout bounds each agent's answer.\n\n"
      "Examples:\n"
      "  cppops exporter\n"
      "  cppops exporter --listen 0.0.0.0:9464 --scrape-deadline 3000\n"
      "  curl -s http://127.0.0.1:9464/metrics | grep 'cppops_threads{'");
  cmd->callback([&] { exit_code = runExporter(f, flags); });
}

}  // namespace cppops::cli
