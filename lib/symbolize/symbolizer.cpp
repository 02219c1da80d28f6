#include "symbolize/symbolizer.h"

#include "symbolize/debug_cache.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unordered_map>
#include <unordered_set>
#include <tuple>
#include <utility>

namespace cppops {
namespace {

// A module's resolved frames are written again once the pcs added since make up a sixteenth of them.
constexpr size_t kRewriteRatio = 16;

class Notes {
 public:
  void add(std::string note) {
    if (std::find(all_.begin(), all_.end(), note) == all_.end()) all_.push_back(std::move(note));
  }
  const std::vector<std::string>& all() const { return all_; }

 private:
  std::vector<std::string> all_;
};

bool endsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "Cannot tell" (a stat failed) counts as the same file: then the plain path is still our best guess.
bool knownToDiffer(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino;
}

// The maps list devices and FIFOs as well, and opening those can block or have side effects.
int openRegularFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

// libdwfl's default, plus the target's own debug directory when it lives in a container: debug files are found by
// build ID, so the ones installed in the image are as good as ours.
std::string standardDebuginfoPath(pid_t pid, bool shares_our_view) {
  const std::string standard = ":.debug:/usr/lib/debug";
  return shares_our_view ? standard : standard + ":/proc/" + std::to_string(pid) + "/root/usr/lib/debug";
}

// Opens the files behind the module paths in /proc/PID/maps, which name files as the target sees them.
class ModuleFiles {
 public:
  ModuleFiles(pid_t pid, Notes& notes)
      : proc_dir_("/proc/" + std::to_string(pid)),
        shares_our_view_(!knownToDiffer("/", proc_dir_ + "/root") &&
                         !knownToDiffer("/proc/self/ns/mnt", proc_dir_ + "/ns/mnt")),
        debuginfo_path_(standardDebuginfoPath(pid, shares_our_view_)),
        notes_(notes) {}

  bool sharesOurView() const { return shares_our_view_; }
  // Dwfl_Callbacks::debuginfo_path for this process.
  const std::string& debuginfoPath() const { return debuginfo_path_; }

  // Where inflated copies of compressed debug files are kept (see debug_cache.h); "" when caching is off.
  const std::string& debugCacheDir() const { return debug_cache_dir_; }

  // The Dwfl_Callbacks::find_elf contract: an fd that libdwfl then owns plus a malloc'ed *file_name, or -1.
  int open(const std::string& module, char** file_name) {
    const bool deleted = endsWith(module, " (deleted)");
    int fd = -1;
    if (!deleted && shares_our_view_) fd = tryOpen(module, "", file_name);
    // The plain path is never tried from another mount namespace: a same-named file on our side is usually another
    // build (the host's libc is not the container's) and would yield confidently wrong names.
    if (fd < 0 && !deleted) {
      fd = tryOpen(proc_dir_ + "/root" + module,
                   "module " + module + " read through " + proc_dir_ + "/root (the process sees another filesystem)",
                   file_name);
    }
    if (fd < 0) {
      const std::string mapped = mapFilesPath(module);
      fd = tryOpen(mapped, "module " + module + " read through " + mapped, file_name);
    }
    if (fd < 0) {
      notes_.add("cannot open module " + module + ": its frames show only module offsets" +
                 (deleted ? " (the file was deleted; reading it through /proc/PID/map_files needs root)" : ""));
    }
    return fd;
  }

 private:
  int tryOpen(const std::string& path, std::string note, char** file_name) {
    const int fd = path.empty() ? -1 : openRegularFile(path);
    if (fd < 0) return -1;
    *file_name = strdup(path.c_str());
    if (*file_name == nullptr) {
      close(fd);
      return -1;
    }
    if (!note.empty()) notes_.add(std::move(note));
    return fd;
  }

  // map_files entries are named after one exact mapping ("start-end", unpadded hex), so find any mapping of the file.
  std::string mapFilesPath(const std::string& module) const {
    std::ifstream maps(proc_dir_ + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      unsigned long long start = 0;
      unsigned long long end = 0;
      int path_at = 0;
      if (std::sscanf(line.c_str(), "%llx-%llx %*s %*s %*s %*s %n", &start, &end, &path_at) == 2 && path_at > 0 &&
          line.compare(static_cast<size_t>(path_at), std::string::npos, module) == 0) {
        char range[40];
        std::snprintf(range, sizeof range, "%llx-%llx", start, end);
        return proc_dir_ + "/map_files/" + range;
      }
    }
    return "";
  }

