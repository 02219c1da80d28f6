// Telling a frame-pointer function's fixed depth from its code, and a call before a return address, on the
// instruction bytes GCC and clang emit (the real compiled forms are walked in test_cfi_unwind.cpp and the stack
// tests).
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <vector>

#include "unwind/frame_pointer.h"

using namespace cppops::unwind;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes join(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

const Bytes kFrame = {0x55, 0x48, 0x89, 0xe5};          // push %rbp; mov %rsp,%rbp
const Bytes kCall = {0xe8, 0x00, 0x00, 0x00, 0x00};     // call rel32
const Bytes kSite = {0xe8, 0x01, 0x02, 0x03, 0x04};     // the call the thread sleeps below
const Bytes kBody = {0x48, 0x89, 0xfb};                 // mov %rdi,%rbx
const Bytes kLeaveRet = {0xc9, 0xc3};                   // leave; ret

// The depth at the call kSite marks (where it ends), of the function made of `parts`.
int64_t depthOf(std::initializer_list<Bytes> parts) {
  Bytes all;
  size_t site = 0;
  for (const Bytes& part : parts) {
    all.insert(all.end(), part.begin(), part.end());
    if (part == kSite) site = all.size();
  }
  return fixedFrameDepth(all.data(), all.size(), site);
}

// kCallBytes ending at a return address, the call's bytes last.
Bytes before(const Bytes& call) {
  Bytes bytes(kCallBytes - call.size(), 0x90);
  bytes.insert(bytes.end(), call.begin(), call.end());
  return bytes;
}

}  // namespace

