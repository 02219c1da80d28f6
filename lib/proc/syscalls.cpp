#include "proc/syscalls.h"

#include <linux/futex.h>
#include <sys/syscall.h>

#include <climits>
#include <iterator>

namespace cppops::proc {
namespace {

// Indexed by number. Since Linux 5.1 new syscalls get one number on every architecture, starting at 424, which
// leaves 335..423 unused on x86_64.
constexpr std::string_view kNames[] = {
    /*   0 */ "read", "write", "open", "close", "stat", "fstat", "lstat", "poll",
    /*   8 */ "lseek", "mmap", "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    /*  16 */ "ioctl", "pread64", "pwrite64", "readv", "writev", "access", "pipe", "select",
    /*  24 */ "sched_yield", "mremap", "msync", "mincore", "madvise", "shmget", "shmat", "shmctl",
    /*  32 */ "dup", "dup2", "pause", "nanosleep", "getitimer", "alarm", "setitimer", "getpid",
    /*  40 */ "sendfile", "socket", "connect", "accept", "sendto", "recvfrom", "sendmsg", "recvmsg",
    /*  48 */ "shutdown", "bind", "listen", "getsockname", "getpeername", "socketpair", "setsockopt",
    /*  55 */ "getsockopt", "clone", "fork", "vfork", "execve", "exit", "wait4", "kill",
    /*  63 */ "uname", "semget", "semop", "semctl", "shmdt", "msgget", "msgsnd", "msgrcv",
    /*  71 */ "msgctl", "fcntl", "flock", "fsync", "fdatasync", "truncate", "ftruncate", "getdents",
    /*  79 */ "getcwd", "chdir", "fchdir", "rename", "mkdir", "rmdir", "creat", "link",
    /*  87 */ "unlink", "symlink", "readlink", "chmod", "fchmod", "chown", "fchown", "lchown",
    /*  95 */ "umask", "gettimeofday", "getrlimit", "getrusage", "sysinfo", "times", "ptrace", "getuid",
    /* 103 */ "syslog", "getgid", "setuid", "setgid", "geteuid", "getegid", "setpgid", "getppid",
    /* 111 */ "getpgrp", "setsid", "setreuid", "setregid", "getgroups", "setgroups", "setresuid", "getresuid",
    /* 119 */ "setresgid", "getresgid", "getpgid", "setfsuid", "setfsgid", "getsid", "capget", "capset",
    /* 127 */ "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "rt_sigsuspend", "sigaltstack", "utime",
    /* 133 */ "mknod", "uselib", "personality", "ustat", "statfs", "fstatfs", "sysfs", "getpriority",
    /* 141 */ "setpriority", "sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
    /* 146 */ "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "mlock", "munlock",
    /* 151 */ "mlockall", "munlockall", "vhangup", "modify_ldt", "pivot_root", "_sysctl", "prctl",
    /* 158 */ "arch_prctl", "adjtimex", "setrlimit", "chroot", "sync", "acct", "settimeofday", "mount",
    /* 166 */ "umount2", "swapon", "swapoff", "reboot", "sethostname", "setdomainname", "iopl", "ioperm",
    /* 174 */ "create_module", "init_module", "delete_module", "get_kernel_syms", "query_module", "quotactl",
    /* 180 */ "nfsservctl", "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security", "gettid", "readahead",
    /* 188 */ "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
    /* 195 */ "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "tkill", "time",
    /* 202 */ "futex", "sched_setaffinity", "sched_getaffinity", "set_thread_area", "io_setup", "io_destroy",
    /* 208 */ "io_getevents", "io_submit", "io_cancel", "get_thread_area", "lookup_dcookie", "epoll_create",
    /* 214 */ "epoll_ctl_old", "epoll_wait_old", "remap_file_pages", "getdents64", "set_tid_address",
    /* 219 */ "restart_syscall", "semtimedop", "fadvise64", "timer_create", "timer_settime", "timer_gettime",
    /* 225 */ "timer_getoverrun", "timer_delete", "clock_settime", "clock_gettime", "clock_getres",
    /* 230 */ "clock_nanosleep", "exit_group", "epoll_wait", "epoll_ctl", "tgkill", "utimes", "vserver",
    /* 237 */ "mbind", "set_mempolicy", "get_mempolicy", "mq_open", "mq_unlink", "mq_timedsend",
    /* 243 */ "mq_timedreceive", "mq_notify", "mq_getsetattr", "kexec_load", "waitid", "add_key",
    /* 249 */ "request_key", "keyctl", "ioprio_set", "ioprio_get", "inotify_init", "inotify_add_watch",
    /* 255 */ "inotify_rm_watch", "migrate_pages", "openat", "mkdirat", "mknodat", "fchownat", "futimesat",
    /* 262 */ "newfstatat", "unlinkat", "renameat", "linkat", "symlinkat", "readlinkat", "fchmodat",
    /* 269 */ "faccessat", "pselect6", "ppoll", "unshare", "set_robust_list", "get_robust_list", "splice",
    /* 276 */ "tee", "sync_file_range", "vmsplice", "move_pages", "utimensat", "epoll_pwait", "signalfd",
    /* 283 */ "timerfd_create", "eventfd", "fallocate", "timerfd_settime", "timerfd_gettime", "accept4",
    /* 289 */ "signalfd4", "eventfd2", "epoll_create1", "dup3", "pipe2", "inotify_init1", "preadv", "pwritev",
    /* 297 */ "rt_tgsigqueueinfo", "perf_event_open", "recvmmsg", "fanotify_init", "fanotify_mark",
    /* 302 */ "prlimit64", "name_to_handle_at", "open_by_handle_at", "clock_adjtime", "syncfs", "sendmmsg",
    /* 308 */ "setns", "getcpu", "process_vm_readv", "process_vm_writev", "kcmp", "finit_module",
    /* 314 */ "sched_setattr", "sched_getattr", "renameat2", "seccomp", "getrandom", "memfd_create",
    /* 320 */ "kexec_file_load", "bpf", "execveat", "userfaultfd", "membarrier", "mlock2", "copy_file_range",
    /* 327 */ "preadv2", "pwritev2", "pkey_mprotect", "pkey_alloc", "pkey_free", "statx", "io_pgetevents",
    /* 334 */ "rseq",
};
constexpr long kHighBase = 424;
constexpr std::string_view kHighNames[] = {
    /* 424 */ "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register", "open_tree",
    /* 429 */ "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "pidfd_open", "clone3", "close_range",
    /* 437 */ "openat2", "pidfd_getfd", "faccessat2", "process_madvise", "epoll_pwait2", "mount_setattr",
    /* 443 */ "quotactl_fd", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    /* 447 */ "memfd_secret", "process_mrelease", "futex_waitv", "set_mempolicy_home_node", "cachestat",
    /* 452 */ "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue", "statmount",
    /* 458 */ "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "mseal",
    /* 463 */ "setxattrat", "getxattrat", "listxattrat", "removexattrat", "open_tree_attr", "file_getattr",
    /* 469 */ "file_setattr",
};
static_assert(std::size(kNames) == 335);
static_assert(std::size(kHighNames) == 470 - kHighBase);

// Newer than the libc headers we build against.
constexpr long kSysFutexWake = 454;
constexpr long kSysFutexWait = 455;
constexpr long kSysFutexRequeue = 456;
constexpr uint64_t kFutex2Private = 128;

}  // namespace

std::string_view syscallName(long nr) {
  if (nr >= 0 && nr < static_cast<long>(std::size(kNames))) return kNames[nr];
  if (nr >= kHighBase && nr < kHighBase + static_cast<long>(std::size(kHighNames))) return kHighNames[nr - kHighBase];
  return {};
}

SyscallClass classifySyscall(long nr) {
  if (nr < 0) return SyscallClass::kNone;
  switch (nr) {
    case SYS_futex:
    case SYS_futex_waitv:
    case kSysFutexWake:
    case kSysFutexWait:
    case kSysFutexRequeue:
      return SyscallClass::kFutex;
    case SYS_read:
    case SYS_readv:
    case SYS_pread64:
    case SYS_preadv:
    case SYS_preadv2:
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_recvmmsg:
      return SyscallClass::kRead;
    case SYS_write:
    case SYS_writev:
    case SYS_pwrite64:
    case SYS_pwritev:
    case SYS_pwritev2:
    case SYS_sendto:
    case SYS_sendmsg:
    case SYS_sendmmsg:
    case SYS_sendfile:
      return SyscallClass::kWrite;
    case SYS_poll:
    case SYS_ppoll:
    case SYS_select:
    case SYS_pselect6:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
      return SyscallClass::kPoll;
    case SYS_accept:
    case SYS_accept4:
      return SyscallClass::kAccept;
    case SYS_connect:
      return SyscallClass::kConnect;
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_pause:
      return SyscallClass::kSleep;
    case SYS_wait4:
    case SYS_waitid:
      return SyscallClass::kWait;
    case SYS_rt_sigsuspend:
    case SYS_rt_sigtimedwait:
      return SyscallClass::kSignalWait;
    default:
      return SyscallClass::kOther;
  }
}

int syscallFdArgument(long nr, const std::array<uint64_t, 6>& args) {
  switch (nr) {
    case SYS_read:
    case SYS_readv:
    case SYS_pread64:
    case SYS_preadv:
    case SYS_preadv2:
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_recvmmsg:
    case SYS_write:
    case SYS_writev:
    case SYS_pwrite64:
    case SYS_pwritev:
    case SYS_pwritev2:
    case SYS_sendto:
    case SYS_sendmsg:
    case SYS_sendmmsg:
    case SYS_sendfile:  // out_fd
    case SYS_splice:    // fd_in
    case SYS_tee:       // fd_in
    case SYS_vmsplice:
    case SYS_copy_file_range:  // fd_in
    case SYS_accept:
    case SYS_accept4:
    case SYS_connect:
    case SYS_shutdown:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
    case SYS_fcntl:
    case SYS_flock:
    case SYS_ioctl:
    case SYS_fsync:
    case SYS_fdatasync:
    case SYS_sync_file_range:
    case SYS_fallocate:
    case SYS_ftruncate:
    case SYS_getdents64:
    case SYS_io_uring_enter:
      break;
    default:
      return -1;
  }
  // The kernel takes these as unsigned int and ignores the upper half of the register.
  auto fd = static_cast<uint32_t>(args[0]);
  return fd > INT_MAX ? -1 : static_cast<int>(fd);
}

std::optional<FutexCall> decodeFutex(const SyscallInfo& info) {
  if (info.kind != SyscallInfo::Kind::kInSyscall) return std::nullopt;
  FutexCall call;
  call.uaddr = info.args[0];
  if (info.number == SYS_futex) {
    auto op = static_cast<int>(info.args[1]);
    call.op = op & FUTEX_CMD_MASK;
    call.private_flag = (op & FUTEX_PRIVATE_FLAG) != 0;
  } else if (info.number == kSysFutexWait) {
    // futex_wait(uaddr, val, mask, flags, timeout, clockid) is FUTEX_WAIT_BITSET with futex2 flags.
    call.op = FUTEX_WAIT_BITSET;
    call.private_flag = (info.args[3] & kFutex2Private) != 0;
  } else {
    return std::nullopt;
  }
  switch (call.op) {
    case FUTEX_LOCK_PI:
    case FUTEX_LOCK_PI2:
    case FUTEX_UNLOCK_PI:
    case FUTEX_TRYLOCK_PI:
    case FUTEX_WAIT_REQUEUE_PI:
    case FUTEX_CMP_REQUEUE_PI:
      call.pi = true;
      break;
    default:
      break;
  }
  return call;
}

}  // namespace cppops::proc
