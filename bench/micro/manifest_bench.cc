// Manifest codec at the scale of a 1 TiB dataset: 16k files x 256 chunks =
// 4M chunks (about 150 MB canonical). Targets (Release, one core):
// EncodeCanonical + DecodeCanonical well under 2 s together; SealManifest
// and OpenManifest under ~2 s each.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/manifest_codec.h"
#include "core/path_rules.h"

namespace fleetcast {
namespace {

constexpr size_t kFiles = 16 * 1024;
constexpr size_t kChunksPerFile = 256;
constexpr size_t kFilesPerDir = 128;

Manifest BuildLargeManifest() {
  Manifest m;
  m.header.dataset = "bench/large";
  m.header.label = "v1";
  m.header.created_unix_s = 1700000000;
  const size_t dirs = (kFiles + kFilesPerDir - 1) / kFilesPerDir;
  m.entries.reserve(kFiles + dirs);
  m.chunks.reserve(kFiles * kChunksPerFile);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state] {  // splitmix64: hash-like, incompressible bytes
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  char name[64];
  size_t file = 0;
  for (size_t d = 0; d < dirs; ++d) {
    ManifestEntry dir;
    std::snprintf(name, sizeof name, "shard-%04zu", d);
    dir.path = name;
    dir.type = EntryType::kDirectory;
    dir.mode = 0755;
    dir.first_chunk = m.chunks.size();
    m.entries.push_back(dir);
    for (size_t k = 0; k < kFilesPerDir && file < kFiles; ++k, ++file) {
      ManifestEntry e;
      std::snprintf(name, sizeof name, "shard-%04zu/part-%06zu.parquet", d,
                    file);
      e.path = name;
      e.type = EntryType::kFile;
      e.mode = 0644;
      e.mtime_ns = 1700000000000000000 + static_cast<int64_t>(file);
      e.first_chunk = m.chunks.size();
      e.chunk_count = kChunksPerFile;
      for (size_t c = 0; c < kChunksPerFile; ++c) {
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

SigningKey BenchKey() {
  std::array<uint8_t, 32> seed{};
  seed[0] = 1;
  return *SigningKey::FromSeed(seed);
}

// Built once, shared by every benchmark in this file.
struct Fixture {
  Manifest manifest = BuildLargeManifest();
  std::vector<uint8_t> canonical = EncodeCanonical(manifest);
  SigningKey key = BenchKey();
  std::vector<uint8_t> envelope = [this] {
    auto sealed = SealManifest(manifest, key);
    if (!sealed) std::abort();
    return std::move(sealed->envelope);
  }();
  TrustedKeys trusted = [this] {
    TrustedKeys t;
    t.Add(key.public_key());
    return t;
  }();
};

const Fixture& GetFixture() {
  static const Fixture* fixture = new Fixture();
  return *fixture;
}

void SetCounters(benchmark::State& state, const Fixture& f) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(f.canonical.size()));
  state.counters["chunks"] = static_cast<double>(f.manifest.chunks.size());
  state.counters["canonical_MB"] =
      static_cast<double>(f.canonical.size()) / 1e6;
  state.counters["envelope_MB"] = static_cast<double>(f.envelope.size()) / 1e6;
}

void BM_ManifestEncodeCanonical(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    std::vector<uint8_t> bytes = EncodeCanonical(f.manifest);
    benchmark::DoNotOptimize(bytes.data());
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestEncodeCanonical)->Unit(benchmark::kMillisecond);

void BM_ManifestDecodeCanonical(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    auto m = DecodeCanonical(f.canonical);
    if (!m) {
      state.SkipWithError(m.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(m->chunks.data());
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestDecodeCanonical)->Unit(benchmark::kMillisecond);

void BM_ManifestValidate(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    auto st = ValidateManifest(f.manifest);
    if (!st) {
      state.SkipWithError(st.error().ToString().c_str());
      break;
    }
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestValidate)->Unit(benchmark::kMillisecond);

void BM_ManifestRootHash(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    Digest root = Sha256(f.canonical);
    benchmark::DoNotOptimize(root);
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestRootHash)->Unit(benchmark::kMillisecond);

void BM_ManifestSeal(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    auto sealed = SealManifest(f.manifest, f.key);
    if (!sealed) {
      state.SkipWithError(sealed.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(sealed->envelope.data());
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestSeal)->Unit(benchmark::kMillisecond);

void BM_ManifestOpen(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    auto opened = OpenManifest(f.envelope, f.trusted);
    if (!opened) {
      state.SkipWithError(opened.error().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(opened->manifest.chunks.data());
  }
  SetCounters(state, f);
}
BENCHMARK(BM_ManifestOpen)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fleetcast