TEST_CASE("fixedFrameDepth: the frame-pointer prologues compilers emit") {
  CHECK(depthOf({kFrame, kSite, kLeaveRet}) == 0);
  // the other encoding of the mov
  CHECK(depthOf({{0x55, 0x48, 0x8b, 0xec}, kSite, kLeaveRet}) == 0);
  // GCC: endbr64; push %rbp; mov %rsp,%rbp; push %r15..%r12; push %rbx; sub $0x28,%rsp ... and its epilogue:
  // lea -0x28(%rbp),%rsp; pop %rbx; pop %r12..%r15; pop %rbp; ret
  CHECK(depthOf({{0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x41, 0x57, 0x41, 0x56, 0x41, 0x55, 0x41, 0x54,
                       0x53, 0x48, 0x83, 0xec, 0x28},
                      kBody, kSite,
                      {0x48, 0x8d, 0x65, 0xd8, 0x5b, 0x41, 0x5c, 0x41, 0x5d, 0x41, 0x5e, 0x41, 0x5f, 0x5d, 0xc3}}) ==
        5 * 8 + 0x28);
  // clang: push %r14; push %rbx; push %rax (alignment, in place of a sub) ... add $8,%rsp; pop %rbx; pop %r14;
  // pop %rbp; ret
  CHECK(depthOf({kFrame, {0x41, 0x56, 0x53, 0x50}, kSite,
                      {0x48, 0x83, 0xc4, 0x08, 0x5b, 0x41, 0x5e, 0x5d, 0xc3}}) == 3 * 8);
  // a large frame: sub $0x1010,%rsp
  CHECK(depthOf({kFrame, {0x48, 0x81, 0xec, 0x10, 0x10, 0x00, 0x00}, kSite, kLeaveRet}) == 0x1010);
  // GCC -O2 schedules other instructions in between (sleepInFramePointerFrame in test_cfi_unwind.cpp):
  // push %rbp; mov $0x80,%esi; mov %rsp,%rbp; push %r15; push %r14; mov %rdi,%r14; push %r13; push %r12;
  // push %rbx; lea -0x430(%rbp),%rbx; mov %rbx,%rdi; sub $0x418,%rsp
  CHECK(depthOf({{0x55, 0xbe, 0x80, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe5, 0x41, 0x57, 0x41, 0x56, 0x49, 0x89, 0xfe,
                       0x41, 0x55, 0x41, 0x54, 0x53, 0x48, 0x8d, 0x9d, 0xd0, 0xfb, 0xff, 0xff, 0x48, 0x89, 0xdf, 0x48,
                       0x81, 0xec, 0x18, 0x04, 0x00, 0x00},
                      kSite, kLeaveRet}) == 5 * 8 + 0x418);
  // GCC's 128-byte frame: add $-128,%rsp (its immediate fits a byte, where sub $128 would need four), and the
  // epilogue's sub $-128,%rsp
  CHECK(depthOf({kFrame, {0x41, 0x56, 0x53, 0x48, 0x83, 0xc4, 0x80}, kSite,
                 {0x48, 0x83, 0xec, 0x80, 0x5b, 0x41, 0x5e, 0x5d, 0xc3}}) == 16 + 128);
  // no sub at all: the pushes are the frame
  CHECK(depthOf({kFrame, {0x53}, kSite, {0x5b, 0x5d, 0xc3}}) == 8);
  // an early return, then more body with calls, then the last epilogue
  CHECK(depthOf({kFrame, {0x53, 0x48, 0x83, 0xec, 0x18}, {0x48, 0x85, 0xff, 0x74, 0x06},
                      {0x48, 0x83, 0xc4, 0x18, 0x5b, 0x5d, 0xc3}, kSite, kCall, kLeaveRet}) == 0x20);
  // arguments pushed for a call and taken off right after it (GCC, past the sixth): push $0; push $0; call;
  // pop %rax; pop %rdx; and once more with add $16,%rsp, and with an instruction in between that leaves rsp alone
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kSite, {0x6a, 0x00, 0x48, 0x89, 0xc7, 0x6a, 0x00}, kCall,
                      {0x58, 0x5a}, kCall, {0x41, 0x54, 0x53}, kCall, kBody, {0x48, 0x83, 0xc4, 0x10}, kCall, kLeaveRet}) ==
        0x10);
  // GCC's error path: sub $8,%rsp (alignment); push $0; call; pop %rax; movzwl (%rbx),%eax; pop %rdx; and an
  // epilogue that sets rsp from rbp while arguments are still on the stack: lea ... ; push $0; call; lea -0x8(%rbp),%rsp
  CHECK(depthOf({kFrame, {0x53, 0x48, 0x83, 0xec, 0x18}, kSite, {0x48, 0x83, 0xec, 0x08, 0x6a, 0x00}, kCall,
                      {0x58, 0x0f, 0xb7, 0x03, 0x5a}, kCall, {0x6a, 0x00}, kCall,
                      {0x48, 0x8d, 0x65, 0xf8, 0x5b, 0x5d, 0xc3}}) == 0x20);
  // a tail call ends an epilogue as a return does
  CHECK(depthOf({kFrame, kSite, {0x5d, 0xe9, 0x00, 0x00, 0x00, 0x00}}) == 0);
}

