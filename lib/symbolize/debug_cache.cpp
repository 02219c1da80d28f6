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
  if (dir.empty() || hex.empty() || !isPrivateDirectory(dir)) return spans;
  const int fd = ::open((dir + "/" + hex + ".cus").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return spans;
  CuSpanHeader header{};
  struct stat st {};
  const bool usable = ::read(fd, &header, sizeof header) == static_cast<ssize_t>(sizeof header) &&
                      std::memcmp(header.magic, kCuSpanMagic, sizeof kCuSpanMagic) == 0 &&
                      header.version == kCuSpanVersion && header.count <= kMaxCuSpans && ::fstat(fd, &st) == 0 &&
                      static_cast<uint64_t>(st.st_size) == sizeof header + uint64_t{header.count} * sizeof(CuSpan);
  if (usable) {
    spans.resize(header.count);
    const auto bytes = static_cast<ssize_t>(spans.size() * sizeof(CuSpan));
    if (::read(fd, spans.data(), static_cast<size_t>(bytes)) != bytes) spans.clear();
  }
  ::close(fd);
  const auto malformed = [](const CuSpan& a, const CuSpan& b) { return b.low < a.low || a.high <= a.low; };
  if (std::adjacent_find(spans.begin(), spans.end(), malformed) != spans.end()) spans.clear();
  return spans;
}

void cacheCuSpans(const std::string& dir, const std::string& hex, const std::vector<CuSpan>& spans) {
  if (dir.empty() || hex.empty() || spans.empty() || spans.size() > kMaxCuSpans) return;
  if (!makeDirectories(dir) || !isPrivateDirectory(dir)) return;
  const std::string path = dir + "/" + hex + ".cus";
  const std::string temporary = dir + "/." + hex + "." + std::to_string(getpid()) + ".cus.tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return;
  CuSpanHeader header{};
  std::memcpy(header.magic, kCuSpanMagic, sizeof kCuSpanMagic);
  header.version = kCuSpanVersion;
  header.count = static_cast<uint32_t>(spans.size());
  const auto bytes = static_cast<ssize_t>(spans.size() * sizeof(CuSpan));
  const bool written = ::write(fd, &header, sizeof header) == static_cast<ssize_t>(sizeof header) &&
                       ::write(fd, spans.data(), static_cast<size_t>(bytes)) == bytes;
  if (::close(fd) != 0 || !written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return;
  }
  dropOldest(dir, ".cus", kMaxCachedCuSpans);
}

}  // namespace cppops
