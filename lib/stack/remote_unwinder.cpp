#include "stack/remote_unwinder.h"

#include <libunwind-ptrace.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "proc/maps.h"
#include "unwind/frame_pointer.h"

namespace cppops::stack {

namespace {

// The target's memory as libunwind reads it live, where the thread's snapshot does not hold it: the unwind tables
// the first time a pc is seen, and the rare stack word outside the copy (a signal stack, a very deep stack).
// Whole pages come in with one process_vm_readv each and serve the following words. Pages of read-only mappings
// (code, unwind tables) cannot change during the dump and are kept across threads; the others are forgotten
// between threads.
class RemoteMemory {
 public:
  RemoteMemory(pid_t pid, const std::vector<proc::Mapping>& maps) : pid_(pid), maps_(maps) {}

  void forgetWritable() {
    for (Page& page : writable_.pages) page.valid = false;
  }

  bool readWord(uint64_t address, uint64_t& value) {
    const uint64_t offset = address % kPageSize;
    const Page* first = page(address - offset);
    if (first == nullptr) return false;
    if (offset + sizeof value <= kPageSize) {
      std::memcpy(&value, first->bytes.data() + offset, sizeof value);
      return true;
    }
    // A word across a page boundary: copy each part before the second lookup may evict the first page.
    uint8_t bytes[sizeof value];
    const size_t head = kPageSize - offset;
    std::memcpy(bytes, first->bytes.data() + offset, head);
    const Page* second = page(address - offset + kPageSize);
    if (second == nullptr) return false;
    std::memcpy(bytes + head, second->bytes.data(), sizeof value - head);
    std::memcpy(&value, bytes, sizeof value);
    return true;
  }

 private:
  static constexpr uint64_t kPageSize = 4096;

  struct Page {
    uint64_t base = 0;
    bool valid = false;
    std::array<uint8_t, kPageSize> bytes{};
  };

  struct Pages {
    explicit Pages(size_t count) : pages(count) {}
    std::vector<Page> pages;
    size_t next = 0;  // round robin: lookups are few per page, so anything smarter costs more than it saves
  };

  const Page* page(uint64_t base) {
    const proc::Mapping* mapping = proc::findMapping(maps_, base);
    Pages& pool = mapping != nullptr && !mapping->writable ? read_only_ : writable_;
    for (const Page& cached : pool.pages)
      if (cached.valid && cached.base == base) return &cached;
    Page& slot = pool.pages[pool.next];
    pool.next = (pool.next + 1) % pool.pages.size();
    iovec local{slot.bytes.data(), kPageSize};
    iovec remote{reinterpret_cast<void*>(base), kPageSize};
    slot.valid = process_vm_readv(pid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(kPageSize);
    slot.base = base;
    return slot.valid ? &slot : nullptr;
  }

  pid_t pid_;
  const std::vector<proc::Mapping>& maps_;
  Pages writable_{8};     // a deep stack's pages
  Pages read_only_{128};  // the table pages a dump's distinct pcs need
};

// libunwind-ptrace's table lookup keeps one ELF image mapped per UPT_info, and moving to another module means
// reading /proc/PID/maps (thousands of lines in a process with thousands of threads) and mapping the file anew.
// One UPT_info per module keeps every module's image at hand.
class ModuleTables {
 public:
  ModuleTables(pid_t pid, const std::vector<proc::Mapping>& maps) : pid_(pid), maps_(maps) {}
  ~ModuleTables() {
    for (auto& [path, upt] : by_path_) _UPT_destroy(upt);
  }
  ModuleTables(const ModuleTables&) = delete;
  ModuleTables& operator=(const ModuleTables&) = delete;

  // The UPT_info for the module that holds `pc`; `fallback` for code outside any named file (JIT code).
  void* forPc(uint64_t pc, void* fallback) {
    const proc::Mapping* mapping = proc::findMapping(maps_, pc);
    if (mapping == nullptr || mapping->path.empty() || mapping->path[0] == '[') return fallback;
    void*& upt = by_path_[mapping->path];
    if (upt == nullptr) upt = _UPT_create(pid_);
    return upt != nullptr ? upt : fallback;
  }