TEST_CASE("fixedFrameDepth: argument areas that several calls share, and stack-clash probes, are followed") {
  // an argument pushed for a call and stored again for the next one before it is taken off (GCC, recursing with
  // a seventh argument): sub $8,%rsp; push %r14; call; mov %r14,(%rsp); call; add $16,%rsp
  const Bytes area = {0x48, 0x83, 0xec, 0x08, 0x41, 0x56};
  const Bytes restore = {0x4c, 0x89, 0x34, 0x24};
  const Bytes off = {0x48, 0x83, 0xc4, 0x10};
  CHECK(depthOf({kFrame, {0x53, 0x50}, area, kSite, restore, kCall, off, kCall, {0x58, 0x5b, 0x5d, 0xc3}}) == 0x20);
  CHECK(depthOf({kFrame, {0x53, 0x50}, area, kCall, restore, kSite, off, kCall, {0x58, 0x5b, 0x5d, 0xc3}}) == 0x20);
  // after it, whose take-off showed the prologue's sub to be its padding
  CHECK(depthOf({kFrame, {0x53, 0x50}, area, kCall, restore, kCall, off, kSite, {0x58, 0x5b, 0x5d, 0xc3}}) == 0x10);
  // pushes for the next call while the last one's arguments are still on: each call sees its own depth
  CHECK(depthOf({kFrame, {0x6a, 0x07}, kCall, {0x6a, 0x08}, kSite, {0x48, 0x83, 0xc4, 0x10}, kLeaveRet}) == 0x10);
  // stack-clash probes of a large frame (sub $0x1000,%rsp; orq $0,(%rsp); sub $0x20,%rsp), which the epilogue
  // takes off: exact for every call up to it
  const Bytes probed = {0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, 0x48, 0x83, 0x0c, 0x24, 0x00, 0x48, 0x83, 0xec, 0x20};
  CHECK(depthOf({kFrame, probed, kCall, kSite, kLeaveRet}) == 0x1020);
}

TEST_CASE("fixedFrameDepth: a structure passed by value, stored into room made below the frame for the call") {
  // GCC -O2, fmt's parse_precision: push %rbp; lea 1(%rdi),%rax; mov %rsp,%rbp; push %r13; push %r12; push %rbx;
  // sub $0x38,%rsp ... sub $0x20,%rsp; mov (%r12),%rbx; mov %edx,-0x30(%rbp); movaps %xmm1,(%rsp);
  // movdqa -0x30(%rbp),%xmm2; movaps %xmm2,0x10(%rsp); call get_dynamic_spec; add $0x20,%rsp ... and its epilogue
  const Bytes prologue = {0x55, 0x48, 0x8d, 0x47, 0x01, 0x48, 0x89, 0xe5, 0x41, 0x55, 0x41, 0x54, 0x53, 0x48, 0x83,
                          0xec, 0x38};
  const Bytes room = {0x48, 0x83, 0xec, 0x20, 0x49, 0x8b, 0x1c, 0x24, 0x89, 0x55, 0xd0, 0x0f, 0x29, 0x0c, 0x24,
                      0x66, 0x0f, 0x6f, 0x55, 0xd0, 0x0f, 0x29, 0x54, 0x24, 0x10};
  const Bytes taken_off = {0x48, 0x83, 0xc4, 0x20};
  const Bytes epilogue = {0x48, 0x8d, 0x65, 0xe8, 0x5b, 0x41, 0x5c, 0x41, 0x5d, 0x5d, 0xc3};
  CHECK(depthOf({prologue, room, kSite, taken_off, kCall, epilogue}) == 0x50 + 0x20);
  // and the function's other calls, once the room is taken off
  CHECK(depthOf({prologue, room, kCall, taken_off, kSite, epilogue}) == 0x50);
}

