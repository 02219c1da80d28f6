// Little-endian binary encoding shared by the agent and the CLI.
//
// Both sides compile this header, so it uses nothing beyond the standard library and never throws on bad input:
// a Reader that runs past its end or sees an oversized length sets a sticky failure flag and returns zeros, and
// the caller rejects the message after decoding. Decoders ignore bytes after the fields they know, which is how a
// newer peer adds fields without breaking an older one (see cppops-protocol(7)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace cppops::wire {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v); }
  void u32(uint32_t v) { put(v); }
  void u64(uint64_t v) { put(v); }
  void i64(int64_t v) { put(static_cast<uint64_t>(v)); }
  void f64(double v) { put(v); }  // IEEE 754 binary64, the same bytes on both sides
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void bytes(const void* data, size_t n) {
    u32(static_cast<uint32_t>(n));
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + n);
  }
  std::vector<uint8_t>& buffer() { return out_; }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  template <typename T>
  void put(T v) {
    // x86_64 and aarch64 are little-endian; the static_assert keeps a big-endian port honest.
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is little-endian");
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out_.insert(out_.end(), p, p + sizeof v);
  }
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  explicit Reader(const std::vector<uint8_t>& v) : Reader(v.data(), v.size()) {}

  uint8_t u8() { return get<uint8_t>(); }
  uint16_t u16() { return get<uint16_t>(); }
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  int64_t i64() { return static_cast<int64_t>(get<uint64_t>()); }
  double f64() { return get<double>(); }
  std::string str() {
    std::string_view v = view();
    return std::string(v);
  }
  // A view into the reader's buffer: valid as long as that buffer is.
  std::string_view view() {
    uint32_t n = u32();
    if (!ok_ || n > remaining()) return fail(), std::string_view();
    std::string_view v(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return v;
  }
  // An element count that cannot exceed what the remaining bytes could hold, so a hostile count cannot make the
  // caller reserve gigabytes before the reads fail.
  uint32_t count(size_t min_element_size) {
    uint32_t n = u32();
    if (ok_ && min_element_size > 0 && n > remaining() / min_element_size) fail();
    return ok_ ? n : 0;
  }
  bool ok() const { return ok_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  void fail() { ok_ = false; }

 private:
  template <typename T>
  T get() {
    if (!ok_ || remaining() < sizeof(T)) {
      fail();
      return T{};
    }
    T v;
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

}  // namespace cppops::wire
