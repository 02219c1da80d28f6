// A stack walker for the hot paths (the capture and profiling handlers, the heap sampler): it follows each
// frame's DWARF call-frame information from .eh_frame, as libgcc's unwinder does, and keeps the rule it found for
// each pc in a small cache shared by all threads, so that a stack it has seen before costs a lookup per frame
// instead of a parse. glibc's backtrace() (libgcc) parses every frame's CIE and FDE again on every call: about
// 250 ns a frame, most of a handler's time.
//
// It covers the frames compilers emit for ordinary code (the frame's base on rsp or rbp, the return address and
// rbp saved at fixed offsets from it), the frames of functions that realign their stack, and glibc's signal
// trampoline, whose CFI finds the interrupted registers in the ucontext on the stack (cfi_unwind.cpp, Row). Anything
// else (another DWARF expression; a pc without an FDE) makes it give up, and the caller asks backtrace() instead,
// so a stack is never cut or guessed. Same rules as the rest of agent/sigsafe/ (see capture.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace cppops::agent::sigsafe {

// The registers a walk starts from: pc where the thread is (not a return address), and its rsp and rbp there.
struct FrameRegisters {
  uintptr_t pc = 0;
  uintptr_t sp = 0;
  uintptr_t bp = 0;
};

// The calling function's own registers, at the point of the call (inlined into the caller, so the pc is the
// caller's and the CFI row for it describes exactly this sp).
__attribute__((always_inline)) inline FrameRegisters currentRegisters() {
  FrameRegisters r;
#if defined(__x86_64__)
  asm volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2" : "=r"(r.pc), "=r"(r.sp), "=r"(r.bp));
#endif
  return r;
}

// Walks the stack from `start`: pcs[0] = start.pc, then each caller's return address, up to the outermost frame
// (_start, or the thread's clone) or `max` pcs. Returns the number of pcs, or 0 when a frame is beyond what this
// walker follows (see above) or on an architecture it does not know: the caller then uses backtrace(). A frame
// whose unwind information points outside the thread's stack ends the walk: it is the last pc returned, and
// nothing above it is read (see stackTop in cfi_unwind.cpp).
// Async-signal-safe: yes. It reads .eh_frame through _dl_find_object (glibc >= 2.35, lock-free, documented
// async-signal-safe), the stack it walks, and its cache, whose entries are written under a per-entry sequence
// word (a reader that meets a write in progress treats the entry as absent). No allocation, no lock.
size_t cfiUnwind(const FrameRegisters& start, void** pcs, size_t max);

// How a walk of another thread's stack reads a word of it: false where it cannot (the thread may wake and its
// stack go away meanwhile, so the reader must fail rather than fault; process_vm_readv does).
struct StackReader {
  bool (*read)(void* context, uintptr_t at, uintptr_t* word);
  void* context;
};

// Walks the stack of another thread of this process, one asleep in the kernel, from the pc and sp the kernel
// reports for it (/proc/self/task/TID/syscall): the same walk as cfiUnwind, its reads through `reader`. Its rbp is
// not known: at the first frame whose rule needs it before a callee has saved it on the stack (code built with
// frame pointers), it is found from that frame's function's code (unwind/frame_pointer.h, read through `reader`
// too), or the walk returns 0, as it does when a read fails. The caller must make sure the thread did not
// run while its stack was read. Async-signal-safe: yes, if the reader is.
size_t cfiUnwindAsleep(uintptr_t pc, uintptr_t sp, const StackReader& reader, void** pcs, size_t max);

}  // namespace cppops::agent::sigsafe