TEST_CASE("fixedFrameDepth: a seventh argument, whose padding GCC makes with the prologue's sub") {
  // GCC -O2 on `syscall(SYS_futex, v, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, t, nullptr, -1)` (abseil's and
  // folly's futex waits): push %rbp; mov %esi,%ecx; mov %rdx,%r8; mov %rdi,%rsi; mov $0x89,%edx; xor %r9d,%r9d;
  // mov $0xca,%edi; xor %eax,%eax; mov %rsp,%rbp; sub $8,%rsp; push $-1; call syscall; mov %rax,%rdx; pop %rax;
  // xor %eax,%eax; pop %rcx; test %rdx,%rdx; js 1f; leave; ret; nopl; 1: call __errno_location; mov (%rax),%eax;
  // leave; neg %eax; ret
  const Bytes prologue = {0x55, 0x89, 0xf1, 0x49, 0x89, 0xd0, 0x48, 0x89, 0xfe, 0xba, 0x89, 0x00, 0x00, 0x00,
                          0x45, 0x31, 0xc9, 0xbf, 0xca, 0x00, 0x00, 0x00, 0x31, 0xc0, 0x48, 0x89, 0xe5, 0x48,
                          0x83, 0xec, 0x08, 0x6a, 0xff};
  const Bytes after = {0x48, 0x89, 0xc2, 0x58, 0x31, 0xc0, 0x59, 0x48, 0x85, 0xd2, 0x78, 0x06, 0xc9, 0xc3, 0x0f, 0x1f,
                       0x40, 0x00};
  const Bytes errno_call = {0xe8, 0x00, 0x00, 0x00, 0x00};
  const Bytes tail = {0x8b, 0x00, 0xc9, 0xf7, 0xd8, 0xc3};
  CHECK(depthOf({prologue, kSite, after, errno_call, tail}) == 16);
  // its other call, after the arguments are off: the two pops took off the push and the prologue's sub, so rsp
  // is back where the prologue's push of rbp left it
  const Bytes function = join({prologue, kCall, after, errno_call, tail});
  CHECK(fixedFrameDepth(function.data(), function.size(), function.size() - tail.size()) == 0);
  // GCC -O1: push %rbp; mov %rsp,%rbp; mov %esi,%ecx; mov %rdx,%r8; sub $8,%rsp; push $-1; ... call syscall;
  // mov %rax,%rdx; add $16,%rsp; ... leave; ret
  CHECK(depthOf({{0x55, 0x48, 0x89, 0xe5, 0x89, 0xf1, 0x49, 0x89, 0xd0, 0x48, 0x83, 0xec, 0x08, 0x6a, 0xff, 0x41,
                  0xb9, 0x00, 0x00, 0x00, 0x00},
                 kSite, {0x48, 0x89, 0xc2, 0x48, 0x83, 0xc4, 0x10, 0xb8, 0x00, 0x00, 0x00, 0x00}, kLeaveRet}) == 16);
  // a later call with pushed arguments, once the padding is off
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x08, 0x6a, 0xff}, kCall, {0x48, 0x83, 0xc4, 0x10, 0x6a, 0xff}, kSite,
                 {0x48, 0x83, 0xc4, 0x08}, kLeaveRet}) == 8);
  // the call before the prologue's sub, which only the second reading sees as complete: push %rbx; syscall; sub
  const Bytes early = join({kFrame, {0x53, 0x0f, 0x05, 0x48, 0x83, 0xec, 0x08}, kCall, kLeaveRet});
  CHECK(fixedFrameDepth(early.data(), early.size(), kFrame.size() + 3) == 8);
}

TEST_CASE("fixedFrameDepth: a shrink-wrapped prologue, after a head that returns early without a frame") {
  // GCC -O2 (-O1 alike) on `if (ready) return 1; pollfd p{...}; int r = poll(&p, 1, timeout); return r + p.revents;`:
  // mov ready(%rip),%edx; test %edx,%edx; je 1f; mov $1,%eax; ret; 1: push %rbp; mov %esi,%edx; mov $1,%esi;
  // mov %rsp,%rbp; sub $0x10,%rsp; mov %edi,-8(%rbp); lea -8(%rbp),%rdi; movl $1,-4(%rbp); call poll;
  // mov %eax,%edx; movswl -2(%rbp),%eax; leave; add %edx,%eax; ret
  CHECK(depthOf({{0x8b, 0x15, 0x00, 0x00, 0x00, 0x00, 0x85, 0xd2, 0x74, 0x06, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3,
                  0x55, 0x89, 0xf2, 0xbe, 0x01, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0x89,
                  0x7d, 0xf8, 0x48, 0x8d, 0x7d, 0xf8, 0xc7, 0x45, 0xfc, 0x01, 0x00, 0x00, 0x00},
                 kSite, {0x89, 0xc2, 0x0f, 0xbf, 0x45, 0xfe, 0xc9, 0x01, 0xd0, 0xc3}}) == 0x10);
  // the head ends in a tail call (jmp rel32), or branches on to the frame with jne rel32
  CHECK(depthOf({{0x48, 0x85, 0xff, 0x74, 0x05, 0xe9, 0x00, 0x00, 0x00, 0x00}, kFrame, {0x53, 0x50}, kSite,
                 {0x58, 0x5b, 0x5d, 0xc3}}) == 16);
  CHECK(depthOf({{0x48, 0x85, 0xff, 0x0f, 0x85, 0x01, 0x00, 0x00, 0x00, 0xc3}, kFrame, kSite, kLeaveRet}) == 0);
  // the early return placed after the body: mov $1,%eax; ret with no epilogue before it
  CHECK(depthOf({{0x48, 0x85, 0xff, 0x75, 0x10}, kFrame, kSite, kLeaveRet, {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3}}) ==
        0);
}

