#include "profile/pprof.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <map>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "profile/names.h"

namespace cppops::profile {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// The protobuf wire format, as much of it as profile.proto needs: varints and length-delimited fields.

constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;

// Field numbers from profile.proto; they are the file format, never renumber.
namespace field {
constexpr uint32_t kProfileSampleType = 1, kProfileSample = 2, kProfileMapping = 3, kProfileLocation = 4,
                   kProfileFunction = 5, kProfileStringTable = 6, kProfileTimeNanos = 9, kProfileDurationNanos = 10,
                   kProfilePeriodType = 11, kProfilePeriod = 12, kProfileComment = 13;
constexpr uint32_t kValueTypeType = 1, kValueTypeUnit = 2;
constexpr uint32_t kSampleLocationId = 1, kSampleValue = 2, kSampleLabel = 3;
constexpr uint32_t kLabelKey = 1, kLabelStr = 2;
constexpr uint32_t kMappingId = 1, kMappingMemoryStart = 2, kMappingMemoryLimit = 3, kMappingFilename = 5,
                   kMappingHasFunctions = 7, kMappingHasFilenames = 8, kMappingHasLineNumbers = 9,
                   kMappingHasInlineFrames = 10;
constexpr uint32_t kLocationId = 1, kLocationMappingId = 2, kLocationAddress = 3, kLocationLine = 4;
constexpr uint32_t kLineFunctionId = 1, kLineLine = 2;
constexpr uint32_t kFunctionId = 1, kFunctionName = 2, kFunctionFilename = 4;
}  // namespace field

class Message {
 public:
  void varint(uint32_t number, uint64_t value) {
    tag(number, kVarint);
    raw(value);
  }
  // Proto3 leaves scalars at their default out; so do we, except where a reader might care.
  void varintIfSet(uint32_t number, uint64_t value) {
    if (value != 0) varint(number, value);
  }
  void bytes(uint32_t number, std::string_view data) {
    tag(number, kLengthDelimited);
    raw(data.size());
    out_.append(data);
  }
  void message(uint32_t number, const Message& inner) { bytes(number, inner.out_); }
  void packed(uint32_t number, const std::vector<uint64_t>& values) {
    Message inner;
    for (uint64_t value : values) inner.raw(value);
    bytes(number, inner.out_);
  }
  std::string take() { return std::move(out_); }

 private:
  void tag(uint32_t number, uint32_t wire_type) { raw((uint64_t{number} << 3) | wire_type); }
  void raw(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }

  std::string out_;
};

class StringTable {
 public:
  StringTable() { of(""); }  // string_table[0] must be ""
  uint64_t of(const std::string& text) {
    auto [it, inserted] = index_.try_emplace(text, strings_.size());
    if (inserted) strings_.push_back(text);
    return it->second;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::map<std::string, uint64_t> index_;
  std::vector<std::string> strings_;
};

// ---------------------------------------------------------------------------------------------------------------
// Profile -> profile.proto's tables.

// A captured pc is a run of Profile locations with one address: its inlined frames, then its real function.
std::vector<std::vector<size_t>> pcRuns(const Profile& profile, const Sample& sample) {
  std::vector<std::vector<size_t>> runs;
  bool open = false;
  for (size_t index : sample.locations) {
    const Location& location = profile.locations.at(index);
    if (open && profile.locations.at(runs.back().back()).address != location.address) open = false;
    if (!open) runs.emplace_back();
    runs.back().push_back(index);
    open = location.inlined;
  }
  return runs;
}

struct ModuleRange {
  uint64_t start = std::numeric_limits<uint64_t>::max();
  uint64_t limit = 0;
  size_t first_seen = 0;
};

std::string baseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool looksLikeExecutable(const std::string& module) {
  std::string base = baseName(module);
  return !base.empty() && base[0] != '[' && base.find(".so") == std::string::npos;
}

void valueType(Message& out, uint32_t number, StringTable& strings, const std::string& type, const std::string& unit) {
  Message value_type;
  value_type.varint(field::kValueTypeType, strings.of(type));
  value_type.varint(field::kValueTypeUnit, strings.of(unit));
  out.message(number, value_type);
}

std::string gzip(const std::string& data) {
  z_stream stream{};
  // windowBits 15 + 16: a gzip header and trailer instead of a zlib one.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::bad_alloc();  // the only way deflateInit2 fails with valid arguments
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&stream, Z_FINISH);
  size_t written = stream.total_out;
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::bad_alloc();  // deflateBound guarantees room: only memory can run out
  out.resize(written);
  return out;
}

}  // namespace

