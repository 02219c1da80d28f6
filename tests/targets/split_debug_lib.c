/* A library whose DWARF lives in a separate, zlib-compressed debug file found through .gnu_debuglink, the way
   distributions ship debug symbols: the case cppops' debug-info cache exists for. */
#include <unistd.h>

/* Not exported: once the library's symbol table is stripped too, nothing names its frame. */
static __attribute__((noinline)) void split_debug_park(void) {
  for (;;) pause();
}

void split_debug_wait(void) {
  split_debug_park(); /* the caller's frame the tests look for */
  __asm__ volatile(""); /* no tail call: this frame stays on the stack */
}