TEST_CASE("fixedFrameDepth: instructions of every length in the body keep the decoder in step") {
  const Bytes body = {
      0x48, 0x8b, 0x05, 0x10, 0x20, 0x30, 0x00,                    // mov 0x302010(%rip),%rax
      0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8,                           // movabs $0x0807060504030201,%rax
      0xf7, 0x45, 0xf0, 0x01, 0x00, 0x00, 0x00,                     // testl $1,-0x10(%rbp)
      0xf6, 0xc1, 0x01,                                             // test $1,%cl
      0xf7, 0xd8,                                                   // neg %eax
      0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00,                           // nopw 0x0(%rax,%rax,1)
      0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,   // cs nopw 0x0(%rax,%rax,1)
      0x80, 0x3f, 0x00,                                             // cmpb $0,(%rdi)
      0xc7, 0x44, 0x24, 0x08, 0x01, 0x00, 0x00, 0x00,               // movl $1,0x8(%rsp)
      0x8b, 0x04, 0x25, 0x00, 0x10, 0x00, 0x00,                     // mov 0x1000,%eax (SIB, no base)
      0xf3, 0x0f, 0x10, 0x45, 0xf0,                                 // movss -0x10(%rbp),%xmm0
      0x66, 0x0f, 0x70, 0xc0, 0x00,                                 // pshufd $0,%xmm0,%xmm0
      0x66, 0x0f, 0x3a, 0x0b, 0xc1, 0x04,                           // roundsd $4,%xmm1,%xmm0
      0x66, 0x0f, 0x38, 0x00, 0xc1,                                 // pshufb %xmm1,%xmm0
      0xc5, 0xf9, 0xef, 0xe4,                                       // vpxor %xmm4,%xmm0,%xmm4 (xmm4, not rsp)
      0xc4, 0xe3, 0x79, 0x0f, 0xc1, 0x08,                           // vpalignr $8,%xmm1,%xmm0,%xmm0
      0x62, 0xf1, 0x7d, 0x48, 0xef, 0xc0,                           // vpxord %zmm0,%zmm0,%zmm0
      0x0f, 0xb6, 0x07,                                             // movzbl (%rdi),%eax
      0x0f, 0x94, 0xc0,                                             // sete %al
      0x48, 0x89, 0xe7,                                             // mov %rsp,%rdi (rsp read, not written)
      0x48, 0x8d, 0x74, 0x24, 0x10,                                 // lea 0x10(%rsp),%rsi
      0x0f, 0x85, 0x00, 0x01, 0x00, 0x00,                           // jne rel32
      0xff, 0x15, 0x00, 0x10, 0x00, 0x00,                           // call *0x1000(%rip)
      0xff, 0xd0,                                                   // call *%rax
  };
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x30}, body, kSite, kLeaveRet}) == 0x30);
}

