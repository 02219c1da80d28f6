#include "profile/heap_base.h"

#include <zlib.h>

#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "profile/names.h"

namespace cppops::profile {

namespace {

// The protobuf wire format, as much of it as profile.proto's heap profiles need.
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t varint = 0;
  std::string_view bytes;
};

class FieldReader {
 public:
  explicit FieldReader(std::string_view data) : data_(data) {}
  bool next(Field* field) {
    if (at_ >= data_.size() || failed_) return false;
    uint64_t tag = 0;
    if (!varint(&tag)) return false;
    field->number = static_cast<uint32_t>(tag >> 3);
    field->wire_type = static_cast<uint32_t>(tag & 7);
    switch (field->wire_type) {
      case 0: return varint(&field->varint);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2: {
        uint64_t length = 0;
        if (!varint(&length) || length > data_.size() - at_) return fail();
        field->bytes = data_.substr(at_, length);
        at_ += length;
        return true;
      }
      default: return fail();
    }
  }
  bool failed() const { return failed_; }

 private:
  bool varint(uint64_t* out) {
    *out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= data_.size()) return fail();
      const auto byte = static_cast<unsigned char>(data_[at_++]);
      *out |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return fail();
  }
  bool skip(size_t n) {
    if (n > data_.size() - at_) return fail();
    at_ += n;
    return true;
  }
  bool fail() {
    failed_ = true;
    return false;
  }
  std::string_view data_;
  size_t at_ = 0;
  bool failed_ = false;
};

// A repeated integer field, packed (as Go writes it) or one value per field.
bool appendInts(const Field& field, std::vector<uint64_t>* out) {
  if (field.wire_type == 0) {
    out->push_back(field.varint);
    return true;
  }
  std::string_view data = field.bytes;
  uint64_t value = 0;
  int shift = 0;
  for (char c : data) {
    const auto byte = static_cast<unsigned char>(c);
    if (shift >= 64) return false;
    value |= uint64_t{byte & 0x7fu} << shift;
    shift += 7;
    if ((byte & 0x80) == 0) {
      out->push_back(value);
      value = 0;
      shift = 0;
    }
  }
  return shift == 0;
}

Result<std::string> gunzip(const std::string& bytes) {
  if (bytes.size() < 2 || static_cast<unsigned char>(bytes[0]) != 0x1f || static_cast<unsigned char>(bytes[1]) != 0x8b)
    return bytes;  // not gzipped: plain profile.proto
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return makeError(ErrorKind::kInternal, "zlib cannot start inflating");
  std::string out;
  char buffer[65536];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END) return makeError(ErrorKind::kUsage, "the base profile is not valid gzip data");
  return out;
}

struct RawLocation {
  uint64_t mapping = 0;
  uint64_t address = 0;
  std::vector<std::pair<uint64_t, int64_t>> lines;  // function id, line
};

struct RawFunction {
  uint64_t name = 0;
  uint64_t file = 0;
};

}  // namespace

