// cppops top PID: a live view of a process's threads, busiest first, redrawn every interval; `q` quits. When
// stdout is not a terminal it measures one interval, prints one frame and exits, so it can go in a script.
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include "command.h"
#include "exit_codes.h"
#include "proc/process.h"
#include "stack/dump_source.h"
#include "stack/top_view.h"

namespace cppops::cli {

namespace {

struct TopFlags {
  pid_t pid = 0;
  std::string interval = "1s";
};

volatile sig_atomic_t g_stop = 0;
void onStopSignal(int) { g_stop = 1; }

// Raw keys, the alternate screen and a hidden cursor while it runs; everything put back however it ends
// (q, Ctrl-C, SIGTERM or an error), so the shell is never left unusable.
class Terminal {
 public:
  Terminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      have_saved_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    struct sigaction sa {};
    sa.sa_handler = onStopSignal;  // no SA_RESTART: poll() returns and the loop ends
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);
  }
  ~Terminal() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (have_saved_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  static void size(size_t& columns, size_t& lines) {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      columns = ws.ws_col;
      lines = ws.ws_row;
    }
  }

  // Waits up to `timeout` for a key; true when it was q (or Q), or a stop signal came.
  static bool quitRequested(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!g_stop) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) != 1) continue;
      char c = 0;
      if (::read(STDIN_FILENO, &c, 1) != 1) {
        // The terminal went away (EOF): nobody can press q any more.
        if ((p.revents & POLLHUP) != 0) return true;
        continue;
      }
      if (c == 'q' || c == 'Q') return true;
    }
    return true;
  }

 private:
  termios saved_{};
  bool have_saved_ = false;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// One measured frame: CPU ticks at `since_ticks` (taken at `since`) against now, with a stack dump now.
Result<stack::TopView> frame(const TopFlags& f, const CommonFlags& flags, const std::string& process,
                             const std::map<pid_t, uint64_t>& since_ticks, std::chrono::steady_clock::time_point since,
                             std::map<pid_t, uint64_t>& now_ticks, std::chrono::steady_clock::time_point& now) {
  stack::DumpOptions options;
  options.timeout = std::max(flags.timeout(), options.capture_timeout + std::chrono::milliseconds(2000));
  now_ticks = stack::threadCpuTicks(f.pid);
  now = std::chrono::steady_clock::now();
  auto dump = stack::takeDump(f.pid, options);
  if (!dump) return dump.error();
  const double seconds = std::chrono::duration<double>(now - since).count();
  return stack::buildTopView(*dump, process, since_ticks, now_ticks, seconds,
                             static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
}

int runTop(const TopFlags& f, const CommonFlags& flags) {
  const auto interval = parseDuration(f.interval);
  if (!interval)
    return reportError(makeError(ErrorKind::kUsage, "--interval '" + f.interval +
                                                        "' is not a duration; write it like 1s, 500ms or 2m"),
                       flags);
  auto info = proc::readProcess(f.pid);
  if (!info)
    return reportError(makeError(ErrorKind::kNoProcess, "process " + std::to_string(f.pid) +
                                                            " does not exist; list agent processes with `cppops ps`"),
                       flags);
  unsetenv("DEBUGINFOD_URLS");  // debug info must come from this machine, never stall on the network
  auto ticks = stack::threadCpuTicks(f.pid);
  auto taken = std::chrono::steady_clock::now();

  if (!isatty(STDOUT_FILENO) || flags.json) {
    std::this_thread::sleep_for(*interval);
    std::map<pid_t, uint64_t> now_ticks;
    auto view = frame(f, flags, info->name, ticks, taken, now_ticks, taken);
    if (!view) return reportError(view.error(), flags);
    if (flags.json)
      printJson(stack::topJson(*view));
    else
      fmt::print("{}", stack::renderTop(*view, 0, 0));
    return kExitOk;
  }

  // The terminal is restored (end of this block) before an error is printed.
  std::optional<Error> failure;
  {
    Terminal terminal;
    // The first frame comes quickly (a short measurement), the rest every interval.
    auto wait = std::min(*interval, std::chrono::milliseconds(300));
    while (!Terminal::quitRequested(wait)) {
      std::map<pid_t, uint64_t> now_ticks;
      std::chrono::steady_clock::time_point now;
      auto view = frame(f, flags, info->name, ticks, taken, now_ticks, now);
      if (!view) {
        failure = view.error();
        break;
      }
      size_t columns = 0, lines = 0;
      Terminal::size(columns, lines);
      const size_t rows = lines > 6 ? lines - 6 : 1;
      fmt::print("\x1b[H\x1b[2J{}", stack::renderTop(*view, columns, rows));
      std::fflush(stdout);
      ticks = std::move(now_ticks);
      taken = now;
      wait = *interval;
    }
  }
  return failure ? reportError(*failure, flags) : kExitOk;
}

}  // namespace

void registerTop(CLI::App& app, CommonFlags& flags, int& exit_code) {
  static TopFlags f;
  auto* cmd = app.add_subcommand("top", "Live view of a process's threads: CPU%, state and current frame; q quits");
  addPidArgument(*cmd, f.pid);
  cmd->add_option("--interval", f.interval, "Time between refreshes: 1s, 500ms, 5s (default 1s)");
  addCommonFlags(*cmd, flags);
  cmd->footer(
      "CPU% is of one CPU over the last interval. FRAME is the innermost frame outside the C and C++ runtimes.\n"
      "When stdout is not a terminal (or with --json), one frame is measured over one interval and printed.\n\n"
      "Examples:\n"
      "  cppops top 1234\n"
      "  cppops top 1234 --interval 5s\n"
      "  cppops top 1234 | head -20          # one frame, for a ticket");
  cmd->callback([&] { exit_code = runTop(f, flags); });
}

}  // namespace cppops::cli
