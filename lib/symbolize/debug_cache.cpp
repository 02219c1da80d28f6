#include "symbolize/debug_cache.h"

#include <dirent.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace cppops {

namespace {

bool isPrivateDirectory(const std::string& dir) {
  struct stat st {};
  return ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 022) == 0;
}

// mkdir -p, the directories it creates private to us.
bool makeDirectories(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string prefix = dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return false;
    if (slash == std::string::npos) return true;
  }
}

bool startsWith(const char* text, const std::string& prefix) {
  return std::strncmp(text, prefix.c_str(), prefix.size()) == 0;
}

class ElfFile {
 public:
  ElfFile(const char* path, int flags, Elf_Cmd cmd) : fd_(::open(path, flags | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) elf_ = elf_begin(fd_, cmd, nullptr);
  }
  ~ElfFile() {
    if (elf_ != nullptr) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
  }
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;
  Elf* get() const { return elf_; }

 private:
  int fd_;
  Elf* elf_ = nullptr;
};

bool hasCompressedSections(const char* path) {
  ElfFile file(path, O_RDONLY, ELF_C_READ_MMAP);
  if (file.get() == nullptr) return false;
  for (Elf_Scn* scn = elf_nextscn(file.get(), nullptr); scn != nullptr; scn = elf_nextscn(file.get(), scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) != nullptr && (shdr.sh_flags & SHF_COMPRESSED) != 0) return true;
  }
  return false;
}

// Copies `in` as libdw holds it: the debug sections it inflated on load have their headers updated (no
// SHF_COMPRESSED, the inflated size), so a plain copy of headers and data is the inflated file. libelf lays the
// file out itself.
bool writeElf(Elf* in, const std::string& path) {
  ElfFile out(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, ELF_C_WRITE);
  if (out.get() == nullptr) return false;
  GElf_Ehdr ehdr;
  size_t phnum = 0;
  if (gelf_getehdr(in, &ehdr) == nullptr || gelf_newehdr(out.get(), gelf_getclass(in)) == nullptr ||
      elf_getphdrnum(in, &phnum) != 0 || ehdr.e_shstrndx >= SHN_LORESERVE)
    return false;
  if (phnum > 0) {
    if (gelf_newphdr(out.get(), phnum) == nullptr) return false;
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (gelf_getphdr(in, static_cast<int>(i), &phdr) == nullptr ||
          gelf_update_phdr(out.get(), static_cast<int>(i), &phdr) == 0)
        return false;
    }
  }
  for (Elf_Scn* scn = elf_nextscn(in, nullptr); scn != nullptr; scn = elf_nextscn(in, scn)) {
    GElf_Shdr shdr;
    Elf_Scn* copy = elf_newscn(out.get());
    if (gelf_getshdr(scn, &shdr) == nullptr || copy == nullptr) return false;
    for (Elf_Data* data = elf_getdata(scn, nullptr); data != nullptr; data = elf_getdata(scn, data)) {
      Elf_Data* copied = elf_newdata(copy);
      if (copied == nullptr) return false;
      *copied = *data;
    }
    if (gelf_update_shdr(copy, &shdr) == 0) return false;
  }
  return gelf_update_ehdr(out.get(), &ehdr) != 0 && elf_update(out.get(), ELF_C_WRITE) >= 0;
}

// Keeps the `keep` newest entries of `dir` whose names end in `suffix`.
void dropOldest(const std::string& dir, const std::string& suffix, size_t keep) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::pair<time_t, std::string>> entries;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    struct stat st {};
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        name[0] != '.' &&
        ::stat((dir + "/" + name).c_str(), &st) == 0)
      entries.emplace_back(st.st_mtime, dir + "/" + name);
  }
  ::closedir(d);
  if (entries.size() <= keep) return;
  std::sort(entries.begin(), entries.end());
  for (size_t i = 0; i + keep < entries.size(); ++i) ::unlink(entries[i].second.c_str());
}

// The bytes of the entry `hex` + `suffix`, if the directory is private to us and the entry is at most
// `max_bytes` long.
std::optional<std::string> readCacheEntry(const std::string& dir, const std::string& hex, const char* suffix,
                                          uint64_t max_bytes) {
  if (dir.empty() || hex.empty() || !isPrivateDirectory(dir)) return std::nullopt;
  const int fd = ::open((dir + "/" + hex + suffix).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  std::optional<std::string> bytes;
  if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) <= max_bytes) {
    bytes.emplace(static_cast<size_t>(st.st_size), '\0');
    if (::read(fd, bytes->data(), bytes->size()) != static_cast<ssize_t>(bytes->size())) bytes.reset();
  }
  ::close(fd);
  return bytes;
}

