#include "client/terminal.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <iostream>

namespace redcloud::client {
namespace {

std::atomic<bool> gInterrupted{false};

void onSigint(int) {
  if (gInterrupted.exchange(true)) _exit(130);
}

void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) off += static_cast<size_t>(n);
  }
}

// Reads a line from `fd` with terminal echo turned off.
Result<std::string> readWithoutEcho(int fd, const std::string& prompt) {
  struct termios saved;
  bool isTty = ::tcgetattr(fd, &saved) == 0;
  if (isTty) {
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  writeAll(fd, prompt);
  std::string line;
  bool ok = readLineFd(fd, line);
  if (isTty) ::tcsetattr(fd, TCSAFLUSH, &saved);
  if (!ok) return ioError("no password given");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

void installInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
  ::sigaction(SIGINT, &sa, nullptr);
}

bool interruptRequested() { return gInterrupted.load(); }
void clearInterrupt() { gInterrupted.store(false); }

bool stdinIsTerminal() { return ::isatty(STDIN_FILENO) == 1; }
bool stdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }

bool readLineFd(int fd, std::string& line) {
  line.clear();
  bool any = false;
  for (;;) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR && !interruptRequested()) continue;
    if (n <= 0) return any;
    any = true;
    if (c == '\n') return true;
    line += c;
  }
}

Result<std::string> promptPassword(const std::string& prompt) {
  std::fflush(stdout);
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (!stdinIsTerminal()) {
      return ioError("no terminal to ask for a password (use --password-stdin)");
    }
    return readWithoutEcho(STDIN_FILENO, prompt);
  }
  auto r = readWithoutEcho(fd, prompt);
  ::close(fd);
  return r;
}

Result<std::string> readPasswordFromStdin() {
  std::string line;
  if (!readLineFd(STDIN_FILENO, line)) return ioError("no password on standard input");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

bool confirm(const std::string& question) {
  std::cout << question << " [y/N] " << std::flush;
  std::string answer;
  if (!readLineFd(STDIN_FILENO, answer)) {
    std::cout << "\n";
    return false;
  }
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
}

}  // namespace redcloud::client
