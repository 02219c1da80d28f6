// One scrape of the whole host: every agent process found at this moment, asked concurrently, within one
// deadline. A process that does not answer in time is skipped and counted; it never holds up the others.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "metrics/collect.h"

namespace cppops::metrics {

struct Skipped {
  pid_t pid = 0;
  std::string process;  // comm, "" when the process is gone
  std::string reason;
};

struct HostScrape {
  std::vector<ProcessMetrics> answered;  // ascending pid
  std::vector<Skipped> skipped;          // did not answer by the deadline, or answered with an error
  double duration_seconds = 0;
};

// Each agent gets `per_agent` for its connection and request; the scrape returns by `deadline` whatever has
// answered by then. A request still running at the deadline finishes (or times out) on its own thread.
HostScrape scrapeHost(std::chrono::milliseconds per_agent, std::chrono::milliseconds deadline);

}  // namespace cppops::metrics