TEST_CASE("fixedFrameDepth: a function that moves rsp or rbp elsewhere, or that it cannot read, is refused (-1)") {
  // no frame pointer: push %rbx; sub $0x10,%rsp
  CHECK(depthOf({{0x53, 0x48, 0x83, 0xec, 0x10}, kSite, {0x48, 0x83, 0xc4, 0x10, 0x5b, 0xc3}}) == -1);
  // a head before the frame that moves rsp (push %rbx), or calls, or writes rbp (xor %ebp,%ebp)
  CHECK(depthOf({{0x48, 0x85, 0xff, 0x74, 0x08, 0x53}, kFrame, kSite, kLeaveRet}) == -1);
  CHECK(depthOf({{0x48, 0x85, 0xff, 0x74, 0x08}, kCall, kFrame, kSite, kLeaveRet}) == -1);
  CHECK(depthOf({{0x31, 0xed, 0x74, 0x08, 0xc3}, kFrame, kSite, kLeaveRet}) == -1);
  // the thread sleeps in a system call made before rbp was set (the head's, or the prologue's before its mov),
  // or before the prologue's last push: rsp there is not where the rest of the function keeps it
  const Bytes head_syscall = join({{0x0f, 0x05}, kFrame, kCall, kLeaveRet});
  CHECK(fixedFrameDepth(head_syscall.data(), head_syscall.size(), 2) == -1);
  const Bytes unset_syscall = join({{0x55, 0x0f, 0x05, 0x48, 0x89, 0xe5}, kCall, kLeaveRet});
  CHECK(fixedFrameDepth(unset_syscall.data(), unset_syscall.size(), 3) == -1);
  const Bytes early_syscall = join({kFrame, {0x0f, 0x05, 0x53}, kCall, {0x5b, 0x5d, 0xc3}});
  CHECK(fixedFrameDepth(early_syscall.data(), early_syscall.size(), kFrame.size() + 2) == -1);
  // rbp used as a register after push %rbp: mov %rdi,%rbp
  CHECK(depthOf({{0x55, 0x48, 0x89, 0xfd}, kSite, {0x5d, 0xc3}}) == -1);
  // rbp written in the body: mov (%rdi),%rbp
  CHECK(depthOf({kFrame, kSite, {0x48, 0x8b, 0x2f}, kCall, kLeaveRet}) == -1);
  // a realigned stack: and $-32,%rsp
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xe4, 0xe0}, kSite, kLeaveRet}) == -1);
  // alloca after a first call: sub %rax,%rsp
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kSite, {0x48, 0x29, 0xc4}, kCall, kLeaveRet}) == -1);
  // a branch between the room made and the call it is for
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kSite, {0x48, 0x83, 0xec, 0x10, 0x74, 0x02}, kCall,
                      {0x48, 0x83, 0xc4, 0x10}, kLeaveRet}) == -1);
  // pushed arguments taken off beyond what was pushed
  CHECK(depthOf({kFrame, kSite, {0x6a, 0x07}, kCall, {0x48, 0x83, 0xc4, 0x10}, kCall, kLeaveRet}) == -1);
  // an argument area still open where the function returns
  CHECK(depthOf({kFrame, kSite, {0x6a, 0x07}, kCall, {0xc3}}) == -1);
  // an argument pushed, then a branch before the call
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kSite, {0x6a, 0x07, 0x74, 0x02}, kCall, {0x58}, kCall,
                      kLeaveRet}) == -1);
  // a pop followed by a call: not an epilogue
  CHECK(depthOf({kFrame, {0x50}, kSite, {0x59}, kCall, kLeaveRet}) == -1);
  // rsp written by a BMI instruction through vvvv: blsr %rax,%rsp
  CHECK(depthOf({kFrame, kSite, {0xc4, 0xe2, 0xd8, 0xf3, 0xc8}, kCall, kLeaveRet}) == -1);
  // an imm8 of 0x80 or more is sign-extended: that sub is an add
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x80}, kSite, kLeaveRet}) == -1);
  // an instruction this decoder does not know (push %es, invalid in 64-bit mode)
  CHECK(depthOf({kFrame, kSite, {0x06}, kLeaveRet}) == -1);
  // cut short: the bytes end inside an instruction
  CHECK(depthOf({kFrame, kSite, {0x48, 0x89}}) == -1);
  // an epilogue the function's bytes end in, with no return
  CHECK(depthOf({kFrame, kSite, {0x5d}}) == -1);
  // larger than the decoder reads
  Bytes large = join({kFrame, kCall});
  large.resize(kMaxFunctionBytes, 0x90);
  large.insert(large.end(), kLeaveRet.begin(), kLeaveRet.end());
  CHECK(fixedFrameDepth(large.data(), large.size(), kFrame.size() + kCall.size()) == -1);
}

