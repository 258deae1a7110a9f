// A one-line progress bar for long operations, drawn on stderr only when
// stderr is a terminal (scripts and logs get no control characters).
//
// Thread-safety: one thread at a time.
#ifndef FLEETCAST_OBS_PROGRESS_H_
#define FLEETCAST_OBS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "core/byte_format.h"  // FormatBytes, used with the bar

namespace fleetcast {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();

  // Redraws at most ~10 times a second.
  void Update(uint64_t done, uint64_t total);
  // Draws the final state and ends the line.
  void Finish();

 private:
  void Draw(uint64_t done, uint64_t total);

  std::string label_;
  bool enabled_;
  bool finished_ = false;
  uint64_t last_done_ = 0;
  uint64_t last_total_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_OBS_PROGRESS_H_
