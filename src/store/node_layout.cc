#include "store/node_layout.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace fleetcast {

Result<std::shared_ptr<const ChunkLayout>> ChunkLayout::Build(
    std::shared_ptr<const Manifest> manifest) {
  const Manifest& m = *manifest;
  if (m.chunks.size() >= std::numeric_limits<uint32_t>::max()) {
    return MakeError(ErrorCode::kUnsupported, m.header.dataset,
                     "manifest has too many chunks for the node store");
  }
  std::shared_ptr<ChunkLayout> layout(new ChunkLayout());
  const size_t n = m.chunks.size();
  layout->chunk_entry_.resize(n);
  layout->chunk_offset_.resize(n);
  layout->chunk_distinct_.resize(n);

  // Pass 1: distinct index of every chunk reference, in entry order.
  std::vector<uint32_t> counts;
  {
    std::unordered_map<Digest, uint32_t> index_of;
    index_of.reserve(n);
    for (size_t e = 0; e < m.entries.size(); ++e) {
      const ManifestEntry& entry = m.entries[e];
      if (entry.type != EntryType::kFile) continue;
      uint64_t offset = 0;
      for (uint32_t c = 0; c < entry.chunk_count; ++c) {
        const size_t k = entry.first_chunk + c;
        const ChunkRef& ref = m.chunks[k];
        auto [it, inserted] = index_of.try_emplace(
            ref.hash, static_cast<uint32_t>(counts.size()));
        if (inserted) {
          counts.push_back(0);
          layout->distinct_bytes_ += ref.length;
        }
        ++counts[it->second];
        layout->chunk_entry_[k] = static_cast<uint32_t>(e);
        layout->chunk_offset_[k] = offset;
        layout->chunk_distinct_[k] = it->second;
        offset += ref.length;
      }
    }
  }
  // Pass 2: CSR of positions.
  const size_t d = counts.size();
  layout->pos_start_.resize(d + 1);
  uint32_t sum = 0;
  for (size_t i = 0; i < d; ++i) {
    layout->pos_start_[i] = sum;
    sum += counts[i];
  }
  layout->pos_start_[d] = sum;
  layout->positions_.resize(sum);
  std::vector<uint32_t> fill(layout->pos_start_.begin(),
                             layout->pos_start_.end() - 1);
  for (size_t e = 0; e < m.entries.size(); ++e) {
    const ManifestEntry& entry = m.entries[e];
    if (entry.type != EntryType::kFile) continue;
    for (uint32_t c = 0; c < entry.chunk_count; ++c) {
      const uint32_t k = static_cast<uint32_t>(entry.first_chunk + c);
      layout->positions_[fill[layout->chunk_distinct_[k]]++] = k;
    }
  }
  layout->by_hash_.resize(d);
  for (uint32_t i = 0; i < d; ++i) layout->by_hash_[i] = i;
  layout->manifest_ = std::move(manifest);
  const ChunkLayout* l = layout.get();
  std::sort(layout->by_hash_.begin(), layout->by_hash_.end(),
            [l](uint32_t a, uint32_t b) { return l->hash(a) < l->hash(b); });
  return std::shared_ptr<const ChunkLayout>(std::move(layout));
}

std::optional<uint32_t> ChunkLayout::Find(const Digest& hash) const {
  auto it = std::lower_bound(
      by_hash_.begin(), by_hash_.end(), hash,
      [this](uint32_t i, const Digest& h) { return this->hash(i) < h; });
  if (it == by_hash_.end() || this->hash(*it) != hash) return std::nullopt;
  return *it;
}

std::string VersionDirName(std::string_view label, const Digest& root) {
  return std::string(label) + "-" + root.ShortHex();
}

std::optional<std::string> RootPrefixOfDirName(std::string_view name) {
  if (name.size() < 14 || name[name.size() - 13] != '-') return std::nullopt;
  std::string_view hex = name.substr(name.size() - 12);
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return std::nullopt;
    }
  }
  return std::string(hex);
}

DatasetPaths::DatasetPaths(const std::string& data_dir,
                           std::string_view dataset)
    : dir(data_dir + "/" + std::string(dataset)),
      current(dir + "/current"),
      versions(dir + "/versions"),
      staging(dir + "/staging"),
      trash(dir + "/trash") {}

}  // namespace fleetcast
