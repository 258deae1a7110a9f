#include "cli/dataset_gen.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "store/posix_file.h"

namespace fleetcast::cli {
namespace {

namespace fs = std::filesystem;

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t Next() {
    uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  void Fill(uint8_t* out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t v = Next();
      std::memcpy(out + i, &v, 8);
    }
    if (i < n) {
      uint64_t v = Next();
      std::memcpy(out + i, &v, n - i);
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

Status WriteRandomFile(const std::string& path, uint64_t size, Rng& rng) {
  auto fd = Open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd) return std::unexpected(fd.error());
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 4u << 20));
  uint64_t left = size;
  while (left > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    rng.Fill(buf.data(), n);
    if (auto st = WriteAll(fd->get(), {buf.data(), n}, path); !st) return st;
    left -= n;
  }
  return {};
}

}  // namespace

Status GenerateDataset(const std::string& dir, const DatasetSpec& spec) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    return MakeError(ErrorCode::kAlreadyExists, dir, "already exists");
  }
  if (auto st = MakeDirectories(dir); !st) return st;
  Rng rng(spec.seed);
  const uint32_t files = std::max<uint32_t>(spec.files, 1);
  // Log-uniform weights over three orders of magnitude.
  std::vector<double> weights(files);
  double sum = 0;
  for (auto& w : weights) {
    w = std::pow(10.0, 3.0 * rng.Uniform());
    sum += w;
  }
  uint64_t assigned = 0;
  const uint32_t subdirs = std::max<uint32_t>(1, files / 8);
  std::string smallest_file;
  uint64_t smallest_size = UINT64_MAX;
  for (uint32_t i = 0; i < files; ++i) {
    uint64_t size =
        i + 1 == files
            ? spec.total_bytes - assigned
            : static_cast<uint64_t>(static_cast<double>(spec.total_bytes) *
                                    weights[i] / sum);
    assigned += size;
    std::string sub = fmt::format("{}/part-{:02}", dir, i % subdirs);
    if (auto st = MakeDirectories(sub); !st) return st;
    std::string path = fmt::format("{}/file-{:04}.bin", sub, i);
    if (auto st = WriteRandomFile(path, size, rng); !st) return st;
    if (size < smallest_size) {
      smallest_size = size;
      smallest_file = path;
    }
  }
  // The shapes every real tree has.
  if (auto st = MakeDirectories(dir + "/empty-dir"); !st) return st;
  if (auto st = WriteRandomFile(dir + "/empty-file", 0, rng); !st) return st;
  std::error_code copy_ec;
  fs::create_directories(dir + "/meta", copy_ec);
  fs::copy_file(smallest_file, dir + "/meta/duplicate-of-smallest.bin",
                copy_ec);
  if (copy_ec) return SysError(copy_ec.value(), dir + "/meta", "copy");
  fs::create_symlink("../part-00/file-0000.bin", dir + "/meta/latest", copy_ec);
  if (copy_ec)
    return SysError(copy_ec.value(), dir + "/meta/latest", "symlink");
  return {};
}

Result<MutationSummary> MutateDataset(const std::string& dir, double fraction,
                                      uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<uint64_t, std::string>> files;
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return SysError(ec.value(), dir, "walk");
    if (it->is_regular_file() && !it->is_symlink()) {
      uint64_t size = it->file_size();
      files.push_back({size, it->path().string()});
      total += size;
    }
  }
  std::sort(files.rbegin(), files.rend());
  MutationSummary summary;
  const uint64_t budget = static_cast<uint64_t>(fraction * total);
  // A few contiguous edits and one 100-byte insert in each of the three
  // largest files, until the budget is spent: the shape of a typical model
  // or index update (edits cost about one chunk each, so they are few).
  constexpr uint64_t kEditsPerFile = 4;
  const uint64_t edit_size =
      std::clamp<uint64_t>(budget / (3 * kEditsPerFile), 4096, 1u << 20);
  constexpr uint64_t kInsert = 100;
  uint64_t spent = 0;
  for (size_t f = 0; f < files.size() && f < 3 && spent < budget; ++f) {
    const auto& [size, path] = files[f];
    if (size < 4 * edit_size) continue;
    const uint64_t edits = kEditsPerFile;
    auto fd = Open(path, O_RDWR);
    if (!fd) return std::unexpected(fd.error());
    std::vector<uint8_t> buf(edit_size);
    for (uint64_t e = 0; e < edits && spent < budget; ++e) {
      uint64_t at = rng.Below(size - edit_size);
      rng.Fill(buf.data(), buf.size());
      if (auto st = PwriteAll(fd->get(), buf, at, path); !st) {
        return std::unexpected(st.error());
      }
      summary.bytes_edited += edit_size;
      spent += edit_size;
    }
    fd->Reset();
    // Insert in the middle: rewrite the tail shifted.
    auto data = ReadWholeFile(path);
    if (!data) return std::unexpected(data.error());
    std::vector<uint8_t> insert(kInsert);
    rng.Fill(insert.data(), insert.size());
    data->insert(data->begin() + static_cast<long>(data->size() / 2),
                 insert.begin(), insert.end());
    if (auto st = WriteFileAtomic(path, *data); !st) {
      return std::unexpected(st.error());
    }
    summary.bytes_inserted += kInsert;
    ++summary.files_changed;
  }
  // One new file, one removed, one renamed (the smallest non-empty ones:
  // removing or renaming an empty file would move no byte).
  uint64_t added = std::max<uint64_t>(budget / 2, 1024);
  if (auto st = WriteRandomFile(dir + "/added-in-update.bin", added, rng);
      !st) {
    return std::unexpected(st.error());
  }
  summary.bytes_added = added;
  std::erase_if(files, [](const auto& f) { return f.first == 0; });
  if (files.size() >= 5) {
    const std::string& gone = files[files.size() - 1].second;
    if (!fs::remove(gone, ec)) return SysError(ec.value(), gone, "remove");
    summary.removed = fs::relative(gone, dir).string();
    const std::string& from = files[files.size() - 2].second;
    fs::rename(from, from + ".renamed", ec);
    if (ec) return SysError(ec.value(), from, "rename");
    summary.renamed = fs::relative(from, dir).string();
  }
  return summary;
}

}  // namespace fleetcast::cli
