// Profiles from raw samples to every output format, checked by the tools people open them with where those are
// installed (`go tool pprof`, xmllint) and by parsing the output here. The program is made up: a symbolizer
// stand-in names its pcs, and two functions burn CPU 3:1 on two threads.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "profile/build.h"
#include "profile/flamegraph.h"
#include "profile/folded.h"
#include "profile/heap_base.h"
#include "profile/model.h"
#include "profile/names.h"
#include "profile/pprof.h"
#include "profile/speedscope.h"
#include "profile/top.h"
#include "subprocess.h"

namespace cppops::profile {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

constexpr char kHot[] = "(anonymous namespace)::hotFunction(int)";
constexpr char kCold[] = "coldFunction(std::vector<int> const&)";
constexpr char kDispatch[] = "dispatch<int>(int)";  // inlined into worker(int)
constexpr char kWorker[] = "worker(int)";
constexpr char kStartThread[] = "start_thread";
constexpr char kProgram[] = "/usr/bin/burner";
constexpr char kLibc[] = "/lib/x86_64-linux-gnu/libc.so.6";

constexpr uint64_t kHotPc1 = 0x401010;
constexpr uint64_t kHotPc2 = 0x401014;
constexpr uint64_t kColdPc = 0x401110;
constexpr uint64_t kWorkerReturn = 0x402020;
constexpr uint64_t kStartThreadReturn = 0x7f0000403030;
constexpr uint64_t kTrampolineReturn = 0x7f0000404040;  // a signal handler's return into glibc's __restore_rt
constexpr uint64_t kPeriodNs = 10'000'000;  // 100 Hz
constexpr uint64_t kTotalSamples = 400;     // 300 hot, 100 cold

SourceFrame frame(const std::string& function, int line, const std::string& module, bool inlined = false) {
  SourceFrame f;
  f.function = function;
  f.file = module == kLibc ? "./nptl/pthread_create.c" : "/src/burner.cpp";
  f.line = line;
  f.module = module;
  f.inlined = inlined;
  return f;
}

// What a Symbolizer would say about the made-up program; counts lookups to show each pc is looked up once.
struct FakeSymbolizer {
  std::map<std::pair<uint64_t, bool>, int> lookups;

  std::vector<SourceFrame> operator()(uint64_t pc, bool is_return_address) {
    ++lookups[{pc, is_return_address}];
    std::vector<SourceFrame> frames;
    switch (pc) {
      case kHotPc1: frames = {frame(kHot, 10, kProgram)}; break;
      case kHotPc2: frames = {frame(kHot, 11, kProgram)}; break;
      case kColdPc: frames = {frame(kCold, 20, kProgram)}; break;
      case kWorkerReturn: frames = {frame(kDispatch, 30, kProgram, true), frame(kWorker, 40, kProgram)}; break;
      case kStartThreadReturn: frames = {frame(kStartThread, 442, kLibc)}; break;
      case kTrampolineReturn: frames = {frame(kSignalHandlerCalled, 0, kLibc)}; break;
      default: break;  // unknown: a bare address
    }
    for (SourceFrame& f : frames) f.address = pc;
    return frames;
  }
};

RawSample rawSample(pid_t tid, uint64_t leaf, uint64_t weight = 1) {
  RawSample sample;
  sample.tid = tid;
  sample.pcs = {leaf, kWorkerReturn, kStartThreadReturn};
  sample.weight = weight;
  return sample;
}

// Thread 101 takes every sample one by one; thread 102's hot samples come in pairs (timer overruns folded in).
RawProfile burnerRawProfile() {
  RawProfile raw;
  raw.pid = 4242;
  raw.mode = Mode::kCpu;
  raw.period_ns = kPeriodNs;
  raw.duration_ns = 2'000'000'000;
  raw.dropped = 3;
  raw.thread_names = {{101, "worker-1"}, {102, "worker-2"}};
  for (int i = 0; i < 150; ++i) raw.samples.push_back(rawSample(101, i % 2 == 0 ? kHotPc1 : kHotPc2));
  for (int i = 0; i < 50; ++i) raw.samples.push_back(rawSample(101, kColdPc));
  for (int i = 0; i < 75; ++i) raw.samples.push_back(rawSample(102, i % 2 == 0 ? kHotPc1 : kHotPc2, 2));
  for (int i = 0; i < 50; ++i) raw.samples.push_back(rawSample(102, kColdPc));
  return raw;
}

Profile burnerProfile() {
  FakeSymbolizer symbolizer;
  return buildProfile(burnerRawProfile(), [&symbolizer](uint64_t pc, bool ret) { return symbolizer(pc, ret); });
}

// A directory tree of our own (go wants a cache with subdirectories), removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/cppops-profile-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name, const std::string& contents) const {
    std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The program's full path from PATH (runProgram execs without a search), or "".
std::string findProgram(const std::string& name, const std::vector<std::string>& also = {}) {
  std::vector<std::string> candidates;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty()) candidates.push_back(dir + "/" + name);
  candidates.insert(candidates.end(), also.begin(), also.end());
  for (const std::string& candidate : candidates)
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  return "";
}

