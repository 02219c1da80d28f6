#include "heap/memory.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

namespace cppops::heap {

namespace {

// "Rss:                3456 kB" -> bytes.
bool kbField(const std::string& line, const char* key, uint64_t* out) {
  const size_t n = std::char_traits<char>::length(key);
  if (line.compare(0, n, key) != 0) return false;
  *out = std::strtoull(line.c_str() + n, nullptr, 10) * 1024;
  return true;
}

// A mapping's header line: "start-end perms offset dev inode [path]".
bool parseHeader(const std::string& line, Mapping* m) {
  char* end = nullptr;
  m->start = std::strtoull(line.c_str(), &end, 16);
  if (end == nullptr || *end != '-') return false;
  m->end = std::strtoull(end + 1, &end, 16);
  if (end == nullptr || *end != ' ') return false;
  std::istringstream in(end);
  std::string offset, dev, inode;
  if (!(in >> m->perms >> offset >> dev >> inode)) return false;
  std::getline(in, m->path);
  size_t first = m->path.find_first_not_of(' ');
  m->path = first == std::string::npos ? "" : m->path.substr(first);
  return true;
}

bool isHeader(const std::string& line) {
  // Field lines start with a capitalised key ("Rss:", "VmFlags:"); headers with a hex address.
  return !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && !std::isupper(static_cast<unsigned char>(line[0])) &&
         line.find('-') != std::string::npos;
}

uint64_t attribute(const std::string& element, const char* name) {
  const std::string key = std::string(name) + "=\"";
  size_t at = element.find(key);
  return at == std::string::npos ? 0 : std::strtoull(element.c_str() + at + key.size(), nullptr, 10);
}

}  // namespace

KernelMemory parseSmapsRollup(const std::string& text) {
  KernelMemory k;
  std::istringstream in(text);
  std::string line;
  uint64_t shared_clean = 0, shared_dirty = 0, private_clean = 0, private_dirty = 0;
  while (std::getline(in, line)) {
    kbField(line, "Rss:", &k.rss) || kbField(line, "Pss:", &k.pss) || kbField(line, "Anonymous:", &k.anonymous) ||
        kbField(line, "Shared_Clean:", &shared_clean) || kbField(line, "Shared_Dirty:", &shared_dirty) ||
        kbField(line, "Private_Clean:", &private_clean) || kbField(line, "Private_Dirty:", &private_dirty) ||
        kbField(line, "Swap:", &k.swap);
  }
  k.shared = shared_clean + shared_dirty;
  k.private_ = private_clean + private_dirty;
  k.file = k.rss > k.anonymous ? k.rss - k.anonymous : 0;
  return k;
}

std::vector<Mapping> parseSmaps(const std::string& text) {
  std::vector<Mapping> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    if (isHeader(line) && parseHeader(line, &m)) {
      out.push_back(std::move(m));
      continue;
    }
    if (out.empty()) continue;
    Mapping& cur = out.back();
    kbField(line, "Rss:", &cur.rss) || kbField(line, "Anonymous:", &cur.anonymous) || kbField(line, "Swap:", &cur.swap);
  }
  return out;
}

std::vector<Mapping> largestMappings(const std::vector<Mapping>& mappings, size_t count) {
  std::vector<Mapping> out = mappings;
  std::stable_sort(out.begin(), out.end(), [](const Mapping& a, const Mapping& b) {
    if (a.rss != b.rss) return a.rss > b.rss;
    return a.size() > b.size();
  });
  if (out.size() > count) out.resize(count);
  return out;
}

ThreadStacks threadStacks(const std::vector<Mapping>& mappings,
                          const std::vector<protocol::ThreadStackPointer>& pointers) {
  ThreadStacks t;
  t.threads = pointers.size();
  std::set<size_t> used;
  for (const auto& p : pointers) {
    if (p.sp == 0) continue;
    auto it = std::upper_bound(mappings.begin(), mappings.end(), p.sp,
                               [](uint64_t sp, const Mapping& m) { return sp < m.start; });
    if (it == mappings.begin()) continue;
    --it;
    if (p.sp >= it->end) continue;
    ++t.located;
    used.insert(static_cast<size_t>(it - mappings.begin()));
  }
  for (size_t i : used) {
    t.size += mappings[i].size();
    t.rss += mappings[i].rss;
  }
  t.mappings = used.size();
  return t;
}

std::vector<Arena> parseMallocInfo(const std::string& xml) {
  std::vector<Arena> out;
  size_t pos = 0;
  while ((pos = xml.find("<heap nr=\"", pos)) != std::string::npos) {
    size_t end = xml.find("</heap>", pos);
    if (end == std::string::npos) break;
    const std::string heap = xml.substr(pos, end - pos);
    Arena a;
    a.number = static_cast<int>(attribute(heap, "nr"));
    size_t at = 0;
    while ((at = heap.find('<', at + 1)) != std::string::npos) {
      size_t close = heap.find('>', at);
      if (close == std::string::npos) break;
      const std::string element = heap.substr(at, close - at);
      if (element.rfind("<total type=\"fast\"", 0) == 0) {
        a.fast_free = attribute(element, "size");
        a.fast_free_chunks = attribute(element, "count");
      } else if (element.rfind("<total type=\"rest\"", 0) == 0) {
        a.rest_free = attribute(element, "size");
        a.rest_free_chunks = attribute(element, "count");
      } else if (element.rfind("<system type=\"current\"", 0) == 0) {
        a.system = attribute(element, "size");
      } else if (element.rfind("<system type=\"max\"", 0) == 0) {
        a.system_max = attribute(element, "size");
      } else if (element.rfind("<aspace type=\"total\"", 0) == 0) {
        a.address_space = attribute(element, "size");
      }
    }
    out.push_back(a);
    pos = end;
  }
  return out;
}

std::map<std::string, uint64_t> figureMap(const std::vector<protocol::AllocatorFigure>& figures) {
  std::map<std::string, uint64_t> out;
  for (const auto& f : figures) out[f.name] = f.value;
  return out;
}

AllocatorSummary summarize(const std::string& allocator, const std::vector<protocol::AllocatorFigure>& figures) {
  auto f = figureMap(figures);
  auto get = [&f](const char* name) { return f.count(name) != 0 ? f.at(name) : uint64_t{0}; };
  AllocatorSummary s;
  if (allocator == "glibc") {
    // uordblks: in use in the arenas; hblkhd: blocks mmap'd on their own (always in use); fordblks: free chunks.
    s.in_use = get("uordblks") + get("hblkhd");
    s.free = get("fordblks");
  } else if (allocator == "jemalloc") {
    s.in_use = get("stats.allocated");
    const uint64_t held = get("stats.resident");
    const uint64_t overhead = s.in_use + get("stats.metadata");
    s.free = held > overhead ? held - overhead : 0;
  } else if (allocator == "tcmalloc") {
    s.in_use = get("generic.current_allocated_bytes");
    s.free = get("tcmalloc.pageheap_free_bytes") + get("tcmalloc.central_cache_free_bytes") +
             get("tcmalloc.transfer_cache_free_bytes") + get("tcmalloc.thread_cache_free_bytes");
  }
  return s;
}

}  // namespace cppops::heap