Result<Profile> readHeapPprof(const std::string& bytes) {
  auto proto = gunzip(bytes);
  if (!proto) return proto.error();
  const Error malformed = makeError(ErrorKind::kUsage, "the base profile is not a pprof file (profile.proto)");

  std::vector<std::string> strings;
  std::vector<std::pair<uint64_t, uint64_t>> sample_types;
  std::vector<std::pair<std::vector<uint64_t>, std::vector<uint64_t>>> samples;  // location ids, values
  std::map<uint64_t, RawLocation> locations;
  std::map<uint64_t, RawFunction> functions;
  std::map<uint64_t, uint64_t> mapping_files;
  Profile profile;
  profile.mode = Mode::kHeap;

  FieldReader top(*proto);
  Field field;
  while (top.next(&field)) {
    FieldReader inner(field.bytes);
    Field f;
    switch (field.number) {
      case 1: {
        std::pair<uint64_t, uint64_t> type;
        while (inner.next(&f)) {
          if (f.number == 1) type.first = f.varint;
          if (f.number == 2) type.second = f.varint;
        }
        sample_types.push_back(type);
        break;
      }
      case 2: {
        std::vector<uint64_t> ids, values;
        while (inner.next(&f)) {
          if (f.number == 1 && !appendInts(f, &ids)) return malformed;
          if (f.number == 2 && !appendInts(f, &values)) return malformed;
        }
        samples.emplace_back(std::move(ids), std::move(values));
        break;
      }
      case 3: {
        uint64_t id = 0, file = 0;
        while (inner.next(&f)) {
          if (f.number == 1) id = f.varint;
          if (f.number == 5) file = f.varint;
        }
        mapping_files[id] = file;
        break;
      }
      case 4: {
        uint64_t id = 0;
        RawLocation location;
        while (inner.next(&f)) {
          if (f.number == 1) id = f.varint;
          if (f.number == 2) location.mapping = f.varint;
          if (f.number == 3) location.address = f.varint;
          if (f.number == 4) {
            FieldReader line_reader(f.bytes);
            Field l;
            std::pair<uint64_t, int64_t> line;
            while (line_reader.next(&l)) {
              if (l.number == 1) line.first = l.varint;
              if (l.number == 2) line.second = static_cast<int64_t>(l.varint);
            }
            location.lines.push_back(line);
          }
        }
        locations[id] = std::move(location);
        break;
      }
      case 5: {
        uint64_t id = 0;
        RawFunction function;
        while (inner.next(&f)) {
          if (f.number == 1) id = f.varint;
          if (f.number == 2) function.name = f.varint;
          if (f.number == 4) function.file = f.varint;
        }
        functions[id] = function;
        break;
      }
      case 6: strings.emplace_back(field.bytes); break;
      case 10: profile.duration_ns = field.varint; break;
      case 12: profile.heap_rate_bytes = field.varint; break;
      default: break;
    }
    if (inner.failed()) return malformed;
  }
  if (top.failed() || strings.empty()) return malformed;
  auto text = [&strings](uint64_t index) { return index < strings.size() ? strings[index] : std::string(); };

  // Which value is which: the base may come from any heap profiler that writes Go's four types.
  size_t index_of[kHeapValues];
  for (size_t i = 0; i < kHeapValues; ++i) {
    index_of[i] = sample_types.size();
    for (size_t j = 0; j < sample_types.size(); ++j)
      if (text(sample_types[j].first) == heapValueName(static_cast<HeapValue>(i))) index_of[i] = j;
    if (index_of[i] == sample_types.size())
      return makeError(ErrorKind::kUsage, std::string("the base profile is not a heap profile: it has no ") +
                                              heapValueName(static_cast<HeapValue>(i)) +
                                              " values; give a file written by `cppops profile PID --heap -o FILE`");
  }

  std::map<uint64_t, std::vector<size_t>> location_frames;  // pprof location id -> Profile locations
  for (const auto& [id, raw] : locations) {
    std::vector<size_t>& frames = location_frames[id];
    const std::string module = mapping_files.count(raw.mapping) != 0 ? text(mapping_files.at(raw.mapping)) : "";
    for (size_t i = 0; i < raw.lines.size() || (i == 0 && raw.lines.empty()); ++i) {
      Location location;
      location.address = raw.address;
      location.module = module;
      if (i < raw.lines.size()) {
        const RawFunction& function = functions[raw.lines[i].first];
        location.function = text(function.name);
        location.file = text(function.file);
        location.line = static_cast<int>(raw.lines[i].second);
        location.inlined = i + 1 < raw.lines.size();
      }
      frames.push_back(profile.locations.size());
      profile.locations.push_back(std::move(location));
    }
  }
  for (const auto& [ids, values] : samples) {
    if (values.size() != sample_types.size()) return malformed;
    Sample sample;
    for (uint64_t id : ids) {
      auto it = location_frames.find(id);
      if (it == location_frames.end()) return malformed;
      sample.locations.insert(sample.locations.end(), it->second.begin(), it->second.end());
    }
    for (size_t i = 0; i < kHeapValues; ++i) sample.heap.push_back(values[index_of[i]]);
    sample.count = sample.heap[kInuseSpace];
    profile.samples.push_back(std::move(sample));
  }
  return profile;
}

Profile subtractBase(const Profile& now, const Profile& base, BaseComparison* comparison) {
  std::map<std::vector<std::string>, std::vector<uint64_t>> before;
  for (const Sample& sample : base.samples) {
    std::vector<uint64_t>& values = before[stackNames(base, sample)];
    values.resize(kHeapValues);
    for (size_t i = 0; i < kHeapValues && i < sample.heap.size(); ++i) values[i] += sample.heap[i];
  }
  BaseComparison result;
  Profile out = now;
  out.samples.clear();
  for (const Sample& sample : now.samples) {
    Sample grown = sample;
    grown.heap.resize(kHeapValues);
    auto it = before.find(stackNames(now, sample));
    if (it != before.end()) {
      ++result.matched;
      if (grown.heap[now.heap_shown] < it->second[now.heap_shown]) ++result.shrank;
      for (size_t i = 0; i < kHeapValues; ++i)
        grown.heap[i] = grown.heap[i] > it->second[i] ? grown.heap[i] - it->second[i] : 0;
      before.erase(it);
    }
    grown.count = grown.heap[now.heap_shown];
    if (grown.count != 0) out.samples.push_back(std::move(grown));
  }
  for (const auto& [stack, values] : before)
    if (values[now.heap_shown] != 0) ++result.shrank;  // gone altogether
  if (comparison != nullptr) *comparison = result;
  return out;
}

}  // namespace cppops::profile
