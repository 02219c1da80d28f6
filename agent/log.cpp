#include "log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace cppops::agent {

namespace {

std::atomic<bool> g_quiet{false};

struct Bucket {
  std::atomic<int64_t> last_second{-1};
  std::atomic<unsigned> suppressed{0};
};
Bucket g_buckets[static_cast<int>(RateBucket::kCount)];

void writeLine(const char* suffix, const char* format, va_list args) {
  if (g_quiet.load(std::memory_order_relaxed)) return;
  char line[512];
  int n = std::snprintf(line, sizeof line, "cppops-agent[%d]: ", static_cast<int>(getpid()));
  n += std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n), format, args);
  if (n > static_cast<int>(sizeof line) - 2) n = static_cast<int>(sizeof line) - 2;
  n += std::snprintf(line + n, sizeof line - static_cast<size_t>(n), "%s\n", suffix);
  if (n > static_cast<int>(sizeof line) - 1) n = static_cast<int>(sizeof line) - 1;
  // Best effort: a closed or full stderr must never disturb the host.
  ssize_t ignored = ::write(STDERR_FILENO, line, static_cast<size_t>(n));
  (void)ignored;
}

}  // namespace

void setLogQuiet(bool quiet) { g_quiet.store(quiet, std::memory_order_relaxed); }

void logLine(const char* format, ...) {
  va_list args;
  va_start(args, format);
  writeLine("", format, args);
  va_end(args);
}

void logRateLimited(RateBucket which, const char* format, ...) {
  Bucket& b = g_buckets[static_cast<int>(which)];
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t last = b.last_second.load(std::memory_order_relaxed);
  if (last == now.tv_sec || !b.last_second.compare_exchange_strong(last, now.tv_sec)) {
    b.suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  unsigned suppressed = b.suppressed.exchange(0, std::memory_order_relaxed);
  char suffix[64] = "";
  if (suppressed > 0) std::snprintf(suffix, sizeof suffix, " (%u similar lines suppressed)", suppressed);
  va_list args;
  va_start(args, format);
  writeLine(suffix, format, args);
  va_end(args);
}

}  // namespace cppops::agent
