#include "cfi_unwind.h"

#include <dlfcn.h>
#include <string.h>

#include <atomic>

#include "unwind/frame_pointer.h"

// ld.so's record of where the main thread's stack began (the address of argc); no glibc header declares it.
extern "C" void* __libc_stack_end;

namespace cppops::agent::sigsafe {

#if defined(__x86_64__) && defined(__GLIBC__) && __GLIBC_PREREQ(2, 35)

namespace {

// DWARF register numbers of the x86-64 psABI.
constexpr uint64_t kRbp = 6;
constexpr uint64_t kRsp = 7;
constexpr uint64_t kReturnAddress = 16;

// Pointer encodings of .eh_frame (DW_EH_PE_*, in the LSB's "Exception Frames").
constexpr uint8_t kPeOmit = 0xff;
constexpr uint8_t kPeFormat = 0x0f;
constexpr uint8_t kPeApplication = 0x70;
constexpr uint8_t kPeIndirect = 0x80;
constexpr uint8_t kPeAbsptr = 0x00;
constexpr uint8_t kPeUleb128 = 0x01;
constexpr uint8_t kPeUdata2 = 0x02;
constexpr uint8_t kPeUdata4 = 0x03;
constexpr uint8_t kPeUdata8 = 0x04;
constexpr uint8_t kPeSleb128 = 0x09;
constexpr uint8_t kPeSdata2 = 0x0a;
constexpr uint8_t kPeSdata4 = 0x0b;
constexpr uint8_t kPeSdata8 = 0x0c;
constexpr uint8_t kPePcrel = 0x10;
constexpr uint8_t kPeDatarel = 0x30;

// Reads .eh_frame and .eh_frame_hdr, never past `end`: a read that would sets failed() and yields 0.
class Reader {
 public:
  Reader(const uint8_t* p, const uint8_t* end) : p_(p), end_(end) {}

  const uint8_t* position() const { return p_; }
  bool failed() const { return failed_; }
  bool done() const { return failed_ || p_ >= end_; }

  void skip(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) return fail();
    p_ += n;
  }

  template <typename T>
  T fixed() {
    T value{};
    if (static_cast<size_t>(end_ - p_) < sizeof value) {
      fail();
      return value;
    }
    memcpy(&value, p_, sizeof value);
    p_ += sizeof value;
    return value;
  }