TEST_CASE("fixedFrameDepth: the thread must sleep below a call of the function that rsp was not moved for") {
  // the same function, asked about its calls in turn: the site is where the call instruction ends
  CHECK(depthOf({kFrame, {0x53, 0x50}, kSite, kCall, {0x58, 0x5b, 0x5d, 0xc3}}) == 16);
  CHECK(depthOf({kFrame, {0x53, 0x50}, kCall, kSite, {0x58, 0x5b, 0x5d, 0xc3}}) == 16);
  // a system call made in the function itself (glibc built with frame pointers): syscall
  CHECK(depthOf({kFrame, {0x53, 0x50}, kCall, {0x0f, 0x05}, kLeaveRet}) == -1);  // not marked: no site
  CHECK(depthOf({kFrame, {0x53, 0x50}, kCall, {0x0f, 0x05}, kSite, kLeaveRet}) == 16);
  // one made in the prologue, once its pushes are done: push %rbx; syscall
  const Bytes prologue_syscall = join({kFrame, {0x53, 0x0f, 0x05}, kCall, {0x5b, 0x5d, 0xc3}});
  CHECK(fixedFrameDepth(prologue_syscall.data(), prologue_syscall.size(), kFrame.size() + 3) == 8);
  // a call made with an argument on the stack: rsp is that much further down
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kCall, {0x6a, 0x07}, kSite, {0x58}, kLeaveRet}) == 0x18);
  // one made with room that a sub made and no push (a structure passed by value), taken off by the epilogue
  CHECK(depthOf({kFrame, {0x48, 0x83, 0xec, 0x10}, kCall, {0x48, 0x83, 0xec, 0x10}, kSite, kLeaveRet}) == 0x20);
  // stack-clash probes of a large frame in front of the call: sub $0x1000,%rsp; orq $0,(%rsp); sub $0x20,%rsp
  CHECK(depthOf({kFrame, {0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, 0x48, 0x83, 0x0c, 0x24, 0x00, 0x48, 0x83,
                          0xec, 0x20},
                 kSite, kLeaveRet}) == 0x1020);
  // no call ends where the return address points: just after the call, and inside or after the next instruction
  Bytes function = join({kFrame, kCall, kBody, kLeaveRet});
  CHECK(fixedFrameDepth(function.data(), function.size(), kFrame.size() + kCall.size()) == 0);
  CHECK(fixedFrameDepth(function.data(), function.size(), kFrame.size() + kCall.size() + 1) == -1);
  CHECK(fixedFrameDepth(function.data(), function.size(), kFrame.size() + kCall.size() + kBody.size()) == -1);
}

