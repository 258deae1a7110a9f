#include "obs/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace fleetcast {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (!finished_ && enabled_ && last_total_ > 0) std::fputs("\n", stderr);
}

void ProgressBar::Update(uint64_t done, uint64_t total) {
  last_done_ = done;
  last_total_ = total;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw(done, total);
}

void ProgressBar::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  Draw(last_done_, last_total_);
  std::fputs("\n", stderr);
}

void ProgressBar::Draw(uint64_t done, uint64_t total) {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  double fraction = total == 0 ? 1.0 : static_cast<double>(done) / total;
  if (fraction > 1) fraction = 1;
  int filled = static_cast<int>(fraction * kWidth);
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  fmt::print(stderr, "\r{} [{}] {:5.1f}%  {} / {}  {}/s\033[K", label_, bar,
             fraction * 100, FormatBytes(done), FormatBytes(total),
             FormatBytes(static_cast<uint64_t>(rate)));
  std::fflush(stderr);
}

}  // namespace fleetcast
