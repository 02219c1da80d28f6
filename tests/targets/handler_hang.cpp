// A process hung in its own crash handler, a classic incident: thread "crasher" writes through a null pointer,
// and its SIGSEGV handler, on an alternate signal stack as crash handlers run, waits for a mutex the main thread
// holds. Its stack runs from the handler through the signal trampoline to the write that faulted, on the
// thread's own stack. Knows nothing of cppops; run it with the agent preloaded.
// Prints "tid main N" and "tid crasher N", then "ready" once the crasher waits in the handler.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "in_syscall.h"

namespace {

pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
std::atomic<pid_t> g_crasher{0};

extern "C" void onCrash(int, siginfo_t*, void*) {
  pthread_mutex_lock(&g_lock);  // held by main: the handler never returns
}

// Writes through the pointer it is given with its very first instruction: the pc the signal trampoline returns to
// is then the function's first byte, which only a lookup at that pc (not at the byte before, as for a return
// address) finds in this function.
extern "C" void faultAtEntry(int* target);
__asm__(
    ".text\n"
    ".type faultAtEntry, @function\n"
    "faultAtEntry:\n"
    "  .cfi_startproc\n"
    "  movl $1, (%rdi)\n"
    "  ret\n"
    "  .cfi_endproc\n"
    ".size faultAtEntry, .-faultAtEntry\n");

__attribute__((noinline)) void crashSite(int* volatile target) {
  faultAtEntry(target);  // target is null
  __asm__ volatile("");  // no tail call: this frame stays on the stack
}

void* crasher(void*) {
  stack_t alternate{};
  alternate.ss_size = 64 * 1024;
  alternate.ss_sp = mmap(nullptr, alternate.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (alternate.ss_sp == MAP_FAILED || sigaltstack(&alternate, nullptr) != 0) return nullptr;
  cppops_targets::announceTid(g_crasher);
  crashSite(nullptr);
  return nullptr;
}

}  // namespace

int main() {
  struct sigaction action {};
  action.sa_sigaction = onCrash;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, nullptr);
  pthread_mutex_lock(&g_lock);
  pthread_t thread;
  if (pthread_create(&thread, nullptr, crasher, nullptr) != 0) return 1;
  pthread_setname_np(thread, "crasher");
  cppops_targets::waitUntilInSyscall(g_crasher, {SYS_futex});
  std::printf("tid main %d\ntid crasher %d\nready\n", static_cast<int>(getpid()), static_cast<int>(g_crasher.load()));
  std::fflush(stdout);
  for (;;) pause();
}
