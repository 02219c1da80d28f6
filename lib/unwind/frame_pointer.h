// Where a frame-pointer function keeps rbp, for a walk that starts from a sleeping thread's pc and sp alone.
//
// The kernel reports a sleeping thread's pc and sp (/proc/PID/task/TID/syscall) but none of its other registers.
// A walk from there follows the callees whose CFI finds their frames by rsp (the C library, built without frame
// pointers on most distributions) up to the first function built with frame pointers, whose CFA is rbp + 16 and
// whose rbp no callee saved on the stack. That rbp is still the one its prologue set, and in a function that
// moves rsp nowhere but in its prologue and its epilogues (and around calls that take arguments on the stack),
// rsp at every other call it makes is rbp minus the prologue's depth. fixedFrameDepth() decodes the whole
// function to show that, to read the depth, and to find the very call the thread sleeps below among its
// instructions; the caller then checks that a return address lies above the rbp found (followsCall). A function
// that moves rsp anywhere else (alloca, a variable-length array, a realigned stack), or holds an instruction the
// decoder does not know, is refused, and the walk gives up as it did before.
//
// Shared by the agent's asleep walk (agent/sigsafe, so async-signal-safe: no allocation, no calls but memcpy) and
// the CLI's (lib/stack/remote_unwinder).
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace cppops::unwind {

// Functions larger than this are not decoded: their frames are refused.
inline constexpr size_t kMaxFunctionBytes = 16 * 1024;

// The longest call instruction followsCall recognises: call *disp32(%reg,%reg,scale), whose REX prefix it need
// not see.
inline constexpr size_t kCallBytes = 7;

namespace detail {

inline constexpr unsigned kRsp = 4;
inline constexpr unsigned kRbp = 5;

enum Map : uint8_t { kOneByte, k0F, k0F38, k0F3A };

// One instruction, as far as telling its length and which general registers it writes needs.
struct Instruction {
  size_t length = 0;  // 0: not an instruction this decoder knows
  uint8_t rex = 0;    // REX, or the W/R/X/B bits a VEX or EVEX prefix carries, in REX's layout
  bool vector = false;  // VEX or EVEX
  uint8_t vvvv = 0;     // their extra register operand
  Map map = kOneByte;
  uint8_t opcode = 0;
  bool has_modrm = false;
  uint8_t modrm = 0;
  int64_t immediate = 0;  // sign-extended, for immediates of 1 and 4 bytes

  unsigned mod() const { return modrm >> 6; }
  unsigned extension() const { return (modrm >> 3) & 7; }  // ModRM.reg, when it extends the opcode
  unsigned reg() const { return extension() | ((rex & 4) != 0 ? 8 : 0); }
  unsigned rm() const { return (modrm & 7) | ((rex & 1) != 0 ? 8 : 0); }
  unsigned inOpcode() const { return (opcode & 7) | ((rex & 1) != 0 ? 8 : 0); }  // push %r12, bswap, ...
};

inline bool isLegacyPrefix(uint8_t b) {
  return b == 0x66 || b == 0x67 || b == 0xf2 || b == 0xf3 || b == 0xf0 || b == 0x2e || b == 0x36 || b == 0x3e ||
         b == 0x26 || b == 0x64 || b == 0x65;
}

inline bool imm8In0F(uint8_t op) {
  return (op >= 0x70 && op <= 0x73) || op == 0xa4 || op == 0xac || op == 0xba || op == 0xc2 || op == 0xc4 ||
         op == 0xc5 || op == 0xc6;
}

inline bool modrmIn0F(uint8_t op) {
  return !(op == 0x05 || op == 0x06 || op == 0x07 || op == 0x08 || op == 0x09 || op == 0x0b || op == 0x0e ||
           (op >= 0x30 && op <= 0x37) || op == 0x77 || (op >= 0x80 && op <= 0x8f) || op == 0xa0 || op == 0xa1 ||
           op == 0xa2 || op == 0xa8 || op == 0xa9 || op == 0xaa || (op >= 0xc8 && op <= 0xcf));
}

// The one-byte map: whether `op` takes a ModRM byte and how many immediate bytes follow (z: 2 or 4, by operand
// size). False for what is not an instruction in 64-bit mode, or one this decoder leaves alone (far calls,
// moffs moves, enter).
inline bool oneByteShape(uint8_t op, bool wide, size_t z, bool* modrm, size_t* immediate) {
  *modrm = false;
  *immediate = 0;
  if (op < 0x40) {
    switch (op & 7) {
      case 0: case 1: case 2: case 3: *modrm = true; return true;
      case 4: *immediate = 1; return true;
      case 5: *immediate = z; return true;
      default: return false;  // push/pop of segment registers, daa and the like: invalid; prefixes come earlier
    }
  }
  if ((op >= 0x50 && op <= 0x5f) || (op >= 0x6c && op <= 0x6f) || (op >= 0x90 && op <= 0x99) ||
      (op >= 0x9b && op <= 0x9f) || (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf) || op == 0xc3 ||
      op == 0xc9 || op == 0xcb || op == 0xcc || op == 0xcf || op == 0xd7 || (op >= 0xec && op <= 0xef) ||
      op == 0xf1 || op == 0xf4 || op == 0xf5 || (op >= 0xf8 && op <= 0xfd))
    return true;
  if (op == 0x63 || (op >= 0x84 && op <= 0x8f) || (op >= 0xd0 && op <= 0xd3) || (op >= 0xd8 && op <= 0xdf) ||
      op == 0xf6 || op == 0xf7 || op == 0xfe || op == 0xff) {
    *modrm = true;
    return true;
  }
  if (op == 0x69 || op == 0x81 || op == 0xc7) {
    *modrm = true;
    *immediate = z;
    return true;
  }
  if (op == 0x6b || op == 0x80 || op == 0x83 || op == 0xc0 || op == 0xc1 || op == 0xc6) {
    *modrm = true;
    *immediate = 1;
    return true;
  }
  if (op == 0x68 || op == 0xa9) *immediate = z;
  else if (op == 0xe8 || op == 0xe9) *immediate = 4;
  else if (op == 0x6a || (op >= 0x70 && op <= 0x7f) || op == 0xa8 || (op >= 0xb0 && op <= 0xb7) || op == 0xcd ||
           (op >= 0xe0 && op <= 0xe7) || op == 0xeb)
    *immediate = 1;
  else if (op >= 0xb8 && op <= 0xbf) *immediate = wide ? 8 : z;
  else if (op == 0xc2 || op == 0xca) *immediate = 2;
  else return false;
  return true;
}

// The x86-64 instruction at `code`, at most `size` bytes long.
inline Instruction decode(const uint8_t* code, size_t size) {
  Instruction in;
  size_t i = 0;
  bool operand_16 = false;
  for (; i < size && isLegacyPrefix(code[i]); ++i) operand_16 = operand_16 || code[i] == 0x66;
  if (i >= size) return {};
  size_t immediate = 0;
  const uint8_t lead = code[i];
  if (lead == 0xc5 || lead == 0xc4 || lead == 0x62) {
    // VEX (two or three bytes) or EVEX (four): R, X, B, W and vvvv stored inverted where they are.
    in.vector = true;
    const size_t prefix = lead == 0xc5 ? 2 : lead == 0xc4 ? 3 : 4;
    if (i + prefix >= size) return {};
    const uint8_t p1 = code[i + 1];
    const uint8_t p2 = prefix > 2 ? code[i + 2] : 0;
    uint8_t map = 1;
    if (lead == 0xc5) {
      in.rex = (p1 & 0x80) != 0 ? 0 : 4;
      in.vvvv = static_cast<uint8_t>((~p1 >> 3) & 15);
    } else {
      in.rex = static_cast<uint8_t>(((p1 & 0x80) != 0 ? 0 : 4) | ((p1 & 0x40) != 0 ? 0 : 2) |
                                    ((p1 & 0x20) != 0 ? 0 : 1) | ((p2 & 0x80) != 0 ? 8 : 0));
      in.vvvv = static_cast<uint8_t>((~p2 >> 3) & 15);
      map = lead == 0xc4 ? (p1 & 0x1f) : (p1 & 0x07);
    }
    if (map < 1 || map > 3) return {};
    in.map = static_cast<Map>(map);
    i += prefix;
    in.opcode = code[i++];
    in.has_modrm = true;
    immediate = in.map == k0F3A || (in.map == k0F && imm8In0F(in.opcode)) ? 1 : 0;
  } else {
    if ((lead & 0xf0) == 0x40) in.rex = code[i++];
    if (i >= size) return {};
    const uint8_t op = code[i++];
    in.opcode = op;
    const size_t z = operand_16 ? 2 : 4;
    if (op == 0x0f) {
      if (i >= size) return {};
      const uint8_t second = code[i++];
      if (second == 0x38 || second == 0x3a) {
        if (i >= size) return {};
        in.map = second == 0x38 ? k0F38 : k0F3A;
        in.opcode = code[i++];
        in.has_modrm = true;
        immediate = second == 0x3a ? 1 : 0;
      } else {
        in.map = k0F;
        in.opcode = second;
        in.has_modrm = modrmIn0F(second);
        immediate = second >= 0x80 && second <= 0x8f ? 4 : in.has_modrm && imm8In0F(second) ? 1 : 0;
      }
    } else if ((op & 0xf0) == 0x40 || op == 0x62 || op == 0xc4 || op == 0xc5 ||
               !oneByteShape(op, (in.rex & 8) != 0, z, &in.has_modrm, &immediate)) {
      return {};
    }
    if (in.map == kOneByte && (op == 0xf6 || op == 0xf7) && i < size && ((code[i] >> 3) & 7) <= 1)
      immediate = op == 0xf6 ? 1 : z;  // test has an immediate, the rest of the group none
  }
  if (in.has_modrm) {
    if (i >= size) return {};
    in.modrm = code[i++];
    const unsigned mod = in.mod();
    const unsigned rm = in.modrm & 7;
    if (mod != 3 && rm == 4) {
      if (i >= size) return {};
      if (mod == 0 && (code[i] & 7) == 5) i += 4;  // SIB with no base: a 32-bit displacement
      ++i;
    }
    if (mod == 0 && rm == 5) i += 4;  // rip-relative
    if (mod == 1) i += 1;
    if (mod == 2) i += 4;
  }
  if (i + immediate > size) return {};
  if (immediate == 1) in.immediate = static_cast<int8_t>(code[i]);
  if (immediate == 4) {
    int32_t value = 0;
    memcpy(&value, code + i, sizeof value);
    in.immediate = value;
  }
  in.length = i + immediate;
  return in;
}

// The general registers an instruction writes through its operand fields. Fields that name vector registers,
// or registers only read, are not counted; where it is unclear, a field is counted (the frame is then refused,
// never guessed).
struct Writes {
  bool reg = false;
  bool rm = false;  // as a register (mod 3)
  bool vvvv = false;
  bool in_opcode = false;
};

inline Writes writesOf(const Instruction& in) {
  Writes w;
  const uint8_t op = in.opcode;
  const unsigned ext = in.extension();
  if (in.vector) {
    // The few vector instructions with a general register destination: movmsk, pmovmskb, pextrw, cvt*2si and
    // kmov to one, movd/movq and pextr* from one, and the BMI group (andn, bzhi, pdep, pext, mulx, bextr, the
    // shifts, blsr/blsmsk/blsi through vvvv, rorx).
    if (in.map == k0F) {
      w.reg = op == 0x50 || op == 0xd7 || op == 0xc5 || op == 0x2c || op == 0x2d || op == 0x93;
      w.rm = op == 0x7e;
    } else if (in.map == k0F38) {
      w.reg = w.vvvv = op >= 0xf0 && op <= 0xf7;
    } else {
      w.rm = op >= 0x14 && op <= 0x17;
      w.reg = op == 0xf0;
    }
    return w;
  }
  switch (in.map) {
    case kOneByte:
      if (op < 0x40) {  // add, or, adc, sbb, and, sub, xor: to r/m (0, 1) or to reg (2, 3); cmp: neither
        if ((op & 0xf8) == 0x38) return w;
        w.rm = (op & 7) <= 1;
        w.reg = (op & 7) == 2 || (op & 7) == 3;
        return w;
      }
      w.in_opcode = (op >= 0x91 && op <= 0x97) || (op >= 0xb0 && op <= 0xbf);  // xchg with rax, mov $imm
      w.reg = op == 0x63 || op == 0x69 || op == 0x6b || op == 0x86 || op == 0x87 || op == 0x8a || op == 0x8b ||
              op == 0x8d;
      w.rm = op == 0x86 || op == 0x87 || op == 0x88 || op == 0x89 || op == 0x8c ||
             ((op >= 0x80 && op <= 0x83) && ext != 7) || op == 0xc0 || op == 0xc1 || op == 0xc6 || op == 0xc7 ||
             (op >= 0xd0 && op <= 0xd3) || op == 0xfe || ((op == 0xf6 || op == 0xf7) && (ext == 2 || ext == 3)) ||
             (op == 0xff && ext <= 1);
      return w;
    case k0F:
      w.in_opcode = op >= 0xc8 && op <= 0xcf;  // bswap
      w.reg = (op >= 0x40 && op <= 0x4f) || op == 0x02 || op == 0x03 || op == 0xaf || op == 0xb6 || op == 0xb7 ||
              op == 0xbe || op == 0xbf || op == 0xb8 || op == 0xbc || op == 0xbd || op == 0x50 || op == 0xd7 ||
              op == 0xc5 || op == 0x2c || op == 0x2d || op == 0xc0 || op == 0xc1;
      w.rm = (op >= 0x90 && op <= 0x9f) || op == 0x00 || op == 0x01 || op == 0xa3 || op == 0xa4 || op == 0xa5 ||
             op == 0xab || op == 0xac || op == 0xad || op == 0xb0 || op == 0xb1 || op == 0xb3 || op == 0xba ||
             op == 0xbb || op == 0xc0 || op == 0xc1 || op == 0xc7 || op == 0x7e;
      return w;
    case k0F38:
      w.reg = w.rm = op == 0xf0 || op == 0xf1;  // movbe, crc32
      return w;
    case k0F3A:
      w.rm = op >= 0x14 && op <= 0x17;  // pextrb/w/d/q, extractps
      return w;
  }
  return w;
}

inline bool writes(const Instruction& in, unsigned reg) {
  const Writes w = writesOf(in);
  return (w.reg && in.reg() == reg) || (w.rm && in.mod() == 3 && in.rm() == reg) || (w.vvvv && in.vvvv == reg) ||
         (w.in_opcode && in.inOpcode() == reg);
}

inline bool oneByte(const Instruction& in, uint8_t op) { return !in.vector && in.map == kOneByte && in.opcode == op; }

// What moves rsp by itself (push, pop and their kin), besides calls and returns, which leave it as it was.
inline bool pushesOrPops(const Instruction& in) {
  if (in.vector) return false;
  const uint8_t op = in.opcode;
  if (in.map == k0F) return op == 0xa0 || op == 0xa1 || op == 0xa8 || op == 0xa9;
  return in.map == kOneByte && ((op >= 0x50 && op <= 0x5f) || op == 0x68 || op == 0x6a || op == 0x8f ||
                                op == 0x9c || op == 0x9d || op == 0xc9 || (op == 0xff && in.extension() == 6));
}

inline bool movesRsp(const Instruction& in) { return pushesOrPops(in) || writes(in, kRsp); }
inline bool writesRbp(const Instruction& in) {
  return writes(in, kRbp) || oneByte(in, 0xc9) || (oneByte(in, 0x5d) && (in.rex & 1) == 0);  // leave, pop %rbp
}

enum class Flow { kOn, kCall, kBranch, kEnd };

inline Flow flowOf(const Instruction& in) {
  if (in.vector) return Flow::kOn;
  const uint8_t op = in.opcode;
  if (in.map == k0F) return op >= 0x80 && op <= 0x8f ? Flow::kBranch : op == 0x0b ? Flow::kEnd : Flow::kOn;
  if (in.map != kOneByte) return Flow::kOn;
  if (op == 0xe8 || (op == 0xff && (in.extension() == 2 || in.extension() == 3))) return Flow::kCall;
  if ((op >= 0x70 && op <= 0x7f) || (op >= 0xe0 && op <= 0xe3)) return Flow::kBranch;
  if (op == 0xc3 || op == 0xc2 || op == 0xcb || op == 0xca || op == 0xe9 || op == 0xeb || op == 0xcc ||
      op == 0xf4 || (op == 0xff && (in.extension() == 4 || in.extension() == 5)))
    return Flow::kEnd;  // return, jump (a tail call, or within the function), trap, halt
  return Flow::kOn;
}

inline bool isRexW(const Instruction& in) { return (in.rex & 0x0f) == 0x08; }  // REX.W, no register extension

// mov %rsp,%rbp, in either encoding: the prologue's step that makes rbp the frame's base.
inline bool setsFrame(const Instruction& in) {
  return in.rex == 0x48 && ((oneByte(in, 0x89) && in.modrm == 0xe5) || (oneByte(in, 0x8b) && in.modrm == 0xec));
}

// What add $n,%rsp or sub $n,%rsp adds to rsp (GCC writes sub $128 as add $-128, whose immediate fits a byte);
// 0 for any other instruction.
inline int64_t addedToRsp(const Instruction& in) {
  if (!(oneByte(in, 0x83) || oneByte(in, 0x81)) || !isRexW(in)) return 0;
  return in.modrm == 0xc4 ? in.immediate : in.modrm == 0xec ? -in.immediate : 0;
}

// rsp set from rbp, as epilogues do: lea n(%rbp),%rsp; mov %rbp,%rsp; leave.
inline bool restoresRspFromRbp(const Instruction& in) {
  if (oneByte(in, 0x8d) && isRexW(in) && in.reg() == kRsp && in.rm() == kRbp && (in.mod() == 1 || in.mod() == 2))
    return true;
  if (isRexW(in) && ((oneByte(in, 0x89) && in.modrm == 0xec) || (oneByte(in, 0x8b) && in.modrm == 0xe5))) return true;
  return oneByte(in, 0xc9);
}

// The steps of an epilogue: add $n,%rsp, rsp set from rbp, pops.
inline bool isEpilogueStep(const Instruction& in) {
  if (addedToRsp(in) > 0) return true;
  return restoresRspFromRbp(in) || (!in.vector && in.map == kOneByte && in.opcode >= 0x58 && in.opcode <= 0x5f);
}

inline bool isSyscall(const Instruction& in) { return !in.vector && in.map == k0F && in.opcode == 0x05; }

// Neither moves rsp nor writes rbp, and goes on to the next instruction.
inline bool leavesFrameAlone(const Instruction& in) {
  return flowOf(in) == Flow::kOn && !movesRsp(in) && !writesRbp(in);
}

// A push of a call's argument: of a register, an immediate or memory.
inline bool pushesArgument(const Instruction& in) {
  if (in.vector || in.map != kOneByte) return false;
  return (in.opcode >= 0x50 && in.opcode <= 0x57) || in.opcode == 0x68 || in.opcode == 0x6a ||
         (in.opcode == 0xff && in.extension() == 6);
}

// Bytes of pushed arguments an instruction takes off the stack (a pop, add $n,%rsp); 0 for any other.
inline int64_t argumentsTakenOff(const Instruction& in) {
  if (!in.vector && in.map == kOneByte && in.opcode >= 0x58 && in.opcode <= 0x5f) return 8;
  if (addedToRsp(in) > 0) return addedToRsp(in);
  return 0;
}

}  // namespace detail

namespace detail {

// fixedFrameDepth() under one reading of the prologue's last `sub $n,%rsp`: as part of the frame, or
// (`sub_pads_arguments`) as the start of the first argument area (below): room that GCC makes to keep the stack
// aligned for the arguments it pushes next, taken off with them. The second reading is asked only when the first
// fails. Up to the end of that area the second reads the same code more strictly (straight, with no branch), and
// after it the two read alike; so it succeeds where the first failed only when the area was taken off by pops or
// an add that took off more than was pushed, or when the call precedes the sub. Either way the code from the sub
// to there ran straight and set rsp back to where the prologue's pushes left it, which is where the body keeps it.
inline int64_t frameDepthReading(const uint8_t* function, size_t size, size_t call_end, bool sub_pads_arguments) {
  bool pushed_rbp = false;
  bool frame_set = false;  // mov %rsp,%rbp done
  bool grown = false;      // sub $n,%rsp done: the frame is complete
  bool prologue = true;    // until the first instruction that is neither the prologue's nor scheduled into it
  bool epilogue = false;   // from an epilogue's first step to its return or tail call
  int64_t depth = 0;
  int64_t arguments = 0;   // bytes of the argument area below the frame, not yet taken off
  // The call (or system call) that ends at call_end, made after rbp was set: the depth then (a call made before
  // the prologue ends must see it complete) and the bytes of arguments below it. -1 until it is found.
  int64_t site_depth = -1;
  int64_t site_arguments = 0;
  for (size_t i = 0; i < size;) {
    const Instruction in = decode(function + i, size - i);
    if (in.length == 0) return -1;
    i += in.length;
    const Flow flow = flowOf(in);
    if (i == call_end && (flow == Flow::kCall || isSyscall(in)) && frame_set) {
      site_depth = depth;
      site_arguments = arguments;
    }
    if (prologue) {
      if (!pushed_rbp && oneByte(in, 0x55) && in.rex == 0) {
        pushed_rbp = true;
        continue;
      }
      if (pushed_rbp && !frame_set && setsFrame(in)) {
        frame_set = true;
        continue;
      }
      // Pushes of callee-saved registers, and of %rax, with which clang keeps the stack aligned.
      const bool push = !in.vector && in.map == kOneByte && in.opcode >= 0x50 && in.opcode <= 0x57 &&
                        in.inOpcode() != kRsp && in.inOpcode() != kRbp;
      if (frame_set && !grown && push) {
        depth += 8;
        continue;
      }
      if (frame_set && !grown && addedToRsp(in) < 0) {
        (sub_pads_arguments ? arguments : depth) -= addedToRsp(in);
        grown = true;
        continue;
      }
      if (leavesFrameAlone(in)) continue;  // scheduled in between
      // Shrink-wrapped: the frameless head's branches, returns and tail calls leave rsp where the next path
      // through the head, and so the prologue, finds it.
      if (!pushed_rbp && (flow == Flow::kBranch || flow == Flow::kEnd) && !movesRsp(in) && !writesRbp(in))
        continue;
      if (!frame_set) return -1;
      prologue = false;
    }
    if (epilogue) {
      if (flow == Flow::kEnd) {
        epilogue = false;
        continue;
      }
      // A call or branch from the middle of an epilogue would run with rsp elsewhere.
      if (flow != Flow::kOn || (!isEpilogueStep(in) && (movesRsp(in) || writesRbp(in)))) return -1;
      continue;
    }
    // Argument areas: stack arguments for calls, pushed (after a sub that keeps the stack aligned, maybe: arguments
    // past the sixth) or stored into room a sub made (a structure passed by value), and taken off after the calls by
    // pops or add $n,%rsp, or by an epilogue that sets rsp from rbp. From the first push or sub to the last take-off
    // the code runs straight, with no branch in or out, so rsp is known at every call in it; GCC keeps an area for
    // several calls, storing the next one's arguments where the last one's were. Every call outside the areas sees
    // rsp where the prologue put it. (Stack-clash probes of a large frame, sub and or to (%rsp), read as an area
    // that the epilogue takes off: exact, for the calls up to it.)
    if (arguments > 0) {
      if (const int64_t taken = argumentsTakenOff(in)) {
        if (taken > arguments) return -1;
        arguments -= taken;
      } else if (pushesArgument(in)) {
        arguments += 8;
      } else if (addedToRsp(in) < 0) {
        arguments -= addedToRsp(in);
      } else if (restoresRspFromRbp(in)) {
        arguments = 0;
        epilogue = true;
      } else if (flow != Flow::kCall && !leavesFrameAlone(in)) {
        return -1;
      }
      continue;
    }
    if (pushesArgument(in)) {
      arguments += 8;
      continue;
    }
    if (addedToRsp(in) < 0) {
      arguments -= addedToRsp(in);
      continue;
    }
    if (isEpilogueStep(in)) {
      epilogue = true;
      continue;
    }
    if (movesRsp(in) || writesRbp(in)) return -1;
  }
  return frame_set && site_depth == depth && !epilogue && arguments == 0 ? depth + site_arguments : -1;
}

}  // namespace detail

// How far below rbp the function whose code is `function` (all `size` bytes of it, as its FDE's range gives
// them) keeps rsp at the call (or system call) whose instruction ends at offset `call_end`: the depth of its
// frame-pointer prologue ([endbr64] push %rbp; mov %rsp,%rbp; pushes; [sub $n,%rsp], with other instructions
// scheduled in between), when nothing else in it moves rsp or writes rbp but its epilogues and the areas of stack
// arguments made for calls and taken off after them, plus the area this call is made in. The prologue may come
// after a head that returns early without a frame (GCC's shrink-wrapping: a test, a branch, a return or a tail
// call), which makes no call and moves neither rsp nor rbp. The prologue's last sub may be the padding of the first
// argument area (GCC, for a seventh argument), when the rest of the function says so. -1 otherwise: no such call
// there, an instruction the decoder does not know.
inline int64_t fixedFrameDepth(const uint8_t* function, size_t size, size_t call_end) {
  if (size > kMaxFunctionBytes) return -1;
  const int64_t depth = detail::frameDepthReading(function, size, call_end, false);
  return depth >= 0 ? depth : detail::frameDepthReading(function, size, call_end, true);
}

// Whether the kCallBytes bytes in `before`, which end at a return address, end with a call instruction: direct,
// or through a register, memory or the GOT. Its target is not checked: the function may have been reached
// through a PLT stub, or a tail call from the one called.
inline bool followsCall(const uint8_t* before) {
  const uint8_t* end = before + kCallBytes;
  if (end[-5] == 0xe8) return true;  // call rel32
  // ff /2: the ModRM byte's reg field is 2; its mod and rm say what follows.
  auto call = [](uint8_t modrm, unsigned mod) { return ((modrm >> 3) & 7) == 2 && (modrm >> 6) == mod; };
  auto rm = [](uint8_t modrm) { return modrm & 7u; };
  if (end[-2] == 0xff && (call(end[-1], 3) || (call(end[-1], 0) && rm(end[-1]) != 4 && rm(end[-1]) != 5)))
    return true;  // call *%reg, call *(%reg)
  if (end[-3] == 0xff && ((call(end[-2], 1) && rm(end[-2]) != 4) || (call(end[-2], 0) && rm(end[-2]) == 4)))
    return true;  // call *disp8(%reg), call *(%reg,%reg)
  if (end[-4] == 0xff && call(end[-3], 1) && rm(end[-3]) == 4) return true;  // call *disp8(%reg,%reg)
  if (end[-6] == 0xff && ((call(end[-5], 2) && rm(end[-5]) != 4) || (call(end[-5], 0) && rm(end[-5]) == 5)))
    return true;  // call *disp32(%reg), call *disp32(%rip)
  if (end[-7] == 0xff && call(end[-6], 2) && rm(end[-6]) == 4) return true;  // call *disp32(%reg,%reg)
  return false;
}

// fixedFrameDepth() for the call ending at `pc` of the function at `function` (`size` bytes long), its code read
// with `read(address, &word)`, which fails rather than faults, into `code`, which has room for kMaxFunctionBytes.
// -1 when the function is refused or cannot be read. It depends on the call site alone: callers keep it by pc.
template <typename ReadWord>
int64_t depthAt(uint64_t function, uint64_t size, uint64_t pc, const ReadWord& read, uint8_t* code) {
  if (size < sizeof(uint64_t) || size > kMaxFunctionBytes || pc < function) return -1;
  for (uint64_t at = 0; at < size; at += sizeof(uint64_t)) {
    // The last word ends where the function does, overlapping the one before it.
    const uint64_t from = at + sizeof(uint64_t) <= size ? at : size - sizeof(uint64_t);
    uint64_t word = 0;
    if (!read(function + from, &word)) return -1;
    memcpy(code + from, &word, sizeof word);
  }
  return fixedFrameDepth(code, size, pc - function);
}

// rbp of a sleeping thread's frame whose call was made with rsp `sp`, `depth` below rbp (depthAt): sp + depth,
// kept when it is 16-byte aligned, as the psABI keeps rbp at calls, and the word above it is a return address
// that follows a call (read with `read`, as for depthAt). 0 otherwise.
template <typename ReadWord>
uint64_t frameBaseAt(int64_t depth, uint64_t sp, const ReadWord& read) {
  if (depth < 0) return 0;
  const uint64_t base = sp + static_cast<uint64_t>(depth);
  uint64_t return_address = 0;
  uint64_t before = 0;  // the word that ends at the return address
  if (base % 16 != 0 || !read(base + 8, &return_address) || !read(return_address - sizeof before, &before)) return 0;
  uint8_t bytes[sizeof before];
  memcpy(bytes, &before, sizeof before);
  static_assert(sizeof bytes >= kCallBytes);
  return followsCall(bytes + sizeof bytes - kCallBytes) ? base : 0;
}

}  // namespace cppops::unwind