  std::string proc_dir_;
  bool shares_our_view_;  // same root and mount namespace, so map paths are valid paths for us too
  std::string debuginfo_path_;
  Notes& notes_;
  std::string debug_cache_dir_ = cppops::debugCacheDir();
};

int findElf(Dwfl_Module* mod, void** userdata, const char* name, Dwarf_Addr base, char** file_name, Elf** elfp) {
  // The vDSO has no file. Without attach state libdwfl copies it from /proc/PID/mem, which stops nothing.
  if (name[0] != '/') return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
  return static_cast<ModuleFiles*>(*userdata)->open(name, file_name);
}

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// libdwfl's standard search ends, when it finds no local file, with a debuginfod download. Its first use loads
// libdebuginfod and some thirty libraries behind it (curl, TLS, Kerberos, LDAP): about 9 ms of every dump, with
// no server configured at all. So the search runs only when there is a local file for it to find (the places it
// looks: by build ID under each absolute directory of the path, by debug link beside the module, in a relative
// directory of the path and under each absolute one) or a server to ask (DEBUGINFOD_URLS).
bool worthSearching(const std::string& path, const std::string& build_id, const char* module_file,
                    const char* debuglink) {
  const char* servers = std::getenv("DEBUGINFOD_URLS");
  if (servers != nullptr && servers[0] != '\0') return true;
  std::string module_dir;
  if (module_file != nullptr) {
    module_dir = module_file;
    module_dir.erase(std::min(module_dir.size(), module_dir.rfind('/')));
  }
  const bool linked = debuglink != nullptr && debuglink[0] != '\0' && module_file != nullptr;
  if (linked && exists(module_dir + "/" + debuglink)) return true;
  for (size_t begin = 0; begin <= path.size();) {
    size_t end = std::min(path.find(':', begin), path.size());
    const std::string dir = path.substr(begin, end - begin);
    begin = end + 1;
    if (dir.empty()) continue;
    if (dir[0] != '/') {
      if (linked && exists(module_dir + "/" + dir + "/" + debuglink)) return true;
      continue;
    }
    if (build_id.size() > 2 &&
        exists(dir + "/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug"))
      return true;
    if (linked && exists(dir + module_dir + "/" + debuglink)) return true;
  }
  return false;
}

// The inflated copy from the cache when there is one; libdwfl's standard search otherwise.
int findDebuginfo(Dwfl_Module* mod, void** userdata, const char* module_name, Dwarf_Addr base, const char* file_name,
                  const char* debuglink_file, GElf_Word debuglink_crc, char** debuginfo_file_name) {
  const ModuleFiles& files = *static_cast<ModuleFiles*>(*userdata);
  const std::string build_id = buildIdHex(mod);
  const std::string cached = cachedDebugFile(files.debugCacheDir(), build_id);
  if (!cached.empty()) {
    const int fd = open(cached.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && (*debuginfo_file_name = strdup(cached.c_str())) != nullptr) return fd;
    if (fd >= 0) close(fd);
  }
  if (!worthSearching(files.debuginfoPath(), build_id, file_name, debuglink_file)) return -1;
  return dwfl_standard_find_debuginfo(mod, userdata, module_name, base, file_name, debuglink_file, debuglink_crc,
                                      debuginfo_file_name);
}

int attachModuleFiles(Dwfl_Module*, void** userdata, const char*, Dwarf_Addr, void* files) {
  *userdata = files;
  return DWARF_CB_OK;
}

struct DwflEnd {
  void operator()(Dwfl* dwfl) const { dwfl_end(dwfl); }
};

Error processError(pid_t pid, int err, const std::string& what) {
  const std::string process = "process " + std::to_string(pid);
  if (err == ENOENT || err == ESRCH) {
    return makeError(ErrorKind::kNoProcess, process + " does not exist: check the PID with `cppops ps`");
  }
  if (err == EACCES || err == EPERM) {
    return makeError(ErrorKind::kPermission, "cannot read " + what + " of " + process +
                                                 " (permission denied): run cppops as the process owner or as root");
  }
  return makeError(ErrorKind::kInternal, "cannot read " + what + " of " + process + ": " + std::strerror(err));
}

std::string demangle(const char* name) {
  if (name == nullptr) return "";
  // __cxa_demangle also demangles type names, so a C function called "f" would come out as "float".
  if (std::strncmp(name, "_Z", 2) != 0) return name;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && out != nullptr ? out.get() : name;
}

std::string displayName(const char* module) {
  if (module == nullptr) return "";
  // libdwfl calls the vDSO "[vdso: PID]"; the PID is noise on every frame.
  return std::strncmp(module, "[vdso", 5) == 0 ? "[vdso]" : module;
}

// Follows DW_AT_abstract_origin and DW_AT_specification, where inlined and member functions keep their names.
std::string dieName(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (int name_attr : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, name_attr, &attr))) return demangle(linkage);
  }
  const char* name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
  return name != nullptr ? name : "";
}

