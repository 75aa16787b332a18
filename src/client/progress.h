// Transfer progress on stderr: a one-line bar with bytes, rate and ETA.
//
// ProgressBar draws only when enabled (stderr is a terminal and -q was not
// given) and at most ten times a second; finish() ends the line. The
// formatting functions are pure so tests pin the output. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"

namespace redcloud::client {

// "512 B", "1.50 KiB", "3.00 MiB", … (binary units, two decimals; as the original client).
std::string formatSize(uint64_t bytes);

// "00:42", "12:05", "1:02:03"; "--:--" when unknown (negative).
std::string formatEta(int64_t seconds);

// One progress line (no '\r'), at most `width` columns.
std::string formatProgressLine(const std::string& label, uint64_t done, uint64_t total,
                               double elapsedSeconds, int width);

// True when stderr is a terminal.
bool stderrIsTerminal();

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total, bool enabled,
              const Clock& clock = SystemClock::instance());
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Records `done` bytes so far; redraws when due.
  void update(uint64_t done);
  // Draws the final state and ends the line (once).
  void finish();
  // Ends the line without a final draw, e.g. after a failure.
  void abandon();

 private:
  void draw();

  std::string label_;
  uint64_t total_;
  bool enabled_;
  const Clock& clock_;
  int64_t startMillis_;
  int64_t lastDrawMillis_ = -1;
  uint64_t done_ = 0;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace redcloud::client