  uint64_t uleb() {
    uint64_t value = 0;
    for (unsigned shift = 0; p_ < end_ && shift < 64; shift += 7) {
      const uint8_t byte = *p_++;
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
    fail();
    return 0;
  }

  int64_t sleb() {
    uint64_t value = 0;
    for (unsigned shift = 0; p_ < end_ && shift < 64;) {
      const uint8_t byte = *p_++;
      value |= uint64_t{byte & 0x7fu} << shift;
      shift += 7;
      if ((byte & 0x80) == 0) {
        if (shift < 64 && (byte & 0x40) != 0) value |= ~uint64_t{0} << shift;
        return static_cast<int64_t>(value);
      }
    }
    fail();
    return 0;
  }

  // A pointer in `encoding`, relative to where it is stored (pcrel) or to `data_base` (datarel). The value is
  // not dereferenced (indirect encodings are for personality routines, which are only skipped). False for the
  // encodings .eh_frame on x86-64 does not use.
  bool pointer(uint8_t encoding, uintptr_t data_base, uintptr_t* out) {
    const auto here = reinterpret_cast<uintptr_t>(p_);
    uint64_t value = 0;
    switch (encoding & kPeFormat) {
      case kPeAbsptr:
      case kPeUdata8:
      case kPeSdata8: value = fixed<uint64_t>(); break;
      case kPeUleb128: value = uleb(); break;
      case kPeSleb128: value = static_cast<uint64_t>(sleb()); break;
      case kPeUdata2: value = fixed<uint16_t>(); break;
      case kPeSdata2: value = static_cast<uint64_t>(static_cast<int64_t>(fixed<int16_t>())); break;
      case kPeUdata4: value = fixed<uint32_t>(); break;
      case kPeSdata4: value = static_cast<uint64_t>(static_cast<int64_t>(fixed<int32_t>())); break;
      default: return false;
    }
    switch (encoding & kPeApplication) {
      case 0: break;
      case kPePcrel: value += here; break;
      case kPeDatarel:
        if (data_base == 0) return false;
        value += data_base;
        break;
      default: return false;
    }
    *out = static_cast<uintptr_t>(value);
    return !failed_;
  }

 private:
  void fail() {
    failed_ = true;
    p_ = end_;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  bool failed_ = false;
};

// Where the caller's value of a register is. kSame is also "no rule": callee-saved registers keep their value.
// kAtRegisterOffset is the one expression rule followed (see Row).
enum class How : uint8_t { kSame, kUndefined, kAtOffset, kAtRegisterOffset, kBeyond };

struct RegisterRule {
  How how = How::kSame;
  int64_t offset = 0;       // from the CFA for kAtOffset, from `base` for kAtRegisterOffset
  uint64_t base = kRsp;     // rsp or rbp, as this frame has them, for kAtRegisterOffset
};

// One row of the CFI table, for the registers a walk needs: the CFA (the caller's rsp), rbp and the return
// address. Of the rules given by a DWARF expression, the two forms that compilers and glibc emit are followed:
// a CFA that is the word at rsp or rbp + cfa_offset (cfa_deref), and a register saved at rsp or rbp + offset.
//  - GCC so describes a function that realigns its stack and also keeps its incoming stack pointer (a "DRAP":
//    over-aligned locals beside alloca or a variable-length array): the CFA is the word at rbp - 8, the caller's
//    rbp is at rbp.
//  - glibc so describes its signal trampoline (__restore_rt): the interrupted registers, the CFA among them, are
//    words of the ucontext the kernel pushed, at rsp + their offsets.
// Any other expression is cfa_known = false.
struct Row {
  bool cfa_known = false;
  bool cfa_deref = false;
  uint64_t cfa_register = kRsp;
  int64_t cfa_offset = 0;
  RegisterRule rbp;
  RegisterRule return_address{How::kBeyond, 0};
};

// DWARF expression operations (DW_OP_*) of the forms above.
constexpr uint8_t kOpDeref = 0x06;
constexpr uint8_t kOpBreg0 = 0x70;

// An expression that is exactly "DW_OP_bregN k" with N rsp or rbp, followed by DW_OP_deref when `deref`: N and k.
bool registerPlusOffset(Reader expression, bool deref, uint64_t* reg, int64_t* k) {
  const uint8_t op = expression.fixed<uint8_t>();
  if (op != kOpBreg0 + kRsp && op != kOpBreg0 + kRbp) return false;
  *reg = op - kOpBreg0;
  *k = expression.sleb();
  if (deref && expression.fixed<uint8_t>() != kOpDeref) return false;
  return expression.done() && !expression.failed();
}

struct Cie {
  bool signal_frame = false;  // 'S': the frame of a signal trampoline, whose caller's pc is exact
  uint64_t code_alignment = 0;
  int64_t data_alignment = 0;
  uint8_t fde_encoding = kPeAbsptr;
  bool augmentation_data = false;
  const uint8_t* instructions = nullptr;
  const uint8_t* end = nullptr;
};

// A CIE the walker can follow: version 1 or 3, the return address in its usual column.
bool parseCie(const uint8_t* at, Cie* cie) {
  uint32_t length = 0;
  memcpy(&length, at, sizeof length);
  if (length == 0 || length == 0xffffffffu) return false;  // a terminator, or the 64-bit format (never emitted)
  cie->end = at + sizeof length + length;
  Reader r(at + sizeof length, cie->end);
  if (r.fixed<uint32_t>() != 0) return false;
  const uint8_t version = r.fixed<uint8_t>();
  if (version != 1 && version != 3) return false;
  const auto* augmentation = r.position();
  while (!r.done() && r.fixed<uint8_t>() != 0) {
  }
  cie->code_alignment = r.uleb();
  cie->data_alignment = r.sleb();
  const uint64_t return_column = version == 1 ? r.fixed<uint8_t>() : r.uleb();
  if (r.failed() || return_column != kReturnAddress) return false;
  if (augmentation[0] == 'z') {
    cie->augmentation_data = true;
    const uint64_t data_length = r.uleb();
    const uint8_t* data_end = r.position() + data_length;
    for (const uint8_t* a = augmentation + 1; *a != 0; ++a) {
      uintptr_t ignored = 0;
      switch (*a) {
        case 'R': cie->fde_encoding = r.fixed<uint8_t>(); break;
        case 'L': r.fixed<uint8_t>(); break;
        case 'P':
          if (!r.pointer(r.fixed<uint8_t>() & ~kPeIndirect, 0, &ignored)) return false;
          break;
        case 'B': break;
        case 'S': cie->signal_frame = true; break;
        default: return false;  // an augmentation we do not know how to skip
      }
    }
    if (r.failed() || data_end < r.position()) return false;
    r.skip(static_cast<uint64_t>(data_end - r.position()));
  } else if (augmentation[0] != 0) {
    return false;
  }
  cie->instructions = r.position();
  return !r.failed();
}

void setRule(Row& row, uint64_t reg, How how, int64_t offset = 0, uint64_t base = kRsp) {
  if (reg == kRbp) row.rbp = RegisterRule{how, offset, base};
  if (reg == kReturnAddress) row.return_address = RegisterRule{how, offset, base};
}

void restoreRule(Row& row, uint64_t reg, const Row& initial) {
  if (reg == kRbp) row.rbp = initial.rbp;
  if (reg == kReturnAddress) row.return_address = initial.return_address;
}

// Runs CFA instructions from `r` while the row's location is below `target`: the row that applies to the
// instruction just before `target`. False for an instruction it does not know.
bool execute(Reader r, const Cie& cie, uintptr_t location, uintptr_t target, Row& row, const Row& initial) {
  constexpr int kMaxRemembered = 8;
  Row remembered[kMaxRemembered];
  int depth = 0;
  // Moves to the next row; true once that row starts at or after `target`, where the walk stops.
  auto reached = [&](uint64_t delta) {
    location += delta * cie.code_alignment;
    return location >= target;
  };
  while (!r.done()) {
    const uint8_t op = r.fixed<uint8_t>();
    switch (op >> 6) {
      case 1:  // DW_CFA_advance_loc
        if (reached(op & 0x3fu)) return true;
        continue;
      case 2: setRule(row, op & 0x3fu, How::kAtOffset, static_cast<int64_t>(r.uleb()) * cie.data_alignment); continue;
      case 3: restoreRule(row, op & 0x3fu, initial); continue;
      default: break;
    }
    switch (op) {
      case 0x00: break;  // DW_CFA_nop
      case 0x01: {       // DW_CFA_set_loc
        uintptr_t to = 0;
        if (!r.pointer(cie.fde_encoding & ~kPeIndirect, 0, &to)) return false;
        if (to >= target) return true;
        location = to;
        break;
      }
      case 0x02:  // DW_CFA_advance_loc1
        if (reached(r.fixed<uint8_t>())) return true;
        break;
      case 0x03:  // DW_CFA_advance_loc2
        if (reached(r.fixed<uint16_t>())) return true;
        break;
      case 0x04:  // DW_CFA_advance_loc4
        if (reached(r.fixed<uint32_t>())) return true;
        break;
      case 0x05: {                                      // DW_CFA_offset_extended
        const uint64_t reg = r.uleb();
        setRule(row, reg, How::kAtOffset, static_cast<int64_t>(r.uleb()) * cie.data_alignment);
        break;
      }
      case 0x06: restoreRule(row, r.uleb(), initial); break;   // DW_CFA_restore_extended
      case 0x07: setRule(row, r.uleb(), How::kUndefined); break;  // DW_CFA_undefined
      case 0x08: setRule(row, r.uleb(), How::kSame); break;       // DW_CFA_same_value
      case 0x09: {                                                 // DW_CFA_register
        const uint64_t reg = r.uleb();
        r.uleb();
        setRule(row, reg, How::kBeyond);
        break;
      }
      case 0x0a:  // DW_CFA_remember_state (the CFA too, as GCC's epilogues expect)
        if (depth == kMaxRemembered) return false;
        remembered[depth++] = row;
        break;
      case 0x0b:  // DW_CFA_restore_state
        if (depth == 0) return false;
        row = remembered[--depth];
        break;
      case 0x0c:  // DW_CFA_def_cfa
        row.cfa_register = r.uleb();
        row.cfa_offset = static_cast<int64_t>(r.uleb());
        row.cfa_known = true;
        row.cfa_deref = false;
        break;
      // These two change a register-and-offset CFA; after an expression there is none to change.
      case 0x0d:  // DW_CFA_def_cfa_register
        row.cfa_register = r.uleb();
        row.cfa_known = row.cfa_known && !row.cfa_deref;
        break;
      case 0x0e:  // DW_CFA_def_cfa_offset
        row.cfa_offset = static_cast<int64_t>(r.uleb());
        row.cfa_known = row.cfa_known && !row.cfa_deref;
        break;
      case 0x0f: {  // DW_CFA_def_cfa_expression
        const uint64_t length = r.uleb();
        const uint8_t* expression = r.position();
        r.skip(length);
        row.cfa_known = !r.failed() && registerPlusOffset(Reader(expression, r.position()), true,
                                                          &row.cfa_register, &row.cfa_offset);
        row.cfa_deref = true;
        break;
      }
      case 0x10: {  // DW_CFA_expression
        const uint64_t reg = r.uleb();
        const uint64_t length = r.uleb();
        const uint8_t* expression = r.position();
        r.skip(length);
        uint64_t base = 0;
        int64_t k = 0;
        if (!r.failed() && registerPlusOffset(Reader(expression, r.position()), false, &base, &k))
          setRule(row, reg, How::kAtRegisterOffset, k, base);
        else
          setRule(row, reg, How::kBeyond);
        break;
      }
      case 0x16: {  // DW_CFA_val_expression
        const uint64_t reg = r.uleb();
        r.skip(r.uleb());
        setRule(row, reg, How::kBeyond);
        break;
      }
      case 0x11: {  // DW_CFA_offset_extended_sf
        const uint64_t reg = r.uleb();
        setRule(row, reg, How::kAtOffset, r.sleb() * cie.data_alignment);
        break;
      }
      case 0x12:  // DW_CFA_def_cfa_sf
        row.cfa_register = r.uleb();
        row.cfa_offset = r.sleb() * cie.data_alignment;
        row.cfa_known = true;
        row.cfa_deref = false;
        break;
      case 0x13:  // DW_CFA_def_cfa_offset_sf
        row.cfa_offset = r.sleb() * cie.data_alignment;
        row.cfa_known = row.cfa_known && !row.cfa_deref;
        break;
      case 0x14: {  // DW_CFA_val_offset
        const uint64_t reg = r.uleb();
        r.uleb();
        setRule(row, reg, How::kBeyond);
        break;
      }
      case 0x15: {  // DW_CFA_val_offset_sf
        const uint64_t reg = r.uleb();
        r.sleb();
        setRule(row, reg, How::kBeyond);
        break;
      }
      case 0x2e: r.uleb(); break;  // DW_CFA_GNU_args_size
      case 0x2f: {                 // DW_CFA_GNU_negative_offset_extended
        const uint64_t reg = r.uleb();
        setRule(row, reg, How::kAtOffset, -static_cast<int64_t>(r.uleb()) * cie.data_alignment);
        break;
      }
      default: return false;
    }
  }
  return !r.failed();
}

// The FDE whose range holds pc, by binary search in .eh_frame_hdr's sorted table; nullptr when there is none or
// the table is not in the usual encoding.
const uint8_t* findFde(const uint8_t* header, uintptr_t pc) {
  if (header[0] != 1) return nullptr;
  const uint8_t frame_encoding = header[1];
  const uint8_t count_encoding = header[2];
  const uint8_t table_encoding = header[3];
  if (count_encoding == kPeOmit || table_encoding != (kPeDatarel | kPeSdata4)) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(header);
  Reader r(header + 4, header + 4 + 2 * sizeof(uint64_t));
  uintptr_t frame = 0;
  uintptr_t count = 0;
  if (!r.pointer(frame_encoding, base, &frame) || !r.pointer(count_encoding, base, &count) || count == 0)
    return nullptr;
  const uint8_t* table = r.position();
  auto field = [table](size_t i) {
    int32_t value = 0;
    memcpy(&value, table + i * sizeof value, sizeof value);
    return static_cast<intptr_t>(value);
  };
  size_t low = 0;
  size_t high = count;
  while (high - low > 1) {
    const size_t middle = low + (high - low) / 2;
    if (base + static_cast<uintptr_t>(field(2 * middle)) <= pc)
      low = middle;
    else
      high = middle;
  }
  if (base + static_cast<uintptr_t>(field(2 * low)) > pc) return nullptr;
  return header + field(2 * low + 1);
}

// Where a frame's rule finds a saved register: at a multiple of 8 from the CFA, or from this frame's rsp or rbp.
enum Base : uint8_t { kFromCfa, kFromRsp, kFromRbp };

// A frame's rule, as the cache keeps it in one word: CFA = (rbp or rsp) + cfa_offset, or the word there
// (cfa_deref); the return address and the caller's rbp are saved at slots (multiples of 8) from their bases (for
// rbp, slot 0 from the CFA is "not saved, unchanged").
struct FrameRule {
  int32_t cfa_offset = 0;
  int8_t return_address_slot = 0;
  int8_t rbp_slot = 0;
  bool cfa_on_rbp = false;
  bool outermost = false;  // no return address: _start, or the clone a thread began in
  bool cfa_deref = false;
  Base return_address_base = kFromCfa;
  Base rbp_base = kFromCfa;
  bool signal_frame = false;  // the caller's pc is where it was interrupted, not a return address

  bool rbpSaved() const { return rbp_base != kFromCfa || rbp_slot != 0; }
};

constexpr uint64_t kRuleValid = uint64_t{1} << 63;

uint64_t pack(const FrameRule& f) {
  return static_cast<uint32_t>(f.cfa_offset) | uint64_t{static_cast<uint8_t>(f.return_address_slot)} << 32 |
         uint64_t{static_cast<uint8_t>(f.rbp_slot)} << 40 | uint64_t{f.cfa_on_rbp} << 48 |
         uint64_t{f.outermost} << 49 | uint64_t{f.cfa_deref} << 50 | uint64_t{f.return_address_base} << 51 |
         uint64_t{f.rbp_base} << 53 | uint64_t{f.signal_frame} << 55 | kRuleValid;
}

FrameRule unpack(uint64_t word) {
  FrameRule f;
  f.cfa_offset = static_cast<int32_t>(static_cast<uint32_t>(word));
  f.return_address_slot = static_cast<int8_t>(static_cast<uint8_t>(word >> 32));
  f.rbp_slot = static_cast<int8_t>(static_cast<uint8_t>(word >> 40));
  f.cfa_on_rbp = ((word >> 48) & 1) != 0;
  f.outermost = ((word >> 49) & 1) != 0;
  f.cfa_deref = ((word >> 50) & 1) != 0;
  f.return_address_base = static_cast<Base>((word >> 51) & 3);
  f.rbp_base = static_cast<Base>((word >> 53) & 3);
  f.signal_frame = ((word >> 55) & 1) != 0;
  return f;
}

bool slotOf(int64_t offset, int8_t* slot) {
  if (offset % 8 != 0 || offset / 8 < -128 || offset / 8 > 127) return false;
  *slot = static_cast<int8_t>(offset / 8);
  return true;
}

// Where a register saved by `rule` is, for FrameRule: false for a rule it cannot hold.
bool savedAt(const RegisterRule& rule, int8_t* slot, Base* base) {
  if (rule.how == How::kAtOffset) {
    *base = kFromCfa;
    return rule.offset != 0 && slotOf(rule.offset, slot);  // at the CFA itself lies the caller's stack
  }
  if (rule.how == How::kAtRegisterOffset) {
    *base = rule.base == kRbp ? kFromRbp : kFromRsp;
    return slotOf(rule.offset, slot);
  }
  return false;
}

bool toRule(const Row& row, bool signal_frame, FrameRule* f) {
  if (!row.cfa_known || (row.cfa_register != kRsp && row.cfa_register != kRbp)) return false;
  if (row.cfa_offset < INT32_MIN || row.cfa_offset > INT32_MAX) return false;
  f->cfa_offset = static_cast<int32_t>(row.cfa_offset);
  f->cfa_on_rbp = row.cfa_register == kRbp;
  f->cfa_deref = row.cfa_deref;
  f->signal_frame = signal_frame;
  if (row.return_address.how == How::kUndefined)
    f->outermost = true;
  else if (!savedAt(row.return_address, &f->return_address_slot, &f->return_address_base))
    return false;
  return row.rbp.how == How::kSame || savedAt(row.rbp, &f->rbp_slot, &f->rbp_base);
}

// The FDE that covers the instruction before `target`, from the module whose .eh_frame_hdr is `header`: its CIE,
// where its function begins, and its instructions.
struct Fde {
  Cie cie;
  uintptr_t begin = 0;
  uintptr_t range = 0;  // the function's length
  Reader instructions{nullptr, nullptr};
};

bool openFde(const uint8_t* header, uintptr_t target, Fde* fde) {
  const uint8_t* at = findFde(header, target - 1);
  if (at == nullptr) return false;
  uint32_t length = 0;
  memcpy(&length, at, sizeof length);
  if (length == 0 || length == 0xffffffffu) return false;
  Reader r(at + sizeof length, at + sizeof length + length);
  const uint8_t* cie_pointer_at = r.position();
  const uint32_t cie_pointer = r.fixed<uint32_t>();
  if (cie_pointer == 0 || !parseCie(cie_pointer_at - cie_pointer, &fde->cie)) return false;
  const uint8_t encoding = fde->cie.fde_encoding;
  if ((encoding & kPeIndirect) != 0 || !r.pointer(encoding, 0, &fde->begin) ||
      !r.pointer(encoding & kPeFormat, 0, &fde->range) || target - 1 < fde->begin ||
      target - 1 - fde->begin >= fde->range)
    return false;
  if (fde->cie.augmentation_data) r.skip(r.uleb());
  fde->instructions = r;
  return !r.failed();
}

// The rule for the instruction before `target`, from the module whose .eh_frame_hdr is `header`.
bool ruleFor(const uint8_t* header, uintptr_t target, uint64_t* rule) {
  Fde fde;
  if (!openFde(header, target, &fde)) return false;
  const Cie& cie = fde.cie;
  Row initial;
  if (!execute(Reader(cie.instructions, cie.end), cie, fde.begin, UINTPTR_MAX, initial, initial)) return false;
  Row row = initial;
  FrameRule f;
  if (!execute(fde.instructions, cie, fde.begin, target, row, initial) || !toRule(row, cie.signal_frame, &f))
    return false;
  *rule = pack(f);
  return true;
}

// Words already found by pc and module (a frame's rule; the depth of a frame-pointer frame at a call): direct-
// mapped, each entry guarded by a sequence word that is odd while a writer fills it. A module unloaded and another
// mapped at the same place has a different .eh_frame_hdr address or is the same file, so entries are checked
// against the module _dl_find_object finds now.
struct CacheEntry {
  std::atomic<uint32_t> sequence{0};
  std::atomic<uintptr_t> target{0};
  std::atomic<uintptr_t> header{0};
  std::atomic<uint64_t> rule{0};
};

template <unsigned kBits>
struct Cache {
  CacheEntry entries[size_t{1} << kBits];
  CacheEntry& entryFor(uintptr_t target) {
    return entries[(static_cast<uint64_t>(target) * 0x9e3779b97f4a7c15ull) >> (64 - kBits)];
  }
};

Cache<12> g_rules;
// Asleep walks only (recoverFrameBase): the depth below rbp, or ~0 for a frame that is refused.
Cache<8> g_depths;

template <unsigned kBits>
bool cachedWord(Cache<kBits>& cache, uintptr_t target, uintptr_t header, uint64_t* rule) {
  CacheEntry& e = cache.entryFor(target);
  const uint32_t before = e.sequence.load(std::memory_order_acquire);
  if ((before & 1) != 0) return false;
  // Acquire loads keep the second read of the sequence after them (a fence would too, but ThreadSanitizer
  // cannot check fences).
  const uintptr_t t = e.target.load(std::memory_order_acquire);
  const uintptr_t h = e.header.load(std::memory_order_acquire);
  const uint64_t word = e.rule.load(std::memory_order_acquire);
  if (e.sequence.load(std::memory_order_relaxed) != before || t != target || h != header) return false;
  *rule = word;
  return true;
}

// Best effort: an entry being written by another thread (or by the code this handler interrupted) is left alone.
template <unsigned kBits>
void cacheWord(Cache<kBits>& cache, uintptr_t target, uintptr_t header, uint64_t rule) {
  CacheEntry& e = cache.entryFor(target);
  uint32_t sequence = e.sequence.load(std::memory_order_relaxed);
  if ((sequence & 1) != 0 ||
      !e.sequence.compare_exchange_strong(sequence, sequence + 1, std::memory_order_acquire))
    return;
  e.target.store(target, std::memory_order_relaxed);
  e.header.store(header, std::memory_order_relaxed);
  e.rule.store(rule, std::memory_order_relaxed);
  e.sequence.store(sequence + 2, std::memory_order_release);
}

// How far one frame's CFA may lie above the previous one, on a stack whose top is not known: more means the walk
// has left the stack.
constexpr uintptr_t kMaxFrameSize = uintptr_t{1} << 28;

// The address the calling thread's stack ends below, as seen from `sp`, or 0 when it is not known. Every frame of
// the walk lies between sp and there, so a frame whose unwind information points above it is wrong (assembly
// with CFI that lies, a corrupted frame pointer), and reading there could fault inside a signal handler.
//  - A thread made by glibc (its own stack or one given with pthread_attr_setstack) has its thread control
//    block just above its stack: the x86-64 TLS ABI's thread pointer, whose first word points to itself.
//  - The main thread's stack lies above every mapping that holds a control block; ld.so records where it began
//    in __libc_stack_end (the word there, argc, is the highest the walk may read).
//  - A stack above both (a fiber's, say) has no known top.
uintptr_t stackTop(uintptr_t sp) {
  uintptr_t thread_pointer = 0;
  asm("mov %%fs:0, %0" : "=r"(thread_pointer));
  if (sp < thread_pointer) return thread_pointer;
  const auto main_stack_end = reinterpret_cast<uintptr_t>(__libc_stack_end);
  if (sp < main_stack_end) return main_stack_end + sizeof(uintptr_t);
  return 0;
}

// The calling thread's own stack: read in place, bounded by its top.
struct OwnStack {
  bool read(uintptr_t at, uintptr_t* word) const {
    memcpy(word, reinterpret_cast<const void*>(at), sizeof *word);
    return true;
  }
  uintptr_t top(uintptr_t sp) const { return stackTop(sp); }
};

// Another thread's stack, through the caller's reader. Its top is not known (stackTop reads the calling thread's
// thread pointer), so the walk keeps to kMaxFrameSize; a read never faults, so that bound keeps the walk honest,
// not the process safe.
struct OtherStack {
  const StackReader& reader;
  bool read(uintptr_t at, uintptr_t* word) const { return reader.read(reader.context, at, word); }
  uintptr_t top(uintptr_t) const { return 0; }
};

// For a walk that started without rbp: the rbp of a frame-pointer function that no callee saved on the stack, the
// frame's CFA being rbp + 16 and rbp saved just below it (unwind/frame_pointer.h says when this can be shown). `pc`
// and `sp` are the frame's at its call (pc a return address, or just past the system call in the first frame),
// `target` the address its rule was found for; false when it cannot be shown. The depth, which takes decoding the
// function, is kept by call site. Never inlined: its copy of the function's code (16 KiB) stays off the stack of
// walks that do not need it, signal handlers' above all.
template <typename Stack>
__attribute__((noinline)) bool recoverFrameBase(const uint8_t* header, uintptr_t target, uintptr_t pc, uintptr_t sp,
                                                const FrameRule& rule, const Stack& stack, uintptr_t* bp) {
  if (!rule.cfa_on_rbp || rule.cfa_deref || rule.cfa_offset != 16 || rule.rbp_base != kFromCfa ||
      rule.rbp_slot != -2 || rule.return_address_base != kFromCfa || rule.return_address_slot != -1)
    return false;
  auto read = [&stack](uint64_t at, uint64_t* word) {
    uintptr_t value = 0;
    if (!stack.read(at, &value)) return false;
    *word = value;
    return true;
  };
  const auto module = reinterpret_cast<uintptr_t>(header);
  uint64_t depth = 0;
  if (!cachedWord(g_depths, target, module, &depth)) {
    Fde fde;
    if (!openFde(header, target, &fde)) return false;
    uint8_t code[unwind::kMaxFunctionBytes];
    depth = static_cast<uint64_t>(unwind::depthAt(fde.begin, fde.range, pc, read, code));
    cacheWord(g_depths, target, module, depth);
  }
  const uint64_t base = unwind::frameBaseAt(static_cast<int64_t>(depth), sp, read);
  if (base == 0) return false;
  *bp = base;
  return true;
}

// The walk itself; `bp_known` is false when the walk starts without rbp, and a frame whose rule needs rbp before
// one has restored it from the stack ends the walk with 0, unless recoverFrameBase finds it.
template <typename Stack>
size_t walk(const FrameRegisters& start, bool bp_known, const Stack& stack, void** pcs, size_t max) {
  uintptr_t pc = start.pc;
  uintptr_t sp = start.sp;
  uintptr_t bp = start.bp;
  // The first pc is where the thread is; the rest are return addresses, whose call lies just before them.
  uintptr_t target = pc + 1;
  size_t n = 0;
  uintptr_t top = stack.top(sp);
  while (n < max) {
    pcs[n++] = reinterpret_cast<void*>(pc);
    dl_find_object module;
    if (_dl_find_object(reinterpret_cast<void*>(target - 1), &module) != 0 || module.dlfo_eh_frame == nullptr)
      return 0;
    const auto header = reinterpret_cast<uintptr_t>(module.dlfo_eh_frame);
    uint64_t word = 0;
    if (!cachedWord(g_rules, target, header, &word)) {
      if (!ruleFor(static_cast<const uint8_t*>(module.dlfo_eh_frame), target, &word)) return 0;
      cacheWord(g_rules, target, header, word);
    }
    const FrameRule rule = unpack(word);
    if (rule.outermost) return n;
    const bool rbp_saved = rule.rbpSaved();
    const bool needs_rbp =
        rule.cfa_on_rbp || rule.return_address_base == kFromRbp || (rbp_saved && rule.rbp_base == kFromRbp);
    if (needs_rbp && !bp_known) {
      if (!recoverFrameBase(static_cast<const uint8_t*>(module.dlfo_eh_frame), target, pc, sp, rule, stack, &bp))
        return 0;
      bp_known = true;
    }
    // A word of this frame or its caller's: on the stack, at or above where this frame's sp is.
    auto on_stack = [&](uintptr_t at) {
      return at >= sp && (top != 0 ? at <= top - sizeof(uintptr_t) : at - sp <= kMaxFrameSize);
    };
    uintptr_t cfa = (rule.cfa_on_rbp ? bp : sp) + static_cast<uintptr_t>(static_cast<intptr_t>(rule.cfa_offset));
    if (rule.cfa_deref) {
      // The word that holds the CFA is read as the saved registers are, and only where they may be.
      if (!on_stack(cfa)) return top != 0 ? n : 0;
      if (!stack.read(cfa, &cfa)) return 0;
    }
    // A signal frame's CFA is the interrupted rsp, which may lie on another stack (a handler may run on an
    // alternate one): the walk goes on there, bounded by that stack's top. Any other frame's lies above it.
    const bool same_stack = !rule.signal_frame;
    if (same_stack && cfa <= sp) return 0;
    auto saved_at = [&](Base base, int8_t slot) {
      return (base == kFromRsp ? sp : base == kFromRbp ? bp : cfa) + static_cast<uintptr_t>(slot * 8);
    };
    const uintptr_t return_address_at = saved_at(rule.return_address_base, rule.return_address_slot);
    const uintptr_t rbp_at = saved_at(rule.rbp_base, rule.rbp_slot);
    if (top != 0) {
      // The stack ends the walk here: backtrace() would follow the same rule off the stack, so the caller gets
      // the frames so far, the last one being the frame whose unwind information is wrong.
      if ((same_stack && cfa > top) || !on_stack(return_address_at) || (rbp_saved && !on_stack(rbp_at))) return n;
    } else if ((same_stack && cfa - sp > kMaxFrameSize) || !on_stack(return_address_at) ||
               (rbp_saved && !on_stack(rbp_at))) {
      return 0;
    }
    uintptr_t return_address = 0;
    if (!stack.read(return_address_at, &return_address)) return 0;
    if (rbp_saved) {
      if (!stack.read(rbp_at, &bp)) return 0;
      bp_known = true;
    }
    if (return_address == 0) return n;
    pc = return_address;
    sp = cfa;
    target = pc;
    if (rule.signal_frame) {
      target = pc + 1;  // where the thread was interrupted, as for the first frame
      top = stack.top(sp);
    }
  }
  return n;
}

}  // namespace

size_t cfiUnwind(const FrameRegisters& start, void** pcs, size_t max) {
  return walk(start, true, OwnStack{}, pcs, max);
}

size_t cfiUnwindAsleep(uintptr_t pc, uintptr_t sp, const StackReader& reader, void** pcs, size_t max) {
  FrameRegisters start;
  start.pc = pc;
  start.sp = sp;
  return walk(start, false, OtherStack{reader}, pcs, max);
}

#else

size_t cfiUnwind(const FrameRegisters&, void**, size_t) { return 0; }
size_t cfiUnwindAsleep(uintptr_t, uintptr_t, const StackReader&, void**, size_t) { return 0; }

#endif

}  // namespace cppops::agent::sigsafe
