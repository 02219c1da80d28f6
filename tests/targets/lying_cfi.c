/* A program with a function whose unwind information lies. lying_frame claims its caller's frame lies 1 MiB above
 * its stack pointer (it is 16 bytes). lying_drap_frame describes itself as GCC describes a function that realigns
 * its stack, its CFA the word at rbp - 8, and points rbp 1 MiB above its stack pointer. One thread, named "lying",
 * runs one of them on a 256 KiB stack of its own, followed by 4 MiB of memory that is not readable, so an unwinder
 * that believes the claim faults.
 *
 * Usage: lying_cfi sleep|spin|malloc [drap]
 *   sleep:  the thread waits in pause() below the lying frame (stack dumps);
 *   spin:   it burns CPU below the lying frame (CPU profiles);
 *   malloc: it allocates and frees below the lying frame (heap profiles);
 *   drap:   the lying frame is lying_drap_frame rather than lying_frame. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Calls work() with 8 bytes of its own on the stack; its CFI says they are 1 MiB. */
void lying_frame(void (*work)(void));
__asm__(
    ".text\n"
    ".globl lying_frame\n"
    ".type lying_frame, @function\n"
    "lying_frame:\n"
    "  .cfi_startproc\n"
    "  sub $8, %rsp\n"
    "  .cfi_def_cfa_offset 0x100000\n"
    "  call *%rdi\n"
    "  add $8, %rsp\n"
    "  .cfi_def_cfa_offset 8\n"
    "  ret\n"
    "  .cfi_endproc\n"
    ".size lying_frame, .-lying_frame\n");

/* Calls work() with rbp 1 MiB above its stack pointer. Its CFI, as GCC's for a realigned frame: CFA = the word at
   rbp - 8 (DW_CFA_def_cfa_expression: DW_OP_breg6 -8, DW_OP_deref), the caller's rbp at rbp (DW_CFA_expression). */
void lying_drap_frame(void (*work)(void));
__asm__(
    ".text\n"
    ".globl lying_drap_frame\n"
    ".type lying_drap_frame, @function\n"
    "lying_drap_frame:\n"
    "  .cfi_startproc\n"
    "  push %rbp\n"
    "  .cfi_def_cfa_offset 16\n"
    "  .cfi_offset %rbp, -16\n"
    "  lea 0x100000(%rsp), %rbp\n"
    "  .cfi_escape 0x0f, 0x03, 0x76, 0x78, 0x06\n"
    "  .cfi_escape 0x10, 0x06, 0x02, 0x76, 0x00\n"
    "  call *%rdi\n"
    "  .cfi_def_cfa %rsp, 16\n"
    "  .cfi_offset %rbp, -16\n"
    "  pop %rbp\n"
    "  .cfi_def_cfa_offset 8\n"
    "  ret\n"
    "  .cfi_endproc\n"
    ".size lying_drap_frame, .-lying_drap_frame\n");

static volatile unsigned long g_spins;

__attribute__((noinline)) static void wait_forever(void) {
  for (;;) pause();
}

__attribute__((noinline)) static void spin_forever(void) {
  for (;;) ++g_spins;
}

__attribute__((noinline)) static void allocate_forever(void) {
  for (size_t n = 0;; ++n) {
    volatile char* block = malloc(64 + (n & 255));
    block[0] = 1;
    free((void*)block);
  }
}

static void (*g_work)(void);
static void (*g_lying)(void (*)(void)) = lying_frame;

static void* run(void* unused) {
  (void)unused;
  g_lying(g_work);
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "sleep") == 0) {
    g_work = wait_forever;
  } else if (strcmp(mode, "spin") == 0) {
    g_work = spin_forever;
  } else if (strcmp(mode, "malloc") == 0) {
    g_work = allocate_forever;
  } else {
    fprintf(stderr, "usage: lying_cfi sleep|spin|malloc [drap]\n");
    return 2;
  }
  if (argc > 2 && strcmp(argv[2], "drap") == 0) g_lying = lying_drap_frame;
  const size_t stack_size = 256 << 10;
  const size_t reserved = stack_size + (4 << 20);
  char* stack = mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED || mprotect(stack, stack_size, PROT_READ | PROT_WRITE) != 0) {
    perror("lying_cfi: stack");
    return 1;
  }
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, stack_size);
  if (pthread_create(&thread, &attr, run, NULL) != 0) {
    fprintf(stderr, "lying_cfi: pthread_create failed\n");
    return 1;
  }
  pthread_setname_np(thread, "lying");
  printf("ready\n");
  fflush(stdout);
  pthread_join(thread, NULL);
  return 0;
}
