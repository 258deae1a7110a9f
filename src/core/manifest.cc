#include "core/manifest.h"

#include <algorithm>
#include <numeric>

namespace fleetcast {

std::string_view EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile:
      return "file";
    case EntryType::kDirectory:
      return "directory";
    case EntryType::kSymlink:
      return "symlink";
  }
  return "unknown";
}

uint64_t Manifest::ContentBytes() const {
  uint64_t total = 0;
  for (const auto& e : entries) {
    if (e.type == EntryType::kFile) total += e.size;
  }
  return total;
}

size_t Manifest::FileCount() const {
  return static_cast<size_t>(
      std::count_if(entries.begin(), entries.end(),
                    [](const auto& e) { return e.type == EntryType::kFile; }));
}

void SortCanonically(Manifest& manifest) {
  std::vector<size_t> order(manifest.entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // std::string compares with char_traits<char>::compare, which is memcmp:
  // bytewise unsigned order.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return manifest.entries[a].path < manifest.entries[b].path;
  });
  std::vector<ManifestEntry> entries;
  entries.reserve(order.size());
  std::vector<ChunkRef> chunks;
  chunks.reserve(manifest.chunks.size());
  for (size_t i : order) {
    ManifestEntry e = std::move(manifest.entries[i]);
    auto run = std::span<const ChunkRef>(manifest.chunks)
                   .subspan(e.first_chunk, e.chunk_count);
    e.first_chunk = chunks.size();
    chunks.insert(chunks.end(), run.begin(), run.end());
    entries.push_back(std::move(e));
  }
  manifest.entries = std::move(entries);
  manifest.chunks = std::move(chunks);
}

}  // namespace fleetcast
