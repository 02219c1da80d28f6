#include "metrics/scrape.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "proc/process.h"

namespace cppops::metrics {

namespace {

// Shared by the scrape and its workers; a worker that outlives the scrape keeps it alive until it is done.
struct Board {
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = 0;
  std::vector<std::optional<Result<ProcessMetrics>>> results;
};

}  // namespace

HostScrape scrapeHost(std::chrono::milliseconds per_agent, std::chrono::milliseconds deadline) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<discovery::Endpoint> endpoints = discovery::findAgents();
  auto board = std::make_shared<Board>();
  board->results.resize(endpoints.size());
  board->pending = endpoints.size();
  for (size_t i = 0; i < endpoints.size(); ++i) {
    std::thread([board, i, endpoint = endpoints[i], per_agent] {
      auto result = collect(endpoint, per_agent);
      std::lock_guard<std::mutex> lock(board->mu);
      board->results[i] = std::move(result);
      --board->pending;
      board->cv.notify_all();
    }).detach();
  }

  HostScrape scrape;
  std::unique_lock<std::mutex> lock(board->mu);
  board->cv.wait_until(lock, start + deadline, [&] { return board->pending == 0; });
  for (size_t i = 0; i < endpoints.size(); ++i) {
    auto& r = board->results[i];
    const auto info = r && *r ? std::nullopt : proc::readProcess(endpoints[i].pid);
    const std::string name = info ? info->name : "";
    if (!r) {
      scrape.skipped.push_back({endpoints[i].pid, name, "no answer within the scrape deadline"});
    } else if (!*r) {
      scrape.skipped.push_back({endpoints[i].pid, name, r->error().message});
    } else {
      scrape.answered.push_back(std::move(r->value()));
    }
  }
  lock.unlock();
  scrape.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return scrape;
}

}  // namespace cppops::metrics