struct Location {
  std::string file;
  int line = 0;
};

// addr is relative to the module's bias, like all DWARF addresses.
Location lineAt(Dwarf_Die* cu, Dwarf_Addr addr) {
  Location loc;
  Dwarf_Line* line = dwarf_getsrc_die(cu, addr);
  bool end_sequence = false;
  // An end-of-sequence row only marks where the previous row's code stops.
  if (line == nullptr || dwarf_lineendsequence(line, &end_sequence) != 0 || end_sequence) return loc;
  dwarf_lineno(line, &loc.line);
  const char* file = dwarf_linesrc(line, nullptr, nullptr);
  if (file != nullptr) loc.file = file;
  return loc;
}

// Where the caller sits: the inlined instance records the call it replaced.
Location callSite(Dwarf_Die* cu, Dwarf_Die* inlined) {
  Location loc;
  Dwarf_Attribute attr;
  Dwarf_Word value = 0;
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &value) == 0) loc.line = static_cast<int>(value);
  Dwarf_Files* files = nullptr;
  size_t file_count = 0;
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &value) == 0 &&
      dwarf_getsrcfiles(cu, &files, &file_count) == 0 && value < file_count) {
    const char* file = dwarf_filesrc(files, value, nullptr, nullptr);
    if (file != nullptr) loc.file = file;
  }
  return loc;
}

// Appends the DIEs enclosing addr below parent, outermost first. Not dwarf_getscopes: it prunes namespaces, which
// carry no address ranges, yet clang nests function definitions inside them.
void appendScopes(Dwarf_Die* parent, Dwarf_Addr addr, std::vector<Dwarf_Die>& outer_first) {
  Dwarf_Die child;
  if (dwarf_child(parent, &child) != 0) return;
  do {
    if (dwarf_tag(&child) == DW_TAG_namespace) {
      const size_t before = outer_first.size();
      appendScopes(&child, addr, outer_first);
      if (outer_first.size() > before) return;
    } else if (dwarf_haspc(&child, addr) == 1) {
      outer_first.push_back(child);
      appendScopes(&child, addr, outer_first);
      return;
    }
  } while (dwarf_siblingof(&child, &child) == 0);
}

// The DIEs of a CU that hold code, found the way appendScopes() walks from the CU's root (namespaces entered,
// nothing else), by address. A C++ CU has thousands of DIEs at its top (types, declarations, template
// instances): walking them all for every pc was most of a 1,000-thread dump's analysis, while a dump's pcs
// cluster in few CUs. Built on a CU's first pc, at the cost of one such walk.
class FunctionIndex {
 public:
  explicit FunctionIndex(Dwarf_Die* cu) {
    collect(cu);
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.low < b.low; });
    Dwarf_Addr reach = 0;
    for (const Entry& e : entries_) reach_.push_back(reach = std::max(reach, e.high));
  }

  // The DIE holding addr that comes first in the CU (the one appendScopes() would find), or nullptr.
  const Dwarf_Die* at(Dwarf_Addr addr) const {
    auto after = std::upper_bound(entries_.begin(), entries_.end(), addr,
                                  [](Dwarf_Addr a, const Entry& e) { return a < e.low; });
    const Entry* first = nullptr;
    // Ranges rarely overlap; reach_ ends the walk down as soon as no earlier range can extend to addr.
    for (size_t i = static_cast<size_t>(after - entries_.begin()); i > 0 && reach_[i - 1] > addr; --i) {
      const Entry& e = entries_[i - 1];
      if (addr < e.high && (first == nullptr || e.order < first->order)) first = &e;
    }
    return first != nullptr ? &first->die : nullptr;
  }

 private:
  struct Entry {
    Dwarf_Addr low;
    Dwarf_Addr high;
    size_t order;  // position in the walk
    Dwarf_Die die;
  };

  void collect(Dwarf_Die* parent) {
    Dwarf_Die child;
    if (dwarf_child(parent, &child) != 0) return;
    do {
      if (dwarf_tag(&child) == DW_TAG_namespace) {
        collect(&child);
        continue;
      }
      Dwarf_Addr base = 0;
      Dwarf_Addr low = 0;
      Dwarf_Addr high = 0;
      for (ptrdiff_t at = dwarf_ranges(&child, 0, &base, &low, &high); at > 0;
           at = dwarf_ranges(&child, at, &base, &low, &high))
        entries_.push_back({low, high, order_, child});
      ++order_;
    } while (dwarf_siblingof(&child, &child) == 0);
  }

  std::vector<Entry> entries_;     // by low
  std::vector<Dwarf_Addr> reach_;  // reach_[i]: the highest end among entries_[0..i]
  size_t order_ = 0;
};