 private:
  pid_t pid_;
  const std::vector<proc::Mapping>& maps_;
  std::map<std::string, void*> by_path_;
};

// A stopped thread as the unwind needs it: its registers, and its stack from the stack pointer up to the end of
// the mapping that holds it (a thread's stack grows down, so that is every frame), at most kStackCopyLimit.
struct ThreadSnapshot {
  // Stacks deeper than this are rare; their outer frames are read live, after the thread has run on, and are
  // right as long as the thread has not returned through them.
  static constexpr size_t kStackCopyLimit = 512 * 1024;

  ThreadSnapshot() : stack(kStackCopyLimit, 0) {}  // zero-filled: the pages are touched now, not during a stop

  bool contains(uint64_t address, size_t size) const {
    return address >= stack_start && address - stack_start <= stack_size && stack_size - (address - stack_start) >= size;
  }

  user_regs_struct regs{};
  uint64_t stack_start = 0;
  size_t stack_size = 0;
  std::vector<uint8_t> stack;
};

// What the accessors below work on during one unwind.
struct UnwindTarget {
  const ThreadSnapshot* snapshot = nullptr;  // the stack copy, when there is one
  const user_regs_struct* regs = nullptr;
  // regs holds rsp and rip alone: a sleeping thread, whose other registers the kernel does not report.
  bool sp_and_pc_only = false;
  // The unwind asked for a register regs does not hold: what it found past that point would be a guess.
  bool needed_unknown_register = false;
  // The frame being stepped from, for frameBase(): its pc (a return address past the first frame) and sp, and
  // room for its function's code.
  uint64_t frame_pc = 0;
  uint64_t frame_sp = 0;
  bool first_frame = true;
  std::vector<uint8_t>* code = nullptr;
  std::map<uint64_t, int64_t>* depths = nullptr;  // unwind::depthAt() by call site, -1 for one refused
  RemoteMemory* memory = nullptr;
  ModuleTables* modules = nullptr;
};

// libunwind hands accessors the argument of whoever calls them, and inside _UPT_find_proc_info that is its own
// UPT_info, not ours; so the thread being unwound travels in a thread_local, set for the span of one unwind.
thread_local UnwindTarget* t_current = nullptr;

bool registerValue(const user_regs_struct& regs, unw_regnum_t reg, unw_word_t& value) {
#if defined(__x86_64__)
  switch (reg) {
    case UNW_X86_64_RAX: value = regs.rax; return true;
    case UNW_X86_64_RDX: value = regs.rdx; return true;
    case UNW_X86_64_RCX: value = regs.rcx; return true;
    case UNW_X86_64_RBX: value = regs.rbx; return true;
    case UNW_X86_64_RSI: value = regs.rsi; return true;
    case UNW_X86_64_RDI: value = regs.rdi; return true;
    case UNW_X86_64_RBP: value = regs.rbp; return true;
    case UNW_X86_64_RSP: value = regs.rsp; return true;
    case UNW_X86_64_R8: value = regs.r8; return true;
    case UNW_X86_64_R9: value = regs.r9; return true;
    case UNW_X86_64_R10: value = regs.r10; return true;
    case UNW_X86_64_R11: value = regs.r11; return true;
    case UNW_X86_64_R12: value = regs.r12; return true;
    case UNW_X86_64_R13: value = regs.r13; return true;
    case UNW_X86_64_R14: value = regs.r14; return true;
    case UNW_X86_64_R15: value = regs.r15; return true;
    case UNW_X86_64_RIP: value = regs.rip; return true;
    default: return false;
  }
#else
#error "RemoteUnwinder maps user_regs_struct to libunwind's registers for x86_64 only"
#endif
}

int findProcInfo(unw_addr_space_t space, unw_word_t pc, unw_proc_info_t* info, int need_unwind_info, void* upt) {
  if (t_current != nullptr) upt = t_current->modules->forPc(pc, upt);
  return _UPT_find_proc_info(space, pc, info, need_unwind_info, upt);
}

// A sleeping thread's rbp as the frame being stepped from has it, when that frame is the first one built with
// frame pointers and its function moves rsp nowhere but in its prologue and epilogues (unwind/frame_pointer.h); 0
// when that cannot be shown. The depth, which takes decoding the function, is kept by call site for the dump.
uint64_t frameBase(unw_addr_space_t space, void* upt, UnwindTarget& target) {
  auto read = [&target](uint64_t at, uint64_t* word) { return target.memory->readWord(at, *word); };
  auto [known, added] = target.depths->try_emplace(target.frame_pc, -1);
  if (added) {
    unw_proc_info_t info{};
    const uint64_t lookup = target.first_frame ? target.frame_pc : target.frame_pc - 1;
    if (findProcInfo(space, lookup, &info, 0, upt) != 0) return 0;
    _UPT_put_unwind_info(space, &info, upt);
    known->second = unwind::depthAt(info.start_ip, info.end_ip - info.start_ip, target.frame_pc, read,
                                    target.code->data());
  }
  return unwind::frameBaseAt(known->second, target.frame_sp, read);
}

int accessMem(unw_addr_space_t, unw_word_t address, unw_word_t* value, int write, void*) {
  if (write != 0 || t_current == nullptr) return -UNW_EINVAL;
  uint64_t word = 0;
  const ThreadSnapshot* snapshot = t_current->snapshot;
  if (snapshot != nullptr && snapshot->contains(address, sizeof word))
    std::memcpy(&word, snapshot->stack.data() + (address - snapshot->stack_start), sizeof word);
  else if (!t_current->memory->readWord(address, word))
    return -UNW_EINVAL;
  *value = word;
  return 0;
}

int accessReg(unw_addr_space_t space, unw_regnum_t reg, unw_word_t* value, int write, void* upt) {
  if (write != 0 || t_current == nullptr || t_current->regs == nullptr) return -UNW_EINVAL;
  if (t_current->sp_and_pc_only && reg != UNW_REG_SP && reg != UNW_REG_IP) {
    // Asked for rbp's value, not for where a frame saved it: no frame so far saved it, and the frame being
    // stepped from needs it.
    if (reg == UNW_X86_64_RBP) {
      if (const uint64_t base = frameBase(space, upt, *t_current)) {
        *value = base;
        return 0;
      }
    }
    t_current->needed_unknown_register = true;
    return -UNW_EBADREG;
  }
  return registerValue(*t_current->regs, reg, *value) ? 0 : -UNW_EBADREG;
}

int accessFpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

// We only read: nothing in the target is ever resumed or changed through libunwind.
int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

unw_accessors_t g_accessors = {
    findProcInfo, _UPT_put_unwind_info, _UPT_get_dyn_info_list_addr, accessMem, accessReg, accessFpreg,
    resume,       _UPT_get_proc_name,
};

}  // namespace

struct RemoteUnwinder::Impl {
  explicit Impl(pid_t target) : pid(target), maps(proc::readMaps(target)), memory(target, maps), modules(target, maps) {}
  ~Impl() {
    if (upt != nullptr) _UPT_destroy(upt);
    if (space != nullptr) unw_destroy_addr_space(space);
  }

