// Throughput of the publish hot path: FastCDC chunking, SHA-256 and the
// combined chunk + hash pass. Compare the SHA-256 figures with
// `openssl speed -evp sha256` run in the same session (docs/chunking.md).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/chunking_params.h"
#include "core/fastcdc.h"
#include "core/sha256.h"

namespace fleetcast {
namespace {

constexpr size_t kChunkerInput = 64u << 20;

// Pseudo-random bytes from a fixed seed, built once per size.
const std::vector<uint8_t>& RandomData(size_t size) {
  static std::vector<uint8_t> data;
  if (data.size() < size) {
    std::mt19937_64 rng(42);
    data.resize(size);
    for (size_t i = 0; i < size; i += 8) {
      const uint64_t v = rng();
      for (size_t b = 0; b < 8 && i + b < size; ++b) {
        data[i + b] = static_cast<uint8_t>(v >> (8 * b));
      }
    }
  }
  return data;
}

ChunkingParams ParamsForAvg(int64_t avg) {
  const auto a = static_cast<uint32_t>(avg);
  return ChunkingParams{.min_size = a / 4, .avg_size = a, .max_size = a * 4};
}

// Range(0): avg chunk size (min = avg / 4, max = avg * 4; 256 KiB is the
// default).
void BM_FastCdcSplit(benchmark::State& state) {
  const std::span<const uint8_t> data(RandomData(kChunkerInput).data(),
                                      kChunkerInput);
  const FastCdc cdc(ParamsForAvg(state.range(0)));
  size_t chunks = 0;
  for (auto _ : state) {
    std::vector<uint32_t> lengths = cdc.Split(data);
    chunks = lengths.size();
    benchmark::DoNotOptimize(lengths.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(data.size()));
  state.counters["chunks"] = static_cast<double>(chunks);
}
BENCHMARK(BM_FastCdcSplit)
    ->Arg(256 << 10)
    ->Arg(8 << 10)
    ->Unit(benchmark::kMillisecond);

// Range(0): buffer size.
void BM_Sha256(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  const std::span<const uint8_t> data(RandomData(size).data(), size);
  for (auto _ : state) {
    Digest d = Sha256(data);
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(16 << 10)->Arg(256 << 10)->Arg(1 << 20);

// What publish does per file: find each chunk, then hash it.
void BM_ChunkAndHash(benchmark::State& state) {
  const std::span<const uint8_t> data(RandomData(kChunkerInput).data(),
                                      kChunkerInput);
  const FastCdc cdc{ChunkingParams{}};
  for (auto _ : state) {
    std::span<const uint8_t> rest = data;
    while (!rest.empty()) {
      const size_t len = cdc.NextCut(rest);
      Digest d = Sha256(rest.first(len));
      benchmark::DoNotOptimize(d);
      rest = rest.subspan(len);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(data.size()));
}
BENCHMARK(BM_ChunkAndHash)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fleetcast