std::string encodePprofProto(const Profile& profile, const PprofOptions& options) {
  StringTable strings;
  Message out;

  const bool heap = profile.mode == Mode::kHeap;
  const std::string time_type = profile.mode == Mode::kWall ? "wall" : "cpu";
  if (heap) {
    // As Go writes heap profiles: four values per sample, in_use space last so that pprof shows it by default.
    for (size_t i = 0; i < kHeapValues; ++i) {
      const auto value = static_cast<HeapValue>(i);
      valueType(out, field::kProfileSampleType, strings, heapValueName(value),
                value == kAllocSpace || value == kInuseSpace ? "bytes" : "count");
    }
  } else {
    valueType(out, field::kProfileSampleType, strings, "samples", "count");
    valueType(out, field::kProfileSampleType, strings, time_type, "nanoseconds");
  }

  // pprof locations: one per distinct run of Profile locations (a pc with its inlined frames).
  std::map<std::vector<size_t>, uint64_t> location_ids;
  std::vector<const std::vector<size_t>*> location_runs;  // by id - 1
  std::map<std::string, ModuleRange> modules;
  for (const Sample& sample : profile.samples) {
    Message encoded;
    std::vector<uint64_t> ids;
    for (std::vector<size_t>& run : pcRuns(profile, sample)) {
      auto [it, inserted] = location_ids.try_emplace(std::move(run), location_ids.size() + 1);
      if (inserted) {
        location_runs.push_back(&it->first);
        const Location& real = profile.locations.at(it->first.back());
        if (!real.module.empty()) {
          auto [module, new_module] = modules.try_emplace(real.module);
          if (new_module) module->second.first_seen = modules.size();
          module->second.start = std::min(module->second.start, real.address);
          module->second.limit = std::max(module->second.limit, real.address + 1);
        }
      }
      ids.push_back(it->second);
    }
    encoded.packed(field::kSampleLocationId, ids);
    if (heap) {
      std::vector<uint64_t> values = sample.heap;
      values.resize(kHeapValues);
      encoded.packed(field::kSampleValue, values);
    } else {
      encoded.packed(field::kSampleValue, {sample.count, sample.value_ns});
    }
    for (const auto& [key, value] : sample.labels) {
      Message label;
      label.varint(field::kLabelKey, strings.of(key));
      label.varint(field::kLabelStr, strings.of(value));
      encoded.message(field::kSampleLabel, label);
    }
    out.message(field::kProfileSample, encoded);
  }

  // Mappings: the main binary first (pprof reads the first mapping as the program), then in order of first use.
  std::vector<std::string> module_order;
  for (const auto& [name, range] : modules) module_order.push_back(name);
  std::sort(module_order.begin(), module_order.end(), [&modules](const std::string& a, const std::string& b) {
    return modules.at(a).first_seen < modules.at(b).first_seen;
  });
  auto main_binary = std::find(module_order.begin(), module_order.end(), options.main_binary);
  if (options.main_binary.empty() || main_binary == module_order.end())
    main_binary = std::find_if(module_order.begin(), module_order.end(), looksLikeExecutable);
  if (main_binary != module_order.end()) std::rotate(module_order.begin(), main_binary, main_binary + 1);
  std::map<std::string, uint64_t> mapping_ids;
  for (const std::string& name : module_order) {
    const ModuleRange& range = modules.at(name);
    uint64_t id = mapping_ids.size() + 1;
    mapping_ids.emplace(name, id);
    Message mapping;
    mapping.varint(field::kMappingId, id);
    mapping.varint(field::kMappingMemoryStart, range.start);
    mapping.varint(field::kMappingMemoryLimit, range.limit);
    mapping.varint(field::kMappingFilename, strings.of(name));
    // Symbolized already, by the CLI from the live process: pprof must not look the addresses up again.
    mapping.varint(field::kMappingHasFunctions, 1);
    mapping.varint(field::kMappingHasFilenames, 1);
    mapping.varint(field::kMappingHasLineNumbers, 1);
    mapping.varint(field::kMappingHasInlineFrames, 1);
    out.message(field::kProfileMapping, mapping);
  }

  std::map<std::pair<std::string, std::string>, uint64_t> function_ids;
  std::vector<const std::pair<std::string, std::string>*> functions;
  for (size_t i = 0; i < location_runs.size(); ++i) {
    const std::vector<size_t>& run = *location_runs[i];
    const Location& real = profile.locations.at(run.back());
    Message location;
    location.varint(field::kLocationId, i + 1);
    if (!real.module.empty()) location.varint(field::kLocationMappingId, mapping_ids.at(real.module));
    location.varint(field::kLocationAddress, real.address);
    for (size_t index : run) {  // innermost first, as profile.proto wants
      const Location& frame = profile.locations.at(index);
      if (frame.function.empty()) continue;
      auto [it, inserted] = function_ids.try_emplace({frame.function, frame.file}, function_ids.size() + 1);
      if (inserted) functions.push_back(&it->first);
      Message line;
      line.varint(field::kLineFunctionId, it->second);
      line.varintIfSet(field::kLineLine, static_cast<uint64_t>(std::max(frame.line, 0)));
      location.message(field::kLocationLine, line);
    }
    out.message(field::kProfileLocation, location);
  }

  for (size_t i = 0; i < functions.size(); ++i) {
    const auto& [name, file] = *functions[i];
    Message function;
    function.varint(field::kFunctionId, i + 1);
    function.varint(field::kFunctionName, strings.of(name));
    // No system_name: we only have the demangled name, and pprof "simplifies" a function whose system_name equals
    // its name ("(anonymous namespace)::f(int)" -> "::f"). Left out, pprof keeps our name as it is.
    function.varintIfSet(field::kFunctionFilename, file.empty() ? 0 : strings.of(file));
    out.message(field::kProfileFunction, function);
  }

  // Everything that refers to a string comes before the table; these after it only need indexes taken here.
  // A heap profile's period is its sampling rate in bytes of space, as in Go's.
  const uint64_t period_type = strings.of(heap ? "space" : time_type);
  const uint64_t nanoseconds = strings.of(heap ? "bytes" : "nanoseconds");
  uint64_t dropped_comment = 0;
  if (profile.dropped > 0)
    dropped_comment = strings.of(std::to_string(profile.dropped) + " samples dropped by the agent (not included)");

  for (const std::string& text : strings.strings()) out.bytes(field::kProfileStringTable, text);
  if (options.time_nanos > 0) out.varint(field::kProfileTimeNanos, static_cast<uint64_t>(options.time_nanos));
  out.varintIfSet(field::kProfileDurationNanos, profile.duration_ns);
  Message period;
  period.varint(field::kValueTypeType, period_type);
  period.varint(field::kValueTypeUnit, nanoseconds);
  out.message(field::kProfilePeriodType, period);
  out.varintIfSet(field::kProfilePeriod, heap ? profile.heap_rate_bytes : profile.period_ns);
  if (dropped_comment != 0) out.varint(field::kProfileComment, dropped_comment);
  return out.take();
}

std::string encodePprof(const Profile& profile, const PprofOptions& options) {
  return gzip(encodePprofProto(profile, options));
}

}  // namespace cppops::profile
