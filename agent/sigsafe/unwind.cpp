#include "unwind.h"

#include <execinfo.h>
#include <stdint.h>
#include <ucontext.h>

#include "cfi_unwind.h"

namespace cppops::agent::sigsafe {

namespace {

FrameRegisters interruptedRegisters(const void* ucontext) {
  const auto* uc = static_cast<const ucontext_t*>(ucontext);
  FrameRegisters r;
#if defined(__x86_64__)
  r.pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  r.sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  r.bp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
#elif defined(__aarch64__)
  r.pc = static_cast<uintptr_t>(uc->uc_mcontext.pc);
  r.sp = static_cast<uintptr_t>(uc->uc_mcontext.sp);
#else
#error "cppops: add the interrupted-pc register of this architecture"
#endif
  return r;
}

}  // namespace

size_t unwindInterrupted(void** pcs, size_t max, const void* ucontext) {
  if (max == 0) return 0;
  // Starting from the interrupted registers, the walk never sees the handler or the signal trampoline.
  const FrameRegisters interrupted = interruptedRegisters(ucontext);
#if !defined(__SANITIZE_THREAD__)
  // (ThreadSanitizer runs handlers late, at a point of its choosing, where these registers describe a stack the
  // thread has since left; only the walk from the handler's own frame is sound there.)
  if (const size_t walked = cfiUnwind(interrupted, pcs, max); walked != 0) return walked;
#endif
  // What it does not follow goes to backtrace(3), which steps out of the handler through the trampoline.
  // backtrace(3) is not on the signal-safety(7) list; it is safe here because warmUp() already made glibc load
  // libgcc_s, after which _Unwind_Backtrace only reads .eh_frame through _dl_find_object (glibc >= 2.35,
  // lock-free) and writes into our buffer: no malloc, no lock. The system libunwind is deliberately not used
  // (it deadlocks against ld.so's lock and allocates on first use).
  const int n = backtrace(pcs, static_cast<int>(max));
  const uintptr_t pc = interrupted.pc;
  int first = 0;
  while (first < n && reinterpret_cast<uintptr_t>(pcs[first]) != pc) ++first;
  if (first == n) {
    pcs[0] = reinterpret_cast<void*>(pc);
    return 1;
  }
  for (int i = first; i < n; ++i) pcs[i - first] = pcs[i];
  return static_cast<size_t>(n - first);
}

void chainSignal(const struct sigaction& previous, int signo, siginfo_t* info, void* ucontext) {
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) previous.sa_sigaction(signo, info, ucontext);
    return;
  }
  if (previous.sa_handler == SIG_IGN) return;
  if (previous.sa_handler == SIG_DFL) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(signo, &dfl, nullptr);
    raise(signo);
    return;
  }
  previous.sa_handler(signo);
}

}  // namespace cppops::agent::sigsafe