  pid_t pid;
  // As of the start of the dump: a library loaded later is found through the fallback, at the old cost.
  std::vector<proc::Mapping> maps;
  RemoteMemory memory;
  ModuleTables modules;
  unw_addr_space_t space = nullptr;
  void* upt = nullptr;  // for what is not in a module's file, and what libunwind asks without a pc
  ThreadSnapshot snapshot;
  std::vector<uint8_t> code = std::vector<uint8_t>(unwind::kMaxFunctionBytes);  // for frameBase()
  std::map<uint64_t, int64_t> depths;                                             // for frameBase()

  enum class Unwound {
    kNotStarted,  // libunwind could not even read where the thread is
    kWhole,       // to the outermost frame, or to max_frames
    kCutShort,    // a step failed on the way
  };

  // Walks `target`'s stack into `pcs`: pcs[0] is the pc where the thread is, the rest are return addresses.
  Unwound unwind(UnwindTarget& target, size_t max_frames, std::vector<uint64_t>& pcs) {
    target.memory = &memory;
    target.code = &code;
    target.depths = &depths;
    target.modules = &modules;
    memory.forgetWritable();
    t_current = &target;
    struct Reset {
      ~Reset() { t_current = nullptr; }
    } reset;

    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, space, upt) != 0) return Unwound::kNotStarted;
    for (;;) {
      unw_word_t pc = 0;
      if (unw_get_reg(&cursor, UNW_REG_IP, &pc) != 0) return Unwound::kCutShort;
      if (pc == 0) return Unwound::kWhole;
      pcs.push_back(pc);
      if (pcs.size() >= max_frames) return Unwound::kWhole;
      if (target.sp_and_pc_only) {
        unw_word_t sp = 0;
        if (unw_get_reg(&cursor, UNW_REG_SP, &sp) != 0) return Unwound::kCutShort;
        target.frame_pc = pc;
        target.frame_sp = sp;
        target.first_frame = pcs.size() == 1;
      }
      const int stepped = unw_step(&cursor);
      if (stepped <= 0) return stepped == 0 ? Unwound::kWhole : Unwound::kCutShort;
    }
  }

