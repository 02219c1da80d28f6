// The METRICS message round-trip, and the Prometheus text format's escaping and numbers.
#include <catch2/catch.hpp>
#include <limits>

#include "metrics/exposition.h"
#include "protocol/messages.h"

using namespace cppops;

TEST_CASE("a METRICS reply survives encoding, and a truncated one is refused") {
  protocol::MetricsReply m;
  m.process.threads = 3;
  m.requests_served = 7;
  m.thread_counts_known = 1;
  m.threads_created = 5;
  m.threads.resize(2);
  m.threads[0].tid = 11;
  m.threads[0].status = 3;
  m.threads[0].syscall_line = "202 0x1 0x80 0x2 0x0 0x0 0x0 0x7ffc 0x7f00";
  m.threads[1].tid = 12;
  m.thread_states = "SR";
  protocol::AppMetric h;
  h.name = "lat";
  h.kind = protocol::kMetricHistogram;
  h.bounds = {0.5, 1.5};
  h.bucket_counts = {1, 2, 3};
  h.sum = 9.25;
  m.app.push_back(h);
  wire::Writer w;
  m.encode(w);
  std::vector<uint8_t> bytes = w.take();

  protocol::MetricsReply back;
  wire::Reader r(bytes);
  REQUIRE(back.decode(r));
  CHECK(back.process.threads == 3);
  CHECK(back.requests_served == 7);
  CHECK(back.threads_created == 5);
  REQUIRE(back.threads.size() == 2);
  CHECK(back.threads[0].syscall_line == m.threads[0].syscall_line);
  CHECK(back.thread_states == "SR");
  REQUIRE(back.app.size() == 1);
  CHECK(back.app[0].bounds == std::vector<double>{0.5, 1.5});
  CHECK(back.app[0].bucket_counts == std::vector<uint64_t>{1, 2, 3});
  CHECK(back.app[0].sum == 9.25);

  bytes.resize(bytes.size() - 1);
  protocol::MetricsReply cut;
  wire::Reader short_reader(bytes);
  CHECK_FALSE(cut.decode(short_reader));
}

TEST_CASE("exposition escaping and numbers") {
  CHECK(metrics::escapeLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(metrics::escapeHelp("x \"y\" \\ z\n") == "x \"y\" \\\\ z\\n");
  CHECK(metrics::formatValue(3) == "3");
  CHECK(metrics::formatValue(7.5) == "7.5");
  CHECK(metrics::formatValue(0.005) == "0.005");
  CHECK(metrics::formatValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(metrics::formatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(metrics::formatValue(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}
