#include "client/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace redcloud::client {
namespace {

constexpr int64_t kRedrawMillis = 100;
constexpr int kMaxBarWidth = 30;
constexpr int kMinBarWidth = 10;

int terminalWidth() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string bar(uint64_t done, uint64_t total, int width) {
  int filled = total == 0 ? width : static_cast<int>(static_cast<double>(done) / total * width);
  filled = std::clamp(filled, 0, width);
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
}

// Cuts `s` to `width` bytes without splitting a UTF-8 sequence.
std::string cutTo(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  size_t n = width;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

std::string formatSize(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.2f} {}", v, kUnits[unit]);
}

std::string formatEta(int64_t seconds) {
  if (seconds < 0) return "--:--";
  int64_t h = seconds / 3600, m = (seconds / 60) % 60, s = seconds % 60;
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{:02}:{:02}", m, s);
}

std::string formatProgressLine(const std::string& label, uint64_t done, uint64_t total,
                               double elapsedSeconds, int width) {
  double rate = elapsedSeconds > 0 ? static_cast<double>(done) / elapsedSeconds : 0;
  int64_t eta = rate > 0 && total >= done ? static_cast<int64_t>((total - done) / rate) : -1;
  int pct = total == 0 ? 100 : static_cast<int>(done * 100 / total);
  std::string stats =
      fmt::format("{} / {}  {:3}%  {}/s  ETA {}", formatSize(done), formatSize(total), pct,
                  formatSize(static_cast<uint64_t>(rate)), formatEta(eta));
  int room = width - static_cast<int>(stats.size()) - 2;
  int barWidth = std::min(kMaxBarWidth, room - 2 - 12);
  std::string right = barWidth >= kMinBarWidth ? bar(done, total, barWidth) + " " + stats : stats;
  int labelRoom = width - static_cast<int>(right.size()) - 2;
  if (labelRoom < 4) return cutTo(right, static_cast<size_t>(std::max(width, 0)));
  return cutTo(label, static_cast<size_t>(labelRoom)) + "  " + right;
}

bool stderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled, const Clock& clock)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      clock_(clock),
      startMillis_(clock.nowMillis()) {}

ProgressBar::~ProgressBar() { abandon(); }

void ProgressBar::update(uint64_t done) {
  done_ = done;
  if (!enabled_ || finished_) return;
  int64_t now = clock_.nowMillis();
  if (lastDrawMillis_ >= 0 && now - lastDrawMillis_ < kRedrawMillis) return;
  lastDrawMillis_ = now;
  draw();
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  draw();
  std::fputs("\n", stderr);
  finished_ = true;
}

void ProgressBar::abandon() {
  if (enabled_ && drawn_ && !finished_) std::fputs("\n", stderr);
  finished_ = true;
}

void ProgressBar::draw() {
  double elapsed = static_cast<double>(clock_.nowMillis() - startMillis_) / 1000.0;
  std::string line = formatProgressLine(label_, done_, total_, elapsed, terminalWidth() - 1);
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace redcloud::client