// Innermost first: lexical blocks, inlined instances, then the concrete function. addr is module-relative.
std::vector<Dwarf_Die> enclosingScopes(const FunctionIndex& functions, Dwarf_Addr addr) {
  std::vector<Dwarf_Die> scopes;
  if (const Dwarf_Die* found = functions.at(addr)) {
    Dwarf_Die function = *found;  // appendScopes() grows `scopes`: no pointer into it
    scopes.push_back(function);
    appendScopes(&function, addr, scopes);
  }
  std::reverse(scopes.begin(), scopes.end());
  return scopes;
}

// Splits the frame at addr (module-relative) into its inline chain, innermost first, with a source line for each.
std::vector<SourceFrame> inlineChain(Dwarf_Die* cu, const FunctionIndex& functions, Dwarf_Addr addr,
                                     SourceFrame outer) {
  std::vector<SourceFrame> frames;
  Location loc = lineAt(cu, addr);
  for (Dwarf_Die& scope : enclosingScopes(functions, addr)) {
    const int tag = dwarf_tag(&scope);
    if (tag == DW_TAG_subprogram) {
      if (outer.function.empty()) outer.function = dieName(&scope);
      break;
    }
    if (tag != DW_TAG_inlined_subroutine) continue;
    SourceFrame inlined = outer;
    inlined.function = dieName(&scope);
    inlined.file = loc.file;
    inlined.line = loc.line;
    inlined.inlined = true;
    frames.push_back(std::move(inlined));
    loc = callSite(cu, &scope);
  }
  outer.file = loc.file;
  outer.line = loc.line;
  frames.push_back(std::move(outer));
  return frames;
}

struct CuRange {
  Dwarf_Addr low;
  Dwarf_Addr high;
  Dwarf_Die* cu;  // owned by libdwfl for the module's lifetime
};

std::vector<CuRange> cuRangesOf(Dwfl_Module* mod) {
  std::vector<CuRange> ranges;
  Dwarf_Addr bias = 0;
  for (Dwarf_Die* cu = dwfl_module_nextcu(mod, nullptr, &bias); cu != nullptr; cu = dwfl_module_nextcu(mod, cu, &bias)) {
    Dwarf_Addr base = 0;
    Dwarf_Addr low = 0;
    Dwarf_Addr high = 0;
    for (ptrdiff_t at = dwarf_ranges(cu, 0, &base, &low, &high); at > 0; at = dwarf_ranges(cu, at, &base, &low, &high)) {
      ranges.push_back({low, high, cu});
    }
  }
  std::sort(ranges.begin(), ranges.end(), [](const CuRange& a, const CuRange& b) { return a.low < b.low; });
  return ranges;
}

Dwarf_Die* cuIn(const std::vector<CuRange>& ranges, Dwarf_Addr addr) {
  auto after = std::upper_bound(ranges.begin(), ranges.end(), addr,
                                [](Dwarf_Addr a, const CuRange& range) { return a < range.low; });
  if (after == ranges.begin()) return nullptr;
  const CuRange& range = *(after - 1);
  return addr < range.high ? range.cu : nullptr;
}

// The module's compile units by address from .debug_aranges; empty when it has none (clang does not emit them
// by default).
std::vector<CuSpan> arangeSpans(Dwarf* dwarf) {
  std::vector<CuSpan> spans;
  Dwarf_Aranges* aranges = nullptr;
  size_t count = 0;
  if (dwarf_getaranges(dwarf, &aranges, &count) != 0) return spans;
  for (size_t i = 0; i < count; ++i) {
    Dwarf_Addr start = 0;
    Dwarf_Word length = 0;
    Dwarf_Off die_offset = 0;
    if (dwarf_getarangeinfo(dwarf_onearange(aranges, i), &start, &length, &die_offset) == 0 && length > 0)
      spans.push_back({start, start + length, die_offset});
  }
  std::sort(spans.begin(), spans.end(), [](const CuSpan& a, const CuSpan& b) { return a.low < b.low; });
  return spans;
}

