// Manifest codec at the scale of a 1 TiB dataset: 16k files x 256 chunks =
// 4M chunks (about 150 MB canonical). Targets (Release, one core):
// EncodeCanonical + DecodeCanonical well under 2 s together; SealManifest
// and OpenManifest under ~2 s each.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdlib>
#include <memory>

#include "core/manifest_codec.h"
#include "core/manifest_test_support.h"
#include "core/path_rules.h"

namespace fleetcast {
namespace {

// Built once, shared by every benchmark in this file.
struct Fixture {
  // Hash-like, incompressible chunk hashes and lengths; names like
  // "shard-0000/part-000000.parquet".
  Manifest manifest = testing::SyntheticManifest({
      .files = 16 * 1024,
      .chunks_per_file = 256,
      .files_per_dir = 128,
      .dir_prefix = "shard-",
      .file_prefix = "part-",
      .file_suffix = ".parquet",
      .mtime_base_ns = 1700000000000000000,
      .mtime_step_ns = 1,
  });
  std::vector<uint8_t> canonical = EncodeCanonical(manifest);
  SigningKey key = testing::FixedKey(std::array<uint8_t, 32>{1});
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