  // Maps every module's ELF image and reads the start of its unwind table now, while no thread is stopped, so
  // that the first threads' stops are not spent on it.
  void warmUp() {
    UnwindTarget nobody;
    nobody.memory = &memory;
    nobody.modules = &modules;
    t_current = &nobody;
    for (const proc::Mapping& mapping : maps) {
      if (!mapping.executable) continue;
      unw_proc_info_t info{};
      if (findProcInfo(space, mapping.start, &info, 0, upt) == 0) _UPT_put_unwind_info(space, &info, upt);
    }
    t_current = nullptr;
  }
};

RemoteUnwinder::RemoteUnwinder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteUnwinder::~RemoteUnwinder() = default;

Result<std::unique_ptr<RemoteUnwinder>> RemoteUnwinder::create(pid_t pid) {
  auto impl = std::make_unique<Impl>(pid);
  impl->space = unw_create_addr_space(&g_accessors, 0);
  // UPT_infos find tables through /proc/PID/maps, which describes every thread of the process alike.
  impl->upt = _UPT_create(pid);
  if (impl->space == nullptr || impl->upt == nullptr)
    return makeError(ErrorKind::kInternal, "libunwind could not set up remote unwinding (out of memory?)");
  unw_set_caching_policy(impl->space, UNW_CACHE_GLOBAL);
  impl->warmUp();
  return std::unique_ptr<RemoteUnwinder>(new RemoteUnwinder(std::move(impl)));
}

Status RemoteUnwinder::snapshot(pid_t tid) {
  ThreadSnapshot& copy = impl_->snapshot;
  copy.stack_size = 0;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &copy.regs) != 0)
    return makeError(ErrorKind::kInternal, std::string("cannot read the thread's registers: ") + std::strerror(errno));
  copy.stack_start = copy.regs.rsp;
  size_t want = ThreadSnapshot::kStackCopyLimit;
  // A thread created after the dump began has a stack the maps do not show: the limit bounds its copy, and
  // process_vm_readv stops at the first page that is not mapped.
  if (const proc::Mapping* stack = proc::findMapping(impl_->maps, copy.stack_start))
    want = std::min<uint64_t>(want, stack->end - copy.stack_start);
  iovec local{copy.stack.data(), want};
  iovec remote{reinterpret_cast<void*>(copy.stack_start), want};
  const ssize_t n = process_vm_readv(impl_->pid, &local, 1, &remote, 1, 0);
  copy.stack_size = n > 0 ? static_cast<size_t>(n) : 0;
  return {};
}

std::vector<uint64_t> RemoteUnwinder::unwindSnapshot(size_t max_frames) {
  UnwindTarget target;
  target.snapshot = &impl_->snapshot;
  target.regs = &impl_->snapshot.regs;
  std::vector<uint64_t> pcs;
  if (impl_->unwind(target, max_frames, pcs) == Impl::Unwound::kNotStarted)
    pcs.push_back(impl_->snapshot.regs.rip);  // no unwinding, but where the thread is remains worth knowing
  return pcs;
}

std::vector<uint64_t> RemoteUnwinder::unwindAsleep(uint64_t pc, uint64_t sp, size_t max_frames) {
  user_regs_struct regs{};
  regs.rip = pc;
  regs.rsp = sp;
  UnwindTarget target;
  target.regs = &regs;
  target.sp_and_pc_only = true;
  std::vector<uint64_t> pcs;
  if (impl_->unwind(target, max_frames, pcs) != Impl::Unwound::kWhole || target.needed_unknown_register) pcs.clear();
  return pcs;
}

}  // namespace cppops::stack
