// Shared by the manifest fuzzer and its seed-corpus generator: the signing
// key the fuzzer trusts and a few valid manifests that exercise every part
// of the format.
#ifndef FLEETCAST_TESTS_FUZZ_FUZZ_MANIFESTS_H_
#define FLEETCAST_TESTS_FUZZ_FUZZ_MANIFESTS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/manifest.h"
#include "core/manifest_test_support.h"
#include "core/signing.h"

namespace fleetcast::fuzz {

// Seed bytes all 0x42.
inline const SigningKey& FuzzKey() {
  static const SigningKey key = testing::FixedKey(0x42, 0);
  return key;
}

// Entry mtimes count up by 1 ns in insertion order; chunk hashes are
// Sha256(path + "#" + index).
inline void AddEntry(Manifest& m, std::string path, EntryType type,
                     uint32_t mode, std::string target = "",
                     const std::vector<uint32_t>& lengths = {}) {
  const int64_t mtime_ns =
      1700000000000000000 + static_cast<int64_t>(m.entries.size());
  testing::AppendEntry(m, std::move(path), type, mode, mtime_ns,
                       std::move(target), lengths, "#");
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