void describeModule(Dwfl_Module* mod, uint64_t pc, SourceFrame& frame) {
  Dwarf_Addr start = 0;
  frame.module = displayName(dwfl_module_info(mod, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr));
  Dwarf_Addr bias = 0;
  frame.module_unreadable = dwfl_module_getelf(mod, &bias) == nullptr;
  // Without the ELF file the load bias is unknown; the start of the mapping is the next best reference.
  frame.module_offset = pc - (frame.module_unreadable ? start : bias);
}

// dwfl_module_addrinfo scans the whole symbol table on every call (10,000 symbols for libc); this index answers
// the common case, a pc inside a sized symbol, with a binary search, and leaves every other case to libdwfl.
class SymbolIndex {
 public:
  explicit SymbolIndex(Dwfl_Module* mod) : mod_(mod) {
    const int count = dwfl_module_getsymtab(mod);
    for (int i = 1; i < count; ++i) {
      GElf_Sym sym;
      GElf_Addr addr = 0;
      const char* name = dwfl_module_getsym_info(mod, i, &sym, &addr, nullptr, nullptr, nullptr);
      const int type = GELF_ST_TYPE(sym.st_info);
      if (name == nullptr || name[0] == '\0' || sym.st_size == 0 || type == STT_SECTION || type == STT_FILE ||
          type == STT_TLS)
        continue;
      entries_.push_back({addr, addr + sym.st_size, preference(sym), i, name});
    }
    // By start; at one start, the symbol libdwfl would pick first.
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.start, b.preference, a.index) < std::tie(b.start, a.preference, b.index);
    });
  }

  const char* nameAt(Dwarf_Addr addr) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                               [](Dwarf_Addr a, const Entry& e) { return a < e.start; });
    // The nearest symbols below addr: the first that spans it has the closest start. Past a few, addr is in
    // a gap or in something unusual (nested or sizeless symbols): libdwfl's rules decide.
    for (int looked = 0; it != entries_.begin() && looked < kMaxLook; ++looked) {
      --it;
      if (addr >= it->end) continue;
      // Same start: the most preferred that spans addr comes first in the sort.
      while (it != entries_.begin() && (it - 1)->start == it->start && addr < (it - 1)->end) --it;
      return it->name;
    }
    GElf_Off offset = 0;
    GElf_Sym sym;
    return dwfl_module_addrinfo(mod_, addr, &offset, &sym, nullptr, nullptr, nullptr);
  }

 private:
  static constexpr int kMaxLook = 16;

  struct Entry {
    Dwarf_Addr start;
    Dwarf_Addr end;
    int preference;
    int index;
    const char* name;  // owned by libdwfl for the module's lifetime
  };

  // libdwfl prefers, at equal distance, a global symbol to a weak one and a weak one to a local one.
  static int preference(const GElf_Sym& sym) {
    switch (GELF_ST_BIND(sym.st_info)) {
      case STB_GLOBAL: return 3;
      case STB_GNU_UNIQUE: return 2;
      case STB_WEAK: return 1;
      default: return 0;
    }
  }

  Dwfl_Module* mod_;
  std::vector<Entry> entries_;
};

std::string symbolName(const SymbolIndex& symbols, Dwarf_Addr addr) {
  const char* name = symbols.nameAt(addr);
  if (name == nullptr) return "";
  // Symbol tables may spell the version into the name ("__libc_start_main@@GLIBC_2.34"); it is not the function's.
  return demangle(std::string(name, std::strcspn(name, "@")).c_str());
}

// Whether pc is the first instruction of a signal trampoline (glibc's __restore_rt, musl's): on x86-64 the
// rt_sigreturn call, "mov $15, %rax; syscall", which every signal handler returns to. The byte before it, where a
// return address is looked up, belongs to no function, so the frame would have no name; debuggers show
// "<signal handler called>".
bool atSignalTrampoline(Dwfl_Module* mod, Dwarf_Addr pc) {
#if defined(__x86_64__)
  static constexpr unsigned char kRtSigreturn[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  Dwarf_Addr offset = pc;
  Dwarf_Addr bias = 0;
  Elf_Scn* section = dwfl_module_address_section(mod, &offset, &bias);
  Elf_Data* data = section != nullptr ? elf_getdata(section, nullptr) : nullptr;
  return data != nullptr && data->d_buf != nullptr && offset + sizeof kRtSigreturn <= data->d_size &&
         std::memcmp(static_cast<const char*>(data->d_buf) + offset, kRtSigreturn, sizeof kRtSigreturn) == 0;
#else
  (void)mod;
  (void)pc;
  return false;
#endif
}

// Whether elf has a full symbol table (.symtab), not only the dynamic one, which names just the exported functions.
bool hasFullSymbolTable(Elf* elf) {
  for (Elf_Scn* section = elf_nextscn(elf, nullptr); section != nullptr; section = elf_nextscn(elf, section)) {
    GElf_Shdr header;
    if (gelf_getshdr(section, &header) != nullptr && header.sh_type == SHT_SYMTAB) return true;
  }
  return false;
}

}  // namespace

