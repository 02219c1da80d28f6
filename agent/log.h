// The agent's voice: single lines on the host's stderr, written with one write(2) so they do not interleave
// with the host's own output mid-line.
#pragma once

namespace cppops::agent {

void setLogQuiet(bool quiet);

// "cppops-agent[PID]: <message>\n". Async-signal-safe: no (vsnprintf).
void logLine(const char* format, ...) __attribute__((format(printf, 1, 2)));

// Like logLine, but at most one line per second for each `bucket`; the next line that gets through says how
// many were suppressed. Keeps a hostile client from flooding the host's log. Async-signal-safe: no.
enum class RateBucket { kRefusal, kBadRequest, kCount };
void logRateLimited(RateBucket bucket, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace cppops::agent
