// Synthetic manifests and fixed signing keys for tests, fuzzers and
// benchmarks only.
//
// Header-only and included by nothing in the library, so it is not compiled
// into fleetcast_core. It uses no test framework, so the fuzzers and the
// benchmarks can include it too.
//
// What these helpers produce is pinned: known-answer tests, the worked
// example of docs/manifest-format.md and the fuzz seed corpus depend on the
// exact bytes. Give a helper a new parameter rather than change what an
// existing call produces.
#ifndef FLEETCAST_CORE_MANIFEST_TEST_SUPPORT_H_
#define FLEETCAST_CORE_MANIFEST_TEST_SUPPORT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/manifest.h"
#include "core/sha256.h"
#include "core/signing.h"

namespace fleetcast::testing {

// Appends an entry to the end of `m` as given: no sorting, no validation,
// so tests can build broken manifests too. A file gets one chunk per
// element of `lengths`, appended to m.chunks (each entry's run starts where
// the previous one ended), with the fake but reproducible hash
// Sha256(path + hash_separator + N), N being the chunk's index in m.chunks.
// Returns the new entry, e.g. to break it on purpose.
inline ManifestEntry& AppendEntry(Manifest& m, std::string path, EntryType type,
                                  uint32_t mode, int64_t mtime_ns,
                                  std::string symlink_target,
                                  const std::vector<uint32_t>& lengths,
                                  std::string_view hash_separator) {
  ManifestEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = mode;
  e.mtime_ns = mtime_ns;
  e.symlink_target = std::move(symlink_target);
  e.first_chunk = m.chunks.size();
  e.chunk_count = static_cast<uint32_t>(lengths.size());
  for (uint32_t len : lengths) {
    std::string name = e.path;
    name += hash_separator;
    name += std::to_string(m.chunks.size());
    m.chunks.push_back(ChunkRef{Sha256(AsBytes(name)), len});
    e.size += len;
  }
  m.entries.push_back(std::move(e));
  return m.entries.back();
}

// The shape of a SyntheticManifest. Directory d is named
// dir_prefix + d (4 digits at least); file n (counted across the whole
// manifest) in it is named dir + "/" + file_prefix + n (6 digits at least)
// + file_suffix and has mtime mtime_base_ns + n * mtime_step_ns.
struct SyntheticManifestOptions {
  size_t files = 0;
  size_t chunks_per_file = 0;
  size_t files_per_dir = 128;
  std::string dir_prefix = "d";
  std::string file_prefix = "f";
  std::string file_suffix;
  int64_t mtime_base_ns = 0;
  int64_t mtime_step_ns = 1000;
};

// A large valid manifest of dataset "bench/large", label "v1", created at
// 1700000000, default chunking: ceil(files / files_per_dir) directories
// (mode 0755, mtime 0) of files_per_dir files each (the last one may hold
// fewer), every file (mode 0644) with chunks_per_file chunks. Chunk hashes
// and lengths (64 KiB .. 1 MiB) come from one SplitMix64 sequence, so they
// look random and do not compress, yet every call returns the same
// manifest. Entries are in canonical order.
inline Manifest SyntheticManifest(const SyntheticManifestOptions& o) {
  Manifest m;
  m.header.dataset = "bench/large";
  m.header.label = "v1";
  m.header.created_unix_s = 1700000000;
  const size_t dirs = (o.files + o.files_per_dir - 1) / o.files_per_dir;
  m.entries.reserve(o.files + dirs);
  m.chunks.reserve(o.files * o.chunks_per_file);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state] {  // SplitMix64
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  auto padded = [](size_t n, int width) {
    char digits[32];
    std::snprintf(digits, sizeof digits, "%0*zu", width, n);
    return std::string(digits);
  };
  size_t file = 0;
  for (size_t d = 0; d < dirs; ++d) {
    ManifestEntry dir;
    dir.path = o.dir_prefix + padded(d, 4);
    dir.type = EntryType::kDirectory;
    dir.mode = 0755;
    dir.first_chunk = m.chunks.size();
    m.entries.push_back(dir);
    for (size_t k = 0; k < o.files_per_dir && file < o.files; ++k, ++file) {
      ManifestEntry e;
      e.path = dir.path + "/" + o.file_prefix + padded(file, 6) + o.file_suffix;
      e.type = EntryType::kFile;
      e.mode = 0644;
      e.mtime_ns =
          o.mtime_base_ns + static_cast<int64_t>(file) * o.mtime_step_ns;
      e.first_chunk = m.chunks.size();
      e.chunk_count = static_cast<uint32_t>(o.chunks_per_file);
      for (size_t c = 0; c < o.chunks_per_file; ++c) {
        ChunkRef ref;
        for (size_t w = 0; w < 4; ++w) {
          uint64_t v = next();
          std::memcpy(ref.hash.bytes.data() + 8 * w, &v, 8);
        }
        ref.length = static_cast<uint32_t>((64 << 10) + next() % (960 << 10));
        e.size += ref.length;
        m.chunks.push_back(ref);
      }
      m.entries.push_back(std::move(e));
    }
  }
  return m;
}

// Seed bytes first, first + step, first + 2 * step, ... (mod 256).
inline std::array<uint8_t, 32> SeedSequence(uint8_t first, uint8_t step) {
  std::array<uint8_t, 32> seed;
  for (size_t i = 0; i < seed.size(); ++i) {
    seed[i] = static_cast<uint8_t>(first + step * i);
  }
  return seed;
}

// The signing key of a fixed seed, so signatures are reproducible. Aborts
// when the key cannot be made (any 32 bytes are an Ed25519 seed: only
// running out of memory fails).
inline SigningKey FixedKey(const std::array<uint8_t, 32>& seed) {
  auto key = SigningKey::FromSeed(seed);
  if (!key) {
    std::fprintf(stderr, "SigningKey::FromSeed: %s\n",
                 key.error().ToString().c_str());
    std::abort();
  }
  return *key;
}

inline SigningKey FixedKey(uint8_t first, uint8_t step) {
  return FixedKey(SeedSequence(first, step));
}

}  // namespace fleetcast::testing

#endif  // FLEETCAST_CORE_MANIFEST_TEST_SUPPORT_H_