struct Symbolizer::Impl {
  explicit Impl(pid_t pid)
      : files(pid, notes),
        debuginfo_path(files.debuginfoPath()),
        debuginfo_path_data(debuginfo_path.data()),
        callbacks{findElf, findDebuginfo, nullptr, &debuginfo_path_data},
        dwfl(dwfl_begin(&callbacks)) {}

  // A module's compile units by address (cached by build ID: see CuSpan), and the unit DIEs looked up so far.
  struct Units {
    std::vector<CuSpan> spans;
    std::unordered_map<Dwarf_Off, Dwarf_Die> dies;  // node-based, so each DIE stays put as a FunctionIndex key
  };

  // A module's pcs resolved by this or an earlier symbolizer (debug_cache.h); build_id is "" for a module that
  // is not cached (no build ID, or a file we cannot read).
  struct ModuleResolved {
    std::string build_id;
    ResolvedFrames frames;
    size_t added = 0;  // pcs resolved from the files since the entry was read or written
  };

  std::vector<SourceFrame> resolve(uint64_t pc, bool is_return_address);
  // resolve(), and a frame left without a name that is a signal trampoline's named so.
  std::vector<SourceFrame> resolveNamingTrampolines(uint64_t pc, bool is_return_address);
  std::vector<SourceFrame> resolveFromFiles(Dwfl_Module* mod, Dwarf_Addr addr, SourceFrame outer);
  ModuleResolved& resolvedOf(Dwfl_Module* mod);
  Units& unitsOf(Dwfl_Module* mod, Dwarf* dwarf);
  Dwarf_Die* spanCu(Dwfl_Module* mod, Dwarf* dwarf, Dwarf_Addr addr);
  Dwarf_Die* cuFor(Dwfl_Module* mod, Dwarf_Addr addr, Dwarf_Addr* bias);
  void noteMissingDebugInfo(Dwfl_Module* mod, const std::string& module);

  Notes notes;
  // Everything libdwfl points into is declared before dwfl, so it outlives dwfl_end.
  ModuleFiles files;
  std::string debuginfo_path;
  char* debuginfo_path_data;
  Dwfl_Callbacks callbacks;
  std::unique_ptr<Dwfl, DwflEnd> dwfl;
  std::unordered_map<uint64_t, std::vector<SourceFrame>> cache[2];  // indexed by is_return_address
  std::unordered_set<Dwfl_Module*> debug_info_checked;
  std::unordered_map<Dwfl_Module*, std::vector<CuRange>> cu_ranges;
  std::unordered_map<Dwfl_Module*, Units> units;
  std::unordered_map<Dwfl_Module*, SymbolIndex> symbol_indexes;
  std::unordered_map<Dwarf_Die*, FunctionIndex> function_indexes;  // by CU, which libdwfl keeps in place
  std::unordered_map<Dwfl_Module*, ModuleResolved> resolved;

  const SymbolIndex& symbolsOf(Dwfl_Module* mod) { return symbol_indexes.try_emplace(mod, mod).first->second; }
};

Symbolizer::Impl::Units& Symbolizer::Impl::unitsOf(Dwfl_Module* mod, Dwarf* dwarf) {
  auto [known, added] = units.try_emplace(mod);
  if (added) {
    const std::string build_id = buildIdHex(mod);
    known->second.spans = cachedCuSpans(files.debugCacheDir(), build_id);
    if (known->second.spans.empty()) {
      known->second.spans = arangeSpans(dwarf);
      cacheCuSpans(files.debugCacheDir(), build_id, known->second.spans);
    }
  }
  return known->second;
}

Dwarf_Die* Symbolizer::Impl::spanCu(Dwfl_Module* mod, Dwarf* dwarf, Dwarf_Addr addr) {
  Units& u = unitsOf(mod, dwarf);
  auto after = std::upper_bound(u.spans.begin(), u.spans.end(), addr,
                                [](Dwarf_Addr a, const CuSpan& span) { return a < span.low; });
  if (after == u.spans.begin() || addr >= (after - 1)->high) return nullptr;
  const Dwarf_Off offset = (after - 1)->die_offset;
  auto [die, added] = u.dies.try_emplace(offset);
  if (added && dwarf_offdie(dwarf, offset, &die->second) == nullptr) {
    u.dies.erase(die);
    return nullptr;
  }
  return &die->second;
}

