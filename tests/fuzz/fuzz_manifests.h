// Shared by the manifest fuzzer and its seed-corpus generator: the signing
// key the fuzzer trusts and a few valid manifests that exercise every part
// of the format.
#ifndef FLEETCAST_TESTS_FUZZ_FUZZ_MANIFESTS_H_
#define FLEETCAST_TESTS_FUZZ_FUZZ_MANIFESTS_H_

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/manifest.h"
#include "core/signing.h"

namespace fleetcast::fuzz {

inline const SigningKey& FuzzKey() {
  static const SigningKey key = [] {
    std::array<uint8_t, 32> seed;
    seed.fill(0x42);
    auto k = SigningKey::FromSeed(seed);
    if (!k) std::abort();
    return *k;
  }();
  return key;
}

inline void AddEntry(Manifest& m, std::string path, EntryType type,
                     uint32_t mode, std::string target = "",
                     std::vector<uint32_t> lengths = {}) {
  ManifestEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.mtime_ns = 1700000000000000000 + static_cast<int64_t>(m.entries.size());
  e.symlink_target = std::move(target);
  e.first_chunk = m.chunks.size();
  e.chunk_count = static_cast<uint32_t>(lengths.size());
  for (uint32_t len : lengths) {
    ChunkRef c;
    c.hash = Sha256(AsBytes(e.path + "#" + std::to_string(m.chunks.size())));
    c.length = len;
    m.chunks.push_back(c);
    e.size += len;
  }
  m.entries.push_back(std::move(e));
}

// Valid manifests, from trivial to one with every entry type, symlinks
// through symlinks, UTF-8 and odd characters in names.
inline std::vector<Manifest> SeedManifests() {
  std::vector<Manifest> out;
  Manifest empty;
  empty.header.dataset = "d";
  empty.header.label = "v1";
  out.push_back(empty);

  Manifest small;
  small.header.dataset = "models/ranker";
  small.header.label = "v42";
  small.header.created_unix_s = 1700000000;
  AddEntry(small, "a", EntryType::kFile, 0644, "", {1000, 20});
  AddEntry(small, "b", EntryType::kSymlink, 0, "a");
  out.push_back(small);

  Manifest rich;
  rich.header.dataset = "data/set-1";
  rich.header.label = "2024.01+rc_1";
  rich.header.created_unix_s = -1;
  rich.header.chunking = ChunkingParams{256, 1024, 4096};
  rich.header.parent = Sha256(AsBytes("parent"));
  AddEntry(rich, "caf\xc3\xa9", EntryType::kDirectory, 0755);
  AddEntry(rich, "caf\xc3\xa9/empty", EntryType::kFile, 0600);
  AddEntry(rich, "caf\xc3\xa9/new\nline", EntryType::kFile, 0444, "",
           {4096, 1, 300});
  AddEntry(rich, "dir", EntryType::kDirectory, 0700);
  AddEntry(rich, "dir/sub", EntryType::kDirectory, 0700);
  AddEntry(rich, "dir/sub/up", EntryType::kSymlink, 0, "../../dot/caf\xc3\xa9");
  AddEntry(rich, "dir/with space", EntryType::kFile, 0755, "", {256});
  AddEntry(rich, "dot", EntryType::kSymlink, 0, ".");
  AddEntry(rich, "link", EntryType::kSymlink, 0, "dir/sub/up/empty");
  AddEntry(rich, "missing", EntryType::kSymlink, 0, "not/there/..");
  out.push_back(rich);
  return out;
}

}  // namespace fleetcast::fuzz

#endif  // FLEETCAST_TESTS_FUZZ_FUZZ_MANIFESTS_H_