// Writes the entry `hex` + `suffix` through a temporary file renamed into place (a reader sees the old entry or
// the new one, never part of one), then keeps the `keep` newest entries with that suffix. Best effort.
void writeCacheEntry(const std::string& dir, const std::string& hex, const char* suffix, const std::string& bytes,
                     size_t keep) {
  if (dir.empty() || hex.empty() || !makeDirectories(dir) || !isPrivateDirectory(dir)) return;
  const std::string path = dir + "/" + hex + suffix;
  const std::string temporary = dir + "/." + hex + "." + std::to_string(getpid()) + suffix + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return;
  const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  if (::close(fd) != 0 || !written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return;
  }
  dropOldest(dir, suffix, keep);
}

}  // namespace

std::string debugCacheDir() {
  if (const char* dir = std::getenv("CPPOPS_CACHE_DIR")) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/')
    return std::string(xdg) + "/cppops/debuginfo";
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/')
    return std::string(home) + "/.cache/cppops/debuginfo";
  return "";
}

std::string buildIdHex(Dwfl_Module* mod) {
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  const int size = dwfl_module_build_id(mod, &bits, &vaddr);
  std::string hex;
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < size; ++i) {
    hex += kDigits[bits[i] >> 4];
    hex += kDigits[bits[i] & 0xf];
  }
  return hex;
}

std::string cachedDebugFile(const std::string& dir, const std::string& hex) {
  if (dir.empty() || hex.empty() || !isPrivateDirectory(dir)) return "";
  std::string path = dir + "/" + hex + ".debug";
  return ::access(path.c_str(), R_OK) == 0 ? path : "";
}

void cacheInflatedDebugFile(Dwfl_Module* mod, const std::string& dir) {
  if (dir.empty()) return;
  const char* main_file = nullptr;
  const char* debug_file = nullptr;
  dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, &main_file, &debug_file);
  // Only separate debug files: a binary with its own DWARF is read in place.
  if (debug_file == nullptr || (main_file != nullptr && std::strcmp(main_file, debug_file) == 0) ||
      startsWith(debug_file, dir + "/"))
    return;
  const std::string hex = buildIdHex(mod);
  Dwarf_Addr bias = 0;
  Dwarf* dwarf = dwfl_module_getdwarf(mod, &bias);
  Elf* loaded = dwarf != nullptr ? dwarf_getelf(dwarf) : nullptr;
  if (hex.empty() || loaded == nullptr || !hasCompressedSections(debug_file)) return;
  if (!makeDirectories(dir) || !isPrivateDirectory(dir)) return;
  const std::string path = dir + "/" + hex + ".debug";
  const std::string temporary = dir + "/." + hex + "." + std::to_string(getpid()) + ".tmp";
  if (!writeElf(loaded, temporary) || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return;
  }
  dropOldest(dir, ".debug", kMaxCachedDebugFiles);
}

namespace {

// A .cus file: this header, then `count` CuSpans as three native 64-bit words each.
struct CuSpanHeader {
  char magic[8];
  uint32_t version;
  uint32_t count;
};
constexpr char kCuSpanMagic[8] = {'C', 'P', 'P', 'O', 'P', 'S', 'C', 'U'};
constexpr uint32_t kCuSpanVersion = 1;
// More units than any real module has (glibc: 2,083): a bigger count is a damaged file.
constexpr uint32_t kMaxCuSpans = 1u << 22;

}  // namespace

std::vector<CuSpan> cachedCuSpans(const std::string& dir, const std::string& hex) {
  std::vector<CuSpan> spans;
  const std::optional<std::string> bytes =
      readCacheEntry(dir, hex, ".cus", sizeof(CuSpanHeader) + uint64_t{kMaxCuSpans} * sizeof(CuSpan));
  CuSpanHeader header{};
  if (!bytes || bytes->size() < sizeof header) return spans;
  std::memcpy(&header, bytes->data(), sizeof header);
  if (std::memcmp(header.magic, kCuSpanMagic, sizeof kCuSpanMagic) != 0 || header.version != kCuSpanVersion ||
      bytes->size() != sizeof header + uint64_t{header.count} * sizeof(CuSpan))
    return spans;
  spans.resize(header.count);
  std::memcpy(spans.data(), bytes->data() + sizeof header, spans.size() * sizeof(CuSpan));
  const auto malformed = [](const CuSpan& a, const CuSpan& b) { return b.low < a.low || a.high <= a.low; };
  if (std::adjacent_find(spans.begin(), spans.end(), malformed) != spans.end()) spans.clear();
  return spans;
}