Dwarf_Die* Symbolizer::Impl::cuFor(Dwfl_Module* mod, Dwarf_Addr addr, Dwarf_Addr* bias) {
  Dwarf* dwarf = dwfl_module_getdwarf(mod, bias);
  if (dwarf == nullptr) return nullptr;
  // An arange (or a cached span, which may be stale or planted) only suggests the unit: the unit's own ranges
  // decide, as they do for a pc past the end of the nearest unit (crt1.o's _start, which has no DWARF).
  Dwarf_Die* cu = spanCu(mod, dwarf, addr - *bias);
  if (cu != nullptr && dwarf_haspc(cu, addr - *bias) == 1) return cu;
  // .debug_aranges is missing from clang's output by default and incomplete in mixed builds. The CUs' own ranges
  // are the truth; collecting them costs one pass over the CU headers.
  auto [ranges, missing] = cu_ranges.try_emplace(mod);
  if (missing) ranges->second = cuRangesOf(mod);
  return cuIn(ranges->second, addr - *bias);
}

std::vector<SourceFrame> Symbolizer::Impl::resolve(uint64_t pc, bool is_return_address) {
  SourceFrame outer;
  outer.address = pc;
  // A return address points past the call, which may already be the next line or outside the inlined callee.
  const Dwarf_Addr addr = is_return_address && pc > 0 ? pc - 1 : pc;
  Dwfl_Module* mod = dwfl_addrmodule(dwfl.get(), addr);
  if (mod == nullptr) return {outer};
  describeModule(mod, pc, outer);
  noteMissingDebugInfo(mod, outer.module);
  ModuleResolved& known = resolvedOf(mod);
  if (known.build_id.empty()) return resolveFromFiles(mod, addr, std::move(outer));
  const uint64_t key = resolvedKey(outer.module_offset, is_return_address);
  if (auto it = known.frames.by_key.find(key); it != known.frames.by_key.end()) {
    std::vector<SourceFrame> frames(it->second.size(), outer);
    for (size_t i = 0; i < frames.size(); ++i) {
      frames[i].function = it->second[i].function;
      frames[i].file = it->second[i].file;
      frames[i].line = it->second[i].line;
      frames[i].inlined = it->second[i].inlined;
    }
    return frames;
  }
  std::vector<SourceFrame> frames = resolveFromFiles(mod, addr, std::move(outer));
  if (known.frames.by_key.size() < kMaxResolvedPcs) {
    std::vector<CachedFrame> kept;
    for (const SourceFrame& frame : frames) kept.push_back({frame.function, frame.file, frame.line, frame.inlined});
    known.frames.by_key.emplace(key, std::move(kept));
    ++known.added;
  }
  return frames;
}

std::vector<SourceFrame> Symbolizer::Impl::resolveNamingTrampolines(uint64_t pc, bool is_return_address) {
  std::vector<SourceFrame> frames = resolve(pc, is_return_address);
  if (is_return_address && frames.size() == 1 && frames[0].function.empty()) {
    Dwfl_Module* mod = dwfl_addrmodule(dwfl.get(), pc);
    if (mod != nullptr && atSignalTrampoline(mod, pc)) frames[0].function = kSignalHandlerCalled;
  }
  return frames;
}

std::vector<SourceFrame> Symbolizer::Impl::resolveFromFiles(Dwfl_Module* mod, Dwarf_Addr addr, SourceFrame outer) {
  outer.function = symbolName(symbolsOf(mod), addr);
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = cuFor(mod, addr, &bias);
  if (cu == nullptr) return {outer};
  const FunctionIndex& functions = function_indexes.try_emplace(cu, cu).first->second;
  return inlineChain(cu, functions, addr - bias, std::move(outer));
}

// A module's entry is used only if it was resolved with the debug info the module has now.
Symbolizer::Impl::ModuleResolved& Symbolizer::Impl::resolvedOf(Dwfl_Module* mod) {
  auto [known, added] = resolved.try_emplace(mod);
  Dwarf_Addr bias = 0;
  if (!added || dwfl_module_getelf(mod, &bias) == nullptr) return known->second;
  ModuleResolved& module = known->second;
  module.build_id = buildIdHex(mod);
  module.frames.with_dwarf = dwfl_module_getdwarf(mod, &bias) != nullptr;
  std::optional<ResolvedFrames> cached = cachedResolvedFrames(files.debugCacheDir(), module.build_id);
  if (cached && cached->with_dwarf == module.frames.with_dwarf) module.frames = std::move(*cached);
  return module;
}