std::string gunzip(const std::string& data) {
  z_stream stream{};
  REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);  // gzip only: a zlib header would fail here
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[16384];
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  }
  inflateEnd(&stream);
  REQUIRE(status == Z_STREAM_END);
  return out;
}

// A protobuf reader for what the checks need: top-level fields as (number, varint or bytes).
struct Field {
  uint32_t number = 0;
  uint64_t varint = 0;
  std::string bytes;
};

std::vector<Field> parseFields(const std::string& data) {
  std::vector<Field> fields;
  size_t at = 0;
  auto varint = [&data, &at]() {
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(at < data.size());
      REQUIRE(shift < 64);
      unsigned char byte = static_cast<unsigned char>(data[at++]);
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
  };
  while (at < data.size()) {
    uint64_t tag = varint();
    Field field;
    field.number = static_cast<uint32_t>(tag >> 3);
    switch (tag & 7) {
      case 0: field.varint = varint(); break;
      case 2: {
        uint64_t length = varint();
        REQUIRE(at + length <= data.size());
        field.bytes = data.substr(at, length);
        at += length;
        break;
      }
      default: FAIL("unexpected wire type " << (tag & 7));
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

std::vector<uint64_t> packedVarints(const std::string& data) {
  std::vector<uint64_t> values;
  uint64_t value = 0;
  int shift = 0;
  for (char c : data) {
    unsigned char byte = static_cast<unsigned char>(c);
    value |= uint64_t{byte & 0x7fu} << shift;
    shift += 7;
    if ((byte & 0x80) == 0) {
      values.push_back(value);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

// Tags open and close in order, outside CDATA sections, comments and processing instructions.
bool tagsBalance(const std::string& xml) {
  std::vector<std::string> open;
  size_t at = 0;
  while ((at = xml.find('<', at)) != std::string::npos) {
    if (xml.compare(at, 9, "<![CDATA[") == 0) {
      at = xml.find("]]>", at);
      if (at == std::string::npos) return false;
      continue;
    }
    if (xml.compare(at, 4, "<!--") == 0 || xml.compare(at, 2, "<?") == 0) {
      at = xml.find('>', at);
      if (at == std::string::npos) return false;
      continue;
    }
    size_t end = xml.find('>', at);
    if (end == std::string::npos) return false;
    std::string tag = xml.substr(at + 1, end - at - 1);
    at = end;
    if (tag.empty()) return false;
    if (tag.back() == '/') continue;  // self-closing
    std::string name = tag.substr(tag[0] == '/' ? 1 : 0);
    name = name.substr(0, name.find_first_of(" \t\n"));
    if (tag[0] != '/') {
      open.push_back(name);
    } else {
      if (open.empty() || open.back() != name) return false;
      open.pop_back();
    }
  }
  return open.empty();
}

// Lines of a `go tool pprof -top` table: the function (last column) -> flat%.
std::map<std::string, double> pprofTopFlatPercent(const std::string& out) {
  std::map<std::string, double> flat;
  std::stringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::stringstream columns(line);
    std::string value, percent, sum, cum, cum_percent;
    if (!(columns >> value >> percent >> sum >> cum >> cum_percent)) continue;
    if (percent.empty() || percent.back() != '%' || cum_percent.back() != '%') continue;
    std::string function;
    std::getline(columns >> std::ws, function);
    try {
      flat[function] = std::stod(percent.substr(0, percent.size() - 1));
    } catch (const std::exception&) {
      // the header line
    }
  }
  return flat;
}

TEST_CASE("buildProfile symbolizes each pc once and merges identical samples", "[profile]") {
  FakeSymbolizer symbolizer;
  RawProfile raw = burnerRawProfile();
  Profile profile = buildProfile(raw, [&symbolizer](uint64_t pc, bool ret) { return symbolizer(pc, ret); });

  for (const auto& [key, count] : symbolizer.lookups) CHECK(count == 1);
  CHECK(symbolizer.lookups.count({kHotPc1, false}) == 1);
  CHECK(symbolizer.lookups.count({kWorkerReturn, true}) == 1);

  // Two hot pcs, one cold, worker's two frames (dispatch inlined), start_thread.
  REQUIRE(profile.locations.size() == 6);
  int inlined = 0;
  for (const Location& location : profile.locations) inlined += location.inlined ? 1 : 0;
  CHECK(inlined == 1);

  // Per thread: hot at pc 1, hot at pc 2, cold.
  REQUIRE(profile.samples.size() == 6);
  uint64_t total = 0, hot = 0;
  for (const Sample& sample : profile.samples) {
    total += sample.count;
    CHECK(sample.value_ns == sample.count * kPeriodNs);
    REQUIRE(sample.locations.size() == 4);  // leaf, dispatch (inlined), worker, start_thread
    CHECK(profile.locations[sample.locations[1]].function == kDispatch);
    CHECK(profile.locations[sample.locations[1]].inlined);
    CHECK(profile.locations[sample.locations[2]].function == kWorker);
    CHECK(profile.locations[sample.locations[3]].function == kStartThread);
    if (profile.locations[sample.locations[0]].function == kHot) hot += sample.count;
    std::string tid = labelValue(sample, "thread_id");
    CHECK((tid == "101" || tid == "102"));
    CHECK(labelValue(sample, "thread_name") == (tid == "101" ? "worker-1" : "worker-2"));
    CHECK(labelValue(sample, "state").empty());
  }
  CHECK(total == kTotalSamples);
  CHECK(hot == 300);
  CHECK(profile.pid == 4242);
  CHECK(profile.dropped == 3);
  CHECK(profile.period_ns == kPeriodNs);
}

TEST_CASE("buildProfile looks the pc after a signal trampoline up as it is, not as a return address", "[profile]") {
  // A CPU sample in a signal handler (kHotPc1) that interrupted kColdPc; a heap sample from malloc in the handler.
  for (const Mode mode : {Mode::kCpu, Mode::kHeap}) {
    INFO((mode == Mode::kCpu ? "cpu" : "heap"));
    FakeSymbolizer symbolizer;
    RawProfile raw;
    raw.mode = mode;
    RawSample sample;
    sample.tid = 101;
    sample.pcs = {kHotPc1, kTrampolineReturn, kColdPc, kWorkerReturn, kStartThreadReturn};
    raw.samples.push_back(sample);
    Profile profile = buildProfile(raw, [&symbolizer](uint64_t pc, bool ret) { return symbolizer(pc, ret); });
    const std::map<std::pair<uint64_t, bool>, int> expected = {{{kHotPc1, mode == Mode::kHeap}, 1},
                                                                {{kTrampolineReturn, true}, 1},
                                                                {{kColdPc, false}, 1},
                                                                {{kWorkerReturn, true}, 1},
                                                                {{kStartThreadReturn, true}, 1}};
    CHECK(symbolizer.lookups == expected);
    REQUIRE(profile.samples.size() == 1);
    CHECK(profile.locations[profile.samples[0].locations[1]].function == kSignalHandlerCalled);
  }
}

TEST_CASE("buildProfile keeps bare addresses, empty stacks and wall-mode states", "[profile]") {
  RawProfile raw;
  raw.mode = Mode::kWall;
  raw.period_ns = kPeriodNs;
  raw.thread_names = {{7, "poller"}};
  RawSample waiting;
  waiting.tid = 7;
  waiting.pcs = {0x1234, 0x5678};
  waiting.state = "poll";
  raw.samples = {waiting, waiting};
  raw.samples[1].state = "running";
  RawSample nameless;  // a thread the agent could not name, caught with no stack
  nameless.tid = 8;
  nameless.state = "disk_wait";
  raw.samples.push_back(nameless);

  Profile profile = buildProfile(raw, static_cast<Symbolizer*>(nullptr));
  REQUIRE(profile.locations.size() == 2);
  CHECK(profile.locations[0].address == 0x1234);
  CHECK(profile.locations[0].function.empty());
  REQUIRE(profile.samples.size() == 3);  // the two poller samples differ in state
  CHECK(labelValue(profile.samples[0], "state") == "poll");
  CHECK(labelValue(profile.samples[1], "state") == "running");
  CHECK(labelValue(profile.samples[2], "state") == "disk_wait");
  CHECK(labelValue(profile.samples[2], "thread_name").empty());
  CHECK(labelValue(profile.samples[2], "thread_id") == "8");
  CHECK(profile.samples[2].locations.empty());

  // Every encoder copes with addresses and an empty stack.
  CHECK(encodeFolded(profile) == "0x5678;0x1234 2\n[no stack] 1\n");
  CHECK(tagsBalance(renderFlameGraph(profile)));
  CHECK_THAT(renderTop(computeTop(profile)), Contains("[no stack]"));
  CHECK(encodeSpeedscope(profile)["profiles"].size() == 2);
  std::vector<Field> fields = parseFields(gunzip(encodePprof(profile)));
  CHECK(std::count_if(fields.begin(), fields.end(), [](const Field& f) { return f.number == 2; }) == 3);
}

TEST_CASE("pprof output is read by go tool pprof", "[profile][pprof]") {
  Profile profile = burnerProfile();
  PprofOptions options;
  options.time_nanos = 1'700'000'000'000'000'000;
  std::string gz = encodePprof(profile, options);
  REQUIRE(gz.size() > 18);
  CHECK(static_cast<unsigned char>(gz[0]) == 0x1f);  // gzip magic
  CHECK(static_cast<unsigned char>(gz[1]) == 0x8b);

  SECTION("the string table, decoded here") {
    std::string proto = gunzip(gz);
    CHECK(proto == encodePprofProto(profile, options));
    std::vector<std::string> strings;
    std::map<uint32_t, int> counts;
    uint64_t value_sum = 0, count_sum = 0;
    for (const Field& field : parseFields(proto)) {
      ++counts[field.number];
      if (field.number == 6) strings.push_back(field.bytes);
      if (field.number == 2) {
        for (const Field& inner : parseFields(field.bytes)) {
          if (inner.number != 2) continue;
          std::vector<uint64_t> values = packedVarints(inner.bytes);
          REQUIRE(values.size() == 2);
          count_sum += values[0];
          value_sum += values[1];
        }
      }
    }
    REQUIRE_FALSE(strings.empty());
    CHECK(strings[0].empty());
    for (const char* expected : {kHot, kCold, kDispatch, kWorker, kStartThread, "samples", "count", "cpu",
                                 "nanoseconds", "thread_name", "thread_id", "worker-1", "101", kProgram, kLibc})
      CHECK(std::find(strings.begin(), strings.end(), expected) != strings.end());
    CHECK(counts[1] == 2);  // sample types
    CHECK(counts[2] == 6);  // samples
    CHECK(counts[3] == 2);  // mappings: the program and libc
    CHECK(counts[4] == 5);  // locations: one per pc, dispatch and worker share one
    CHECK(counts[5] == 5);  // functions
    CHECK(count_sum == kTotalSamples);
    CHECK(value_sum == kTotalSamples * kPeriodNs);
  }

  SECTION("go tool pprof -top") {
    std::string go = findProgram("go", {"/usr/lib/go/bin/go", "/usr/local/go/bin/go"});
    if (go.empty()) {
      WARN("skipped: `go` is not installed (Debian: golang-go)");
      return;
    }
    ScratchDir scratch;
    std::string file = scratch.file("burner.pb.gz", gz);
    std::map<std::string, std::string> env = {{"HOME", scratch.path()},
                                              {"GOCACHE", scratch.path() + "/gocache"},
                                              {"GOPATH", scratch.path() + "/gopath"},
                                              {"PPROF_TMPDIR", scratch.path()},
                                              {"GOFLAGS", ""},
                                              {"GOTOOLCHAIN", "local"}};
    test::CliResult top = test::runProgram({go, "tool", "pprof", "-top", file}, env, std::chrono::seconds(120));
    INFO("stdout:\n" << top.out << "\nstderr:\n" << top.err);
    REQUIRE(top.exit_code == 0);
    std::map<std::string, double> flat = pprofTopFlatPercent(top.out);
    REQUIRE(flat.count(kHot) == 1);
    REQUIRE(flat.count(kCold) == 1);
    CHECK(flat[kHot] == Approx(75.0).margin(0.01));
    CHECK(flat[kCold] == Approx(25.0).margin(0.01));
    CHECK_THAT(top.out, Contains("Type: cpu"));
    // The first entry is the hot function.
    CHECK(top.out.find(kHot) < top.out.find(kCold));

    // Labels, per thread.
    test::CliResult tags = test::runProgram({go, "tool", "pprof", "-tags", file}, env, std::chrono::seconds(120));
    INFO("tags:\n" << tags.out << tags.err);
    REQUIRE(tags.exit_code == 0);
    CHECK_THAT(tags.out, Contains("thread_name") && Contains("worker-1") && Contains("worker-2"));

    // Inlined frames: dispatch<int> and worker(int) are two lines of one location.
    test::CliResult traces =
        test::runProgram({go, "tool", "pprof", "-traces", file}, env, std::chrono::seconds(120));
    INFO("traces:\n" << traces.out << traces.err);
    REQUIRE(traces.exit_code == 0);
    CHECK_THAT(traces.out, Contains("(inline)") && Contains(kDispatch));
  }
}

TEST_CASE("folded stacks parse and add up to the sample count", "[profile][folded]") {
  Profile profile = burnerProfile();
  for (bool thread_root : {false, true}) {
    FoldedOptions options;
    options.thread_root = thread_root;
    std::string folded = encodeFolded(profile, options);
    INFO(folded);
    std::stringstream lines(folded);
    uint64_t total = 0, hot = 0;
    size_t count = 0;
    for (std::string line; std::getline(lines, line);) {
      ++count;
      size_t space = line.rfind(' ');
      REQUIRE(space != std::string::npos);
      std::string stack = line.substr(0, space);
      uint64_t samples = std::stoull(line.substr(space + 1));
      total += samples;
      if (stack.size() >= std::strlen(kHot) && stack.compare(stack.size() - std::strlen(kHot), std::string::npos, kHot) == 0)
        hot += samples;
      // Root first: start_thread (or the thread) opens every stack.
      if (thread_root) {
        CHECK_THAT(stack, StartsWith("worker-1 (101);start_thread;") || StartsWith("worker-2 (102);start_thread;"));
      } else {
        CHECK_THAT(stack, StartsWith(std::string(kStartThread) + ";" + kWorker + ";" + kDispatch + ";"));
      }
    }
    CHECK(total == kTotalSamples);
    CHECK(hot == 300);
    // Without threads, one line per function: the two hot pcs fold into one stack.
    CHECK(count == (thread_root ? 4u : 2u));
  }
}

TEST_CASE("the flame graph is well-formed XML naming the hot function", "[profile][svg]") {
  Profile profile = burnerProfile();
  FlameGraphOptions options;
  options.title = "burner <cpu> & friends";
  std::string svg = renderFlameGraph(profile, options);
  CHECK(tagsBalance(svg));
  CHECK_THAT(svg, StartsWith("<?xml"));
  CHECK_THAT(svg, Contains(kHot));
  CHECK_THAT(svg, Contains("coldFunction(std::vector&lt;int&gt; const&amp;)"));
  CHECK_THAT(svg, Contains("burner &lt;cpu&gt; &amp; friends"));
  CHECK_THAT(svg, Contains(std::string(kHot) + " (300 samples, 75.00%)"));
  CHECK_THAT(svg, Contains("coldFunction(std::vector&lt;int&gt; const&amp;) (100 samples, 25.00%)"));
  CHECK_THAT(svg, Contains("<script") && Contains("function zoom(") && Contains("function search("));
  CHECK(svg.find("http://", svg.find("xmlns=\"http://www.w3.org/2000/svg\"") + 10) == std::string::npos);
  CHECK(svg == renderFlameGraph(profile, options));  // deterministic

  // Names that are not valid UTF-8 or carry control characters still give valid XML.
  Profile odd = profile;
  odd.locations[0].function = std::string("bad\xff\xfe utf8 \x01 ctl \xe2\x82 cut ]]> end \xe2\x82\xac");

  std::string xmllint = findProgram("xmllint");
  for (const auto& [name, graph] : {std::pair<std::string, std::string>{"burner", svg},
                                    {"odd", renderFlameGraph(odd, {"odd", true, 800})}}) {
    INFO(name);
    CHECK(tagsBalance(graph));
    if (xmllint.empty()) {
      WARN("xmllint is not installed (Debian: libxml2-utils): checked tag balance only");
      continue;
    }
    ScratchDir scratch;
    test::CliResult lint = test::runProgram({xmllint, "--noout", scratch.file(name + ".svg", graph)}, {});
    INFO(lint.err);
    CHECK(lint.exit_code == 0);
    CHECK(lint.err.empty());
  }
}

TEST_CASE("speedscope JSON has the schema, a profile per thread and the right weights", "[profile][speedscope]") {
  Profile profile = burnerProfile();
  nlohmann::json parsed = nlohmann::json::parse(encodeSpeedscope(profile).dump());
  CHECK(parsed["$schema"] == "https://www.speedscope.app/file-format-schema.json");
  const nlohmann::json& frames = parsed["shared"]["frames"];
  REQUIRE(frames.is_array());
  CHECK(frames.size() == 5);  // functions, not pcs: the two hot pcs are one frame
  REQUIRE(parsed["profiles"].size() == 2);
  CHECK(parsed["profiles"][0]["name"] == "worker-1 (101)");
  CHECK(parsed["profiles"][1]["name"] == "worker-2 (102)");
  uint64_t total = 0, hot = 0;
  for (const nlohmann::json& thread : parsed["profiles"]) {
    CHECK(thread["type"] == "sampled");
    CHECK(thread["unit"] == "nanoseconds");
    REQUIRE(thread["samples"].size() == thread["weights"].size());
    uint64_t thread_total = 0;
    for (size_t i = 0; i < thread["samples"].size(); ++i) {
      const nlohmann::json& stack = thread["samples"][i];
      REQUIRE(stack.size() == 4);
      CHECK(frames.at(stack.front().get<size_t>())["name"] == kStartThread);  // root first
      uint64_t weight = thread["weights"][i].get<uint64_t>();
      thread_total += weight;
      if (frames.at(stack.back().get<size_t>())["name"] == kHot) hot += weight;
    }
    CHECK(thread["endValue"].get<uint64_t>() == thread_total);
    total += thread_total;
  }
  CHECK(total == kTotalSamples * kPeriodNs);
  CHECK(static_cast<double>(hot) / static_cast<double>(total) == Approx(0.75));
}

TEST_CASE("the top table puts the hot function first at 75%", "[profile][top]") {
  Profile profile = burnerProfile();
  TopTable table = computeTop(profile);
  CHECK(table.total == kTotalSamples);
  REQUIRE(table.entries.size() == 5);
  CHECK(table.entries[0].function == kHot);
  CHECK(table.entries[0].flat == 300);
  CHECK(table.entries[0].flat_fraction == Approx(0.75));
  CHECK(table.entries[1].function == kCold);
  CHECK(table.entries[1].flat_fraction == Approx(0.25));
  CHECK(table.entries[1].sum_fraction == Approx(1.0));
  // Callers: no flat time, all of it cumulative.
  CHECK(table.entries[2].flat == 0);
  CHECK(table.entries[2].cum == kTotalSamples);

  std::string text = renderTop(table);
  INFO(text);
  std::stringstream lines(text);
  std::string line;
  while (std::getline(lines, line) && line.find("flat%") == std::string::npos) {
  }
  REQUIRE(std::getline(lines, line));
  CHECK_THAT(line, Contains("3.00s") && Contains("75.00%") && Contains(kHot));
  CHECK_THAT(text, Contains("Total samples = 400 (4.00s)") && Contains("3 dropped"));

  TopTable first = computeTop(profile, 1);
  CHECK(first.entries.size() == 1);
  CHECK(first.functions == 5);
}

// A heap profile: the "hot" site keeps 48 MiB of the 64 MiB it allocated, the "cold" one 16 MiB of 16 MiB; its
// samples come from two threads (which heap profiles do not tell apart) and are merged.
RawProfile heapRawProfile(HeapValue shown) {
  RawProfile raw;
  raw.pid = 4242;
  raw.mode = Mode::kHeap;
  raw.duration_ns = 3'000'000'000;
  raw.heap_rate_bytes = 524288;
  raw.heap_shown = shown;
  auto add = [&raw, shown](pid_t tid, uint64_t leaf, std::vector<uint64_t> values) {
    RawSample sample = rawSample(tid, leaf);
    sample.heap = std::move(values);
    sample.weight = sample.heap[shown];
    raw.samples.push_back(std::move(sample));
  };
  add(101, kHotPc1, {2048, 32u << 20, 1536, 24u << 20});
  add(102, kHotPc1, {2048, 32u << 20, 1536, 24u << 20});
  add(101, kColdPc, {1024, 16u << 20, 1024, 16u << 20});
  return raw;
}

Profile heapProfile(HeapValue shown = kInuseSpace) {
  FakeSymbolizer symbolizer;
  return buildProfile(heapRawProfile(shown), [&symbolizer](uint64_t pc, bool ret) { return symbolizer(pc, ret); });
}

TEST_CASE("heap profiles: merged by stack alone, four values per sample, as Go writes them", "[profile][pprof][heap]") {
  Profile profile = heapProfile();
  REQUIRE(profile.samples.size() == 2);
  CHECK(profile.samples[0].labels.empty());
  CHECK(profile.samples[0].heap == std::vector<uint64_t>{4096, 64u << 20, 3072, 48u << 20});
  CHECK(profile.samples[0].count == 48u << 20);

  std::string gz = encodePprof(profile);
  std::string proto = gunzip(gz);
  std::vector<std::string> strings;
  std::vector<std::pair<uint64_t, uint64_t>> sample_types;
  std::vector<std::vector<uint64_t>> values;
  uint64_t period = 0;
  std::pair<uint64_t, uint64_t> period_type;
  for (const Field& field : parseFields(proto)) {
    if (field.number == 6) strings.push_back(field.bytes);
    if (field.number == 12) period = field.varint;
    if (field.number == 1 || field.number == 11) {
      std::pair<uint64_t, uint64_t> type;
      for (const Field& inner : parseFields(field.bytes)) (inner.number == 1 ? type.first : type.second) = inner.varint;
      (field.number == 1 ? sample_types.push_back(type) : void(period_type = type));
    }
    if (field.number == 2)
      for (const Field& inner : parseFields(field.bytes))
        if (inner.number == 2) values.push_back(packedVarints(inner.bytes));
  }
  REQUIRE(sample_types.size() == 4);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"alloc_objects", "count"}, {"alloc_space", "bytes"}, {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(strings.at(sample_types[i].first) == expected[i].first);
    CHECK(strings.at(sample_types[i].second) == expected[i].second);
  }
  CHECK(strings.at(period_type.first) == "space");
  CHECK(strings.at(period_type.second) == "bytes");
  CHECK(period == 524288);
  REQUIRE(values.size() == 2);
  CHECK(values[0] == std::vector<uint64_t>{4096, 64u << 20, 3072, 48u << 20});
  CHECK(values[1] == std::vector<uint64_t>{1024, 16u << 20, 1024, 16u << 20});
  CHECK(std::find(strings.begin(), strings.end(), "thread_id") == strings.end());

  std::string go = findProgram("go", {"/usr/lib/go/bin/go", "/usr/local/go/bin/go"});
  if (go.empty()) {
    WARN("skipped: `go` is not installed (Debian: golang-go)");
    return;
  }
  ScratchDir scratch;
  std::string file = scratch.file("heap.pb.gz", gz);
  std::map<std::string, std::string> env = {{"HOME", scratch.path()},        {"GOCACHE", scratch.path() + "/gocache"},
                                            {"GOPATH", scratch.path() + "/gopath"}, {"PPROF_TMPDIR", scratch.path()},
                                            {"GOFLAGS", ""},                    {"GOTOOLCHAIN", "local"}};
  test::CliResult inuse = test::runProgram({go, "tool", "pprof", "-top", file}, env, std::chrono::seconds(120));
  INFO("stdout:\n" << inuse.out << "\nstderr:\n" << inuse.err);
  REQUIRE(inuse.exit_code == 0);
  CHECK_THAT(inuse.out, Contains("Type: inuse_space"));
  std::map<std::string, double> flat = pprofTopFlatPercent(inuse.out);
  CHECK(flat[kHot] == Approx(75.0).margin(0.01));
  CHECK(flat[kCold] == Approx(25.0).margin(0.01));
  test::CliResult alloc =
      test::runProgram({go, "tool", "pprof", "-sample_index=alloc_space", "-top", file}, env, std::chrono::seconds(120));
  CHECK_THAT(alloc.out, Contains("Type: alloc_space"));
  flat = pprofTopFlatPercent(alloc.out);
  CHECK(flat[kHot] == Approx(80.0).margin(0.01));
  CHECK(flat[kCold] == Approx(20.0).margin(0.01));
}

TEST_CASE("heap profiles in the text views: bytes in the top table, the chosen value in folded stacks", "[profile][heap]") {
  std::string text = renderTop(computeTop(heapProfile()));
  INFO(text);
  CHECK_THAT(text, Contains("Type: inuse_space") && Contains("Total samples = 67108864 (64.00MB)"));
  CHECK_THAT(text, Contains("48.00MB  75.00%") && Contains("16.00MB  25.00%"));
  std::string folded = encodeFolded(heapProfile(kAllocObjects));
  CHECK_THAT(folded, Contains(std::string(kHot) + " 4096\n") && Contains(std::string(kCold) + " 1024\n"));
  CHECK_THAT(renderFlameGraph(heapProfile()), Contains("64.00MB inuse_space"));
  CHECK(formatBytes(512) == "512B");
  CHECK(formatBytes(1536) == "1.50kB");
  CHECK(formatBytes(3ull << 30) == "3.00GB");
}

TEST_CASE("heap profiles read back from pprof, and growth since a base, stack by stack", "[profile][heap]") {
  Profile now = heapProfile();
  auto read = readHeapPprof(encodePprof(now));
  REQUIRE(read);
  REQUIRE(read->samples.size() == 2);
  CHECK(read->heap_rate_bytes == 524288);
  CHECK(read->samples[0].heap == now.samples[0].heap);
  CHECK(stackNames(*read, read->samples[0]) == stackNames(now, now.samples[0]));
  CHECK(stackNames(*read, read->samples[1]) == stackNames(now, now.samples[1]));

  // The base: the hot site held 40 of its 48 MiB then, the cold site 20 MiB (more than now).
  Profile base = now;
  base.samples[0].heap = {1000, 40u << 20, 800, 40u << 20};
  base.samples[1].heap = {500, 8u << 20, 1280, 20u << 20};
  auto base_read = readHeapPprof(encodePprof(base));
  REQUIRE(base_read);
  BaseComparison comparison;
  Profile grown = subtractBase(now, *base_read, &comparison);
  CHECK(comparison.matched == 2);
  CHECK(comparison.shrank == 1);
  REQUIRE(grown.samples.size() == 1);
  CHECK(grown.samples[0].heap == std::vector<uint64_t>{3096, 24u << 20, 2272, 8u << 20});
  CHECK(grown.samples[0].count == 8u << 20);
  CHECK(stackNames(grown, grown.samples[0]).back() == kHot);

  auto cpu = readHeapPprof(encodePprof(burnerProfile()));
  REQUIRE_FALSE(cpu);
  CHECK_THAT(cpu.error().message, Contains("not a heap profile"));
  CHECK_FALSE(readHeapPprof("not a profile"));
  std::string gz = encodePprof(now);
  CHECK_FALSE(readHeapPprof(gz.substr(0, gz.size() / 2)));
}

}  // namespace
}  // namespace cppops::profile
