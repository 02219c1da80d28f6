// The HEAP, GC and HEAP_PROFILE messages: every field survives a round trip, an empty request means a read, and a
// truncated payload is rejected.
#include <catch2/catch.hpp>

#include "protocol/messages.h"
#include "protocol/protocol.h"

using namespace cppops;

namespace {

template <typename Message>
Message roundTrip(const Message& in, bool* ok) {
  wire::Writer w;
  in.encode(w);
  std::vector<uint8_t> bytes = w.take();
  wire::Reader r(bytes);
  Message out;
  *ok = out.decode(r);
  // Every proper prefix is rejected.
  for (size_t n = 0; n < bytes.size(); ++n) {
    wire::Reader cut(bytes.data(), n);
    Message partial;
    if (partial.decode(cut)) {
      INFO("a prefix of " << n << " of " << bytes.size() << " bytes decoded");
      *ok = false;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("HEAP, GC and HEAP_PROFILE have codes 7, 8, 9 and capability names", "[protocol][heap]") {
  CHECK(static_cast<int>(protocol::Command::kHeap) == 7);
  CHECK(static_cast<int>(protocol::Command::kGc) == 8);
  CHECK(static_cast<int>(protocol::Command::kHeapProfile) == 9);
  CHECK(protocol::commandName(protocol::Command::kHeap) == "heap");
  CHECK(protocol::commandName(protocol::Command::kGc) == "gc");
  CHECK(protocol::commandName(protocol::Command::kHeapProfile) == "heap-profile");
  CHECK(protocol::commandFromName("heap-profile") == protocol::Command::kHeapProfile);
}

TEST_CASE("HeapReply round trip", "[protocol][heap]") {
  protocol::HeapReply in;
  in.allocator = "jemalloc";
  in.allocator_module = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
  in.allocator_version = "5.3.0";
  in.figures = {{"stats.allocated", 123456789012ull}, {"arenas.narenas", 9}};
  in.allocator_report = "<malloc/>";
  in.smaps_rollup = "Rss: 4 kB\n";
  in.smaps = "00400000-00401000 r-xp 00000000 08:01 1 /bin/x\n";
  in.stacks = {{100, 0x7ffc00001000}, {101, 0}};
  in.heap_hooks = 1;
  in.heap_sampling = 1;
  in.heap_rate_bytes = 524288;
  bool ok = false;
  protocol::HeapReply out = roundTrip(in, &ok);
  CHECK(ok);
  CHECK(out.allocator == in.allocator);
  CHECK(out.allocator_module == in.allocator_module);
  CHECK(out.allocator_version == in.allocator_version);
  REQUIRE(out.figures.size() == 2);
  CHECK(out.figures[0].name == "stats.allocated");
  CHECK(out.figures[0].value == 123456789012ull);
  CHECK(out.allocator_report == in.allocator_report);
  CHECK(out.smaps_rollup == in.smaps_rollup);
  CHECK(out.smaps == in.smaps);
  REQUIRE(out.stacks.size() == 2);
  CHECK(out.stacks[0].tid == 100);
  CHECK(out.stacks[0].sp == 0x7ffc00001000);
  CHECK(out.stacks[1].sp == 0);
  CHECK(out.heap_hooks == 1);
  CHECK(out.heap_sampling == 1);
  CHECK(out.heap_rate_bytes == 524288);
}

TEST_CASE("GcReply round trip", "[protocol][heap]") {
  protocol::GcReply in;
  in.allocator = "glibc";
  in.method = "malloc_trim(0)";
  in.result = -22;
  in.duration_ns = 1234567;
  in.before = {{"fordblks", 1 << 30}};
  in.after = {{"fordblks", 4096}, {"arena", 8192}};
  in.smaps_rollup_before = "Rss: 1048576 kB\n";
  in.smaps_rollup_after = "Rss: 4096 kB\n";
  bool ok = false;
  protocol::GcReply out = roundTrip(in, &ok);
  CHECK(ok);
  CHECK(out.allocator == "glibc");
  CHECK(out.method == "malloc_trim(0)");
  CHECK(out.result == -22);
  CHECK(out.duration_ns == 1234567);
  REQUIRE(out.before.size() == 1);
  CHECK(out.before[0].value == 1u << 30);
  REQUIRE(out.after.size() == 2);
  CHECK(out.after[1].name == "arena");
  CHECK(out.smaps_rollup_before == in.smaps_rollup_before);
  CHECK(out.smaps_rollup_after == in.smaps_rollup_after);
}

TEST_CASE("HeapProfileRequest: round trip, and an empty payload is a read", "[protocol][heap]") {
  protocol::HeapProfileRequest in;
  in.action = protocol::kHeapStart;
  in.rate_bytes = 65536;
  wire::Writer w;
  in.encode(w);
  std::vector<uint8_t> bytes = w.take();
  CHECK(bytes.size() == 9);
  wire::Reader r(bytes);
  protocol::HeapProfileRequest out;
  REQUIRE(out.decode(r));
  CHECK(out.action == protocol::kHeapStart);
  CHECK(out.rate_bytes == 65536);

  wire::Reader empty(nullptr, 0);
  protocol::HeapProfileRequest defaults;
  REQUIRE(defaults.decode(empty));
  CHECK(defaults.action == protocol::kHeapRead);

  wire::Reader cut(bytes.data(), 5);
  protocol::HeapProfileRequest partial;
  CHECK_FALSE(partial.decode(cut));
}

TEST_CASE("HeapProfileReply round trip", "[protocol][heap]") {
  protocol::HeapProfileReply in;
  in.interposed = 1;
  in.sampling = 0;
  in.rate_bytes = 524288;
  in.sampled_ns = 2000000000;
  in.dropped = 7;
  protocol::HeapSample s;
  s.alloc_objects = 4096;
  s.alloc_bytes = 64ull << 20;
  s.free_objects = 1024;
  s.free_bytes = 16ull << 20;
  s.pcs = {0x401000, 0x402000, 0x7f0000001000};
  in.samples = {s, protocol::HeapSample{}};
  in.notes = {"a note"};
  bool ok = false;
  protocol::HeapProfileReply out = roundTrip(in, &ok);
  CHECK(ok);
  CHECK(out.interposed == 1);
  CHECK(out.sampling == 0);
  CHECK(out.rate_bytes == 524288);
  CHECK(out.sampled_ns == 2000000000);
  CHECK(out.dropped == 7);
  REQUIRE(out.samples.size() == 2);
  CHECK(out.samples[0].alloc_objects == 4096);
  CHECK(out.samples[0].alloc_bytes == 64ull << 20);
  CHECK(out.samples[0].free_objects == 1024);
  CHECK(out.samples[0].free_bytes == 16ull << 20);
  CHECK(out.samples[0].pcs == s.pcs);
  CHECK(out.samples[1].pcs.empty());
  CHECK(out.notes == in.notes);
}