TEST_CASE("depthAt and frameBaseAt: the depth from the function's code, rbp where a return address lies above") {
  // A function at 0x1000 and a stack at 0x7000, as a thread's memory: the function's prologue is 0x20 deep.
  const Bytes function = join({kFrame, {0x53, 0x48, 0x83, 0xec, 0x18}, kCall, kLeaveRet});
  const uint64_t site = 0x1000 + function.size() - kLeaveRet.size();
  std::map<uint64_t, uint8_t> memory;
  auto put = [&memory](uint64_t at, const Bytes& bytes) {
    for (size_t i = 0; i < bytes.size(); ++i) memory[at + i] = bytes[i];
  };
  put(0x1000, function);
  put(0x1ffd, {0x90, 0x90, 0x90, 0xe8, 0x00, 0x00, 0x00, 0x00});  // the caller's call; its return address: 0x2005
  put(0x7028, {0x05, 0x20, 0, 0, 0, 0, 0, 0});    // at rbp + 8 = 0x7020 + 8: 0x2005
  auto read = [&memory](uint64_t at, uint64_t* word) {
    Bytes bytes(sizeof *word);
    for (size_t i = 0; i < bytes.size(); ++i) {
      auto byte = memory.find(at + i);
      if (byte == memory.end()) return false;
      bytes[i] = byte->second;
    }
    memcpy(word, bytes.data(), sizeof *word);
    return true;
  };
  std::vector<uint8_t> code(kMaxFunctionBytes);
  const int64_t depth = depthAt(0x1000, function.size(), site, read, code.data());
  CHECK(depth == 0x20);
  CHECK(frameBaseAt(depth, 0x7000, read) == 0x7020);
  // Not 16-byte aligned: no rbp the psABI would have
  CHECK(frameBaseAt(depth, 0x7008, read) == 0);
  // No return address above it (nothing readable, or no call before it)
  CHECK(frameBaseAt(depth, 0x7010, read) == 0);
  put(0x7028, {0x03, 0x20, 0, 0, 0, 0, 0, 0});
  CHECK(frameBaseAt(depth, 0x7000, read) == 0);
  // A refused function, a site that is no call, code that cannot be read
  CHECK(frameBaseAt(-1, 0x7000, read) == 0);
  CHECK(depthAt(0x1000, function.size(), site + 1, read, code.data()) == -1);
  CHECK(depthAt(0x1000, function.size() + 0x100, site, read, code.data()) == -1);
}

TEST_CASE("followsCall: a direct or an indirect call") {
  CHECK(followsCall(before({0xe8, 0xfb, 0x00, 0x00, 0x00}).data()));  // call rel32 (to the function, or its PLT stub)
  CHECK(followsCall(before({0xff, 0xd0}).data()));                                // call *%rax
  CHECK(followsCall(before({0x41, 0xff, 0xd4}).data()));                          // call *%r12
  CHECK(followsCall(before({0xff, 0x10}).data()));                                // call *(%rax)
  CHECK(followsCall(before({0xff, 0x50, 0x18}).data()));                          // call *0x18(%rax)
  CHECK(followsCall(before({0xff, 0x54, 0x24, 0x08}).data()));                    // call *0x8(%rsp)
  CHECK(followsCall(before({0xff, 0x90, 0x00, 0x01, 0x00, 0x00}).data()));        // call *0x100(%rax)
  CHECK(followsCall(before({0xff, 0x15, 0x10, 0x20, 0x00, 0x00}).data()));        // call *0x2010(%rip)
  CHECK(followsCall(before({0xff, 0x94, 0xc8, 0x00, 0x01, 0x00, 0x00}).data()));  // call *0x100(%rax,%rcx,8)
}

TEST_CASE("followsCall: bytes that end with no call are not taken for one") {
  CHECK_FALSE(followsCall(before({}).data()));                              // nops
  CHECK_FALSE(followsCall(before({0x48, 0x89, 0xc7}).data()));              // mov %rax,%rdi
  CHECK_FALSE(followsCall(before({0xff, 0xe0}).data()));                    // jmp *%rax (ff /4)
  CHECK_FALSE(followsCall(before({0xff, 0xc0}).data()));                    // inc %eax (ff /0)
  CHECK_FALSE(followsCall(before({0x00, 0x00, 0x00, 0x00, 0x00}).data()));  // a local's zeros
}