void Symbolizer::Impl::noteMissingDebugInfo(Dwfl_Module* mod, const std::string& module) {
  // The vDSO never has debug info and nobody can install it, so it is not worth a note.
  if (module.empty() || module[0] != '/' || !debug_info_checked.insert(mod).second) return;
  Dwarf_Addr bias = 0;
  // Without the ELF file at all, ModuleFiles has already said so.
  if (dwfl_module_getelf(mod, &bias) == nullptr || dwfl_module_getdwarf(mod, &bias) != nullptr) return;
  const std::string build_id = buildIdHex(mod);
  const std::string install =
      "install its debug symbols" +
      (build_id.size() > 2
           ? " (looked for as /usr/lib/debug/.build-id/" + build_id.substr(0, 2) + "/" + build_id.substr(2) + ".debug)"
           : std::string());
  if (hasFullSymbolTable(dwfl_module_getelf(mod, &bias)))
    notes.add("no debug info for " + module + ": its frames have function names but no file:line; " + install);
  else
    notes.add("no debug info or symbol table for " + module +
              ": only its exported functions have names, the others show as module+offset, and no frame has "
              "file:line; " + install);
}

Result<std::unique_ptr<Symbolizer>> Symbolizer::forProcess(pid_t pid) {
  if (pid <= 0) return makeError(ErrorKind::kUsage, "invalid PID " + std::to_string(pid) + ": it must be positive");
  const std::string proc_dir = "/proc/" + std::to_string(pid);
  struct stat st {};
  if (stat(proc_dir.c_str(), &st) != 0) return processError(pid, errno, "the /proc entry");

  auto impl = std::make_unique<Impl>(pid);
  Dwfl* dwfl = impl->dwfl.get();
  if (dwfl == nullptr) return makeError(ErrorKind::kInternal, std::string("cannot start libdwfl: ") + dwfl_errmsg(-1));
  const int rc = dwfl_linux_proc_report(dwfl, pid);
  if (rc > 0) return processError(pid, rc, "the memory maps");
  if (rc < 0 || dwfl_report_end(dwfl, nullptr, nullptr) != 0) {
    return makeError(ErrorKind::kInternal, "cannot read the memory maps of process " + std::to_string(pid) + ": " +
                                               dwfl_errmsg(-1));
  }
  // Module files open lazily, from inside lookups; the callback finds its context through each module's userdata.
  dwfl_getmodules(dwfl, attachModuleFiles, &impl->files, 0);
  return std::unique_ptr<Symbolizer>(new Symbolizer(std::move(impl)));
}

Symbolizer::Symbolizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

void Symbolizer::loadDebugInfo() {
  dwfl_getmodules(
      impl_->dwfl.get(),
      [](Dwfl_Module* mod, void** userdata, const char*, Dwarf_Addr, void* arg) {
        Dwarf_Addr bias = 0;
        if (!static_cast<Impl*>(arg)->resolvedOf(mod).frames.by_key.empty()) return static_cast<int>(DWARF_CB_OK);
        // The symbol and CU address indexes are built on first use; build them now, off the critical path.
        static_cast<Impl*>(arg)->symbolsOf(mod);
        if (Dwarf* dwarf = dwfl_module_getdwarf(mod, &bias); dwarf != nullptr) {
          static_cast<Impl*>(arg)->unitsOf(mod, dwarf);
          cacheInflatedDebugFile(mod, static_cast<ModuleFiles*>(*userdata)->debugCacheDir());
        }
        return static_cast<int>(DWARF_CB_OK);
      },
      impl_.get(), 0);
}

void Symbolizer::saveResolved() {
  for (auto& [mod, known] : impl_->resolved) {
    // A running thread's pc is new on every dump; rewriting a large entry for a handful of them would cost more
    // than resolving them again next time.
    if (known.added == 0 || known.added * kRewriteRatio < known.frames.by_key.size()) continue;
    cacheResolvedFrames(impl_->files.debugCacheDir(), known.build_id, known.frames);
    known.added = 0;
  }
}

Symbolizer::~Symbolizer() = default;

const std::vector<SourceFrame>& Symbolizer::symbolize(uint64_t pc, bool is_return_address) {
  auto& cache = impl_->cache[is_return_address ? 1 : 0];
  auto it = cache.find(pc);
  if (it == cache.end()) it = cache.emplace(pc, impl_->resolveNamingTrampolines(pc, is_return_address)).first;
  return it->second;
}

const std::vector<std::string>& Symbolizer::notes() const { return impl_->notes.all(); }

}  // namespace cppops