void cacheCuSpans(const std::string& dir, const std::string& hex, const std::vector<CuSpan>& spans) {
  if (spans.empty() || spans.size() > kMaxCuSpans) return;
  CuSpanHeader header{};
  std::memcpy(header.magic, kCuSpanMagic, sizeof kCuSpanMagic);
  header.version = kCuSpanVersion;
  header.count = static_cast<uint32_t>(spans.size());
  std::string bytes(reinterpret_cast<const char*>(&header), sizeof header);
  bytes.append(reinterpret_cast<const char*>(spans.data()), spans.size() * sizeof(CuSpan));
  writeCacheEntry(dir, hex, ".cus", bytes, kMaxCachedCuSpans);
}

namespace {

constexpr char kResolvedMagic[8] = {'c', 'p', 'p', 'o', 'p', 's', 'F', 'R'};
constexpr uint32_t kResolvedVersion = 1;
constexpr uint64_t kMaxResolvedFileBytes = 64 << 20;

// The file: the magic, the version, with_dwarf and the number of pcs (u32 each after the magic), then per pc its
// key (u64) and frame count (u32), then per frame its line (i32), inlined (u8), function and file (u32 length,
// bytes). Native byte order: the cache never leaves the machine.
class ResolvedWriter {
 public:
  template <typename T>
  void put(T value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void putText(const std::string& text) {
    put(static_cast<uint32_t>(text.size()));
    bytes_ += text;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class ResolvedReader {
 public:
  explicit ResolvedReader(std::string_view bytes) : rest_(bytes) {}
  template <typename T>
  bool get(T& value) {
    if (rest_.size() < sizeof value) return false;
    std::memcpy(&value, rest_.data(), sizeof value);
    rest_.remove_prefix(sizeof value);
    return true;
  }
  bool getText(std::string& text) {
    uint32_t size = 0;
    if (!get(size) || rest_.size() < size) return false;
    text.assign(rest_.data(), size);
    rest_.remove_prefix(size);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace

std::optional<ResolvedFrames> cachedResolvedFrames(const std::string& dir, const std::string& hex) {
  const std::optional<std::string> bytes = readCacheEntry(dir, hex, ".frames", kMaxResolvedFileBytes);
  if (!bytes) return std::nullopt;
  ResolvedReader in(*bytes);
  char magic[sizeof kResolvedMagic] = {};
  uint32_t version = 0;
  uint32_t with_dwarf = 0;
  uint32_t count = 0;
  if (!in.get(magic) || std::memcmp(magic, kResolvedMagic, sizeof magic) != 0 || !in.get(version) ||
      version != kResolvedVersion || !in.get(with_dwarf) || with_dwarf > 1 || !in.get(count) || count > kMaxResolvedPcs)
    return std::nullopt;
  ResolvedFrames resolved;
  resolved.with_dwarf = with_dwarf != 0;
  resolved.by_key.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t key = 0;
    uint32_t frame_count = 0;
    if (!in.get(key) || !in.get(frame_count) || frame_count == 0 || frame_count > 256) return std::nullopt;
    std::vector<CachedFrame> frames(frame_count);
    for (CachedFrame& frame : frames) {
      int32_t line = 0;
      uint8_t inlined = 0;
      if (!in.get(line) || !in.get(inlined) || inlined > 1 || !in.getText(frame.function) || !in.getText(frame.file))
        return std::nullopt;
      frame.line = line;
      frame.inlined = inlined != 0;
    }
    resolved.by_key.emplace(key, std::move(frames));
  }
  if (!in.done()) return std::nullopt;
  return resolved;
}

void cacheResolvedFrames(const std::string& dir, const std::string& hex, const ResolvedFrames& resolved) {
  if (resolved.by_key.empty() || resolved.by_key.size() > kMaxResolvedPcs) return;
  ResolvedWriter out;
  for (char c : kResolvedMagic) out.put(c);
  out.put(kResolvedVersion);
  out.put(static_cast<uint32_t>(resolved.with_dwarf ? 1 : 0));
  out.put(static_cast<uint32_t>(resolved.by_key.size()));
  for (const auto& [key, frames] : resolved.by_key) {
    out.put(key);
    out.put(static_cast<uint32_t>(frames.size()));
    for (const CachedFrame& frame : frames) {
      out.put(static_cast<int32_t>(frame.line));
      out.put(static_cast<uint8_t>(frame.inlined ? 1 : 0));
      out.putText(frame.function);
      out.putText(frame.file);
    }
  }
  writeCacheEntry(dir, hex, ".frames", out.bytes(), kMaxCachedResolvedFrames);
}

}  // namespace cppops
