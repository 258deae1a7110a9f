#include "core/fastcdc.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <numeric>
#include <unordered_set>
#include <vector>

#include "core/chunking_params.h"
#include "core/sha256.h"

namespace fleetcast {
namespace {

// SplitMix64, the standard generator (also the one that builds the gear
// table). Used here only to make test data that any implementation can
// regenerate: docs/chunking.md lists these known answers.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// `size` bytes: the SplitMix64(seed) outputs, each written little-endian.
std::vector<uint8_t> RandomBytes(uint64_t seed, size_t size) {
  SplitMix64 rng(seed);
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t v = rng.Next();
    for (size_t b = 0; b < 8 && i + b < size; ++b) {
      out[i + b] = static_cast<uint8_t>(v >> (8 * b));
    }
  }
  return out;
}

constexpr uint64_t kKnownAnswerSeed = 0x5eed;
constexpr size_t kKnownAnswerSize = 8u << 20;

const std::vector<uint8_t>& KnownAnswerData() {
  static const std::vector<uint8_t> data =
      RandomBytes(kKnownAnswerSeed, kKnownAnswerSize);
  return data;
}

const ChunkingParams kDefaultParams{};
const ChunkingParams kSmallParams{
    .min_size = 2u << 10, .avg_size = 8u << 10, .max_size = 32u << 10};

// A deliberately plain transcription of the rule in docs/chunking.md, one
// byte at a time, to check the unrolled implementation against.
size_t ReferenceNextCut(const ChunkingParams& p, std::span<const uint8_t> d) {
  if (d.size() <= p.min_size) return d.size();
  const size_t end = std::min<size_t>(d.size(), p.max_size);
  int bits = 0;
  while ((uint32_t{1} << bits) < p.avg_size) ++bits;
  uint64_t mask_small = 0;
  for (int k = 0; k < bits + 2; ++k) mask_small |= uint64_t{1} << (63 - k);
  uint64_t mask_large = 0;
  for (int k = 0; k < bits - 2; ++k) mask_large |= uint64_t{1} << (63 - k);
  uint64_t fp = 0;
  for (size_t i = p.min_size; i < end; ++i) {
    fp = (fp << 1) + GearTable()[d[i]];
    const uint64_t mask = i < p.avg_size ? mask_small : mask_large;
    if ((fp & mask) == 0) return i + 1;
  }
  return end;
}

std::vector<uint32_t> ReferenceSplit(const ChunkingParams& p,
                                     std::span<const uint8_t> d) {
  std::vector<uint32_t> out;
  while (!d.empty()) {
    const size_t len = ReferenceNextCut(p, d);
    out.push_back(static_cast<uint32_t>(len));
    d = d.subspan(len);
  }
  return out;
}

// SHA-256 of the lengths as consecutive little-endian uint32 values.
std::string LengthsDigestHex(const std::vector<uint32_t>& lengths) {
  std::vector<uint8_t> bytes;
  for (uint32_t len : lengths) {
    for (int b = 0; b < 4; ++b)
      bytes.push_back(static_cast<uint8_t>(len >> (8 * b)));
  }
  return Sha256(bytes).Hex();
}

std::vector<Digest> ChunkDigests(std::span<const uint8_t> data,
                                 const std::vector<uint32_t>& lengths) {
  std::vector<Digest> out;
  size_t pos = 0;
  for (uint32_t len : lengths) {
    out.push_back(Sha256(data.subspan(pos, len)));
    pos += len;
  }
  return out;
}

void ExpectValidSplit(const ChunkingParams& p, size_t total,
                      const std::vector<uint32_t>& lengths) {
  ASSERT_EQ(std::accumulate(lengths.begin(), lengths.end(), size_t{0}), total);
  for (size_t i = 0; i < lengths.size(); ++i) {
    const bool last = i + 1 == lengths.size();
    EXPECT_LE(lengths[i], p.max_size) << "chunk " << i;
    if (last) {
      EXPECT_GE(lengths[i], 1u) << "chunk " << i;
    } else {
      // A cut is only looked for after min_size bytes were skipped.
      EXPECT_GT(lengths[i], p.min_size) << "chunk " << i;
    }
  }
}

TEST(FastCdcTest, GearTableKnownAnswer) {
  const uint64_t* gear = GearTable();
  EXPECT_EQ(gear[0], 0x5c2c6afe6f713361u);
  EXPECT_EQ(gear[1], 0xfdc353839ab141d2u);
  EXPECT_EQ(gear[2], 0x1f04fb1619997ce4u);
  EXPECT_EQ(gear[3], 0x252a6bb7c74126a7u);
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 256; ++i) {
    for (int b = 0; b < 8; ++b)
      bytes.push_back(static_cast<uint8_t>(gear[i] >> (8 * b)));
  }
  EXPECT_EQ(Sha256(bytes).Hex(),
            "4b9b57679ff5a1e59e6a35f0438c603e5e0edb76304fb5e52ec3bfa672186b96");
}

TEST(FastCdcTest, TestDataGeneratorIsStandardSplitMix64) {
  // Published first outputs of SplitMix64 seeded with 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafu);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4u);
}

// The expected lengths were computed with an independent Python
// transcription of docs/chunking.md and agree with this implementation.
TEST(FastCdcTest, KnownAnswerDefaultParams) {
  const std::vector<uint32_t> expected = {
      348243, 263340, 356964, 245308, 294989, 350342, 507520, 281081,
      135976, 263891, 361192, 110486, 212634, 344209, 274471, 349004,
      429851, 374054, 230207, 71337,  290302, 380531, 269645, 309812,
      320787, 296060, 267768, 267296, 181308};
  EXPECT_EQ(FastCdc(kDefaultParams).Split(KnownAnswerData()), expected);
}

TEST(FastCdcTest, KnownAnswerSmallParams) {
  const std::vector<uint32_t> lengths =
      FastCdc(kSmallParams).Split(KnownAnswerData());
  ASSERT_EQ(lengths.size(), 904u);
  const std::vector<uint32_t> first = {9834, 6102,  12045, 9634,  9721, 9237,
                                       9338, 9356,  8922,  14258, 9306, 8448,
                                       9715, 11069, 13630, 10126};
  EXPECT_EQ(std::vector<uint32_t>(lengths.begin(), lengths.begin() + 16),
            first);
  EXPECT_EQ(LengthsDigestHex(lengths),
            "07ff09c1c8f04a1a6c39ea9c200b3a25d5c4e3fb68b0dc816a2f172c7c0835ef");
}

TEST(FastCdcTest, ChunkSizesWithinBounds) {
  for (const ChunkingParams& p : {kDefaultParams, kSmallParams}) {
    SCOPED_TRACE(p.avg_size);
    const auto& data = KnownAnswerData();
    ExpectValidSplit(p, data.size(), FastCdc(p).Split(data));
    // Awkward total sizes end with a short last chunk.
    for (size_t size : {size_t{p.max_size} + 1, size_t{3} * p.max_size - 1,
                        size_t{p.min_size} * 5 + 3}) {
      std::span<const uint8_t> part(data.data(), size);
      ExpectValidSplit(p, size, FastCdc(p).Split(part));
    }
  }
}

TEST(FastCdcTest, EmptyInputGivesNoChunks) {
  FastCdc cdc(kDefaultParams);
  EXPECT_TRUE(cdc.Split({}).empty());
  EXPECT_EQ(cdc.NextCut({}), 0u);
}

TEST(FastCdcTest, TinyInputsAreOneChunk) {
  for (const ChunkingParams& p : {kDefaultParams, kSmallParams}) {
    FastCdc cdc(p);
    const auto& data = KnownAnswerData();
    for (size_t size : {size_t{1}, size_t{p.min_size} - 1, size_t{p.min_size},
                        size_t{p.min_size} + 1}) {
      std::span<const uint8_t> part(data.data(), size);
      EXPECT_EQ(cdc.Split(part),
                std::vector<uint32_t>{static_cast<uint32_t>(size)})
          << "size " << size;
      EXPECT_EQ(cdc.NextCut(part), size);
    }
  }
}

TEST(FastCdcTest, AllZeroInputGivesMaxSizeChunks) {
  for (const ChunkingParams& p : {kDefaultParams, kSmallParams}) {
    const std::vector<uint8_t> zeros(size_t{4} * p.max_size + 1234, 0);
    const std::vector<uint32_t> expected = {p.max_size, p.max_size, p.max_size,
                                            p.max_size, 1234};
    EXPECT_EQ(FastCdc(p).Split(zeros), expected);
  }
}

TEST(FastCdcTest, NextCutNeverLooksPastMaxSize) {
  const auto& data = KnownAnswerData();
  for (const ChunkingParams& p : {kDefaultParams, kSmallParams}) {
    FastCdc cdc(p);
    for (size_t offset : {0, 12345, 999999, 4000000}) {
      auto window = std::span<const uint8_t>(data).subspan(offset);
      const size_t cut = cdc.NextCut(window);
      EXPECT_LE(cut, p.max_size);
      EXPECT_EQ(cdc.NextCut(window.first(p.max_size)), cut);
    }
  }
}

TEST(FastCdcTest, MatchesByteAtATimeReference) {
  SplitMix64 rng(7);
  // Edge parameter sets first, then random ones.
  std::vector<ChunkingParams> params = {
      kDefaultParams,
      kSmallParams,
      {.min_size = 64, .avg_size = 256, .max_size = 257},
      {.min_size = 255, .avg_size = 256, .max_size = 300},
      {.min_size = 64, .avg_size = 256, .max_size = 64u << 10},
      {.min_size = 100, .avg_size = 1024, .max_size = 1025},
  };
  for (int i = 0; i < 20; ++i) {
    ChunkingParams p;
    p.avg_size = uint32_t{256} << (rng.Next() % 8);  // 256 B .. 32 KiB
    p.min_size = 64 + static_cast<uint32_t>(rng.Next() % (p.avg_size - 64));
    p.max_size =
        p.avg_size + 1 + static_cast<uint32_t>(rng.Next() % (3 * p.avg_size));
    params.push_back(p);
  }
  // Random bytes, and low-entropy bytes (a four-letter alphabet) whose
  // fingerprints differ from random data's in distribution.
  const std::vector<uint8_t> random = RandomBytes(11, 1u << 20);
  std::vector<uint8_t> dna(1u << 20);
  for (size_t i = 0; i < dna.size(); ++i) dna[i] = "ACGT"[random[i] & 3];
  const std::vector<uint8_t>* const inputs[] = {&random, &dna};
  for (const ChunkingParams& p : params) {
    ASSERT_TRUE(p.Validate().has_value())
        << p.min_size << "/" << p.avg_size << "/" << p.max_size;
    SCOPED_TRACE(testing::Message()
                 << p.min_size << "/" << p.avg_size << "/" << p.max_size);
    FastCdc cdc(p);
    for (const std::vector<uint8_t>* data : inputs) {
      const std::vector<uint32_t> lengths = cdc.Split(*data);
      EXPECT_EQ(lengths, ReferenceSplit(p, *data));
      ExpectValidSplit(p, data->size(), lengths);
    }
  }
}

TEST(FastCdcTest, StreamingWindowMatchesSplit) {
  const auto& data = KnownAnswerData();
  for (const ChunkingParams& p : {kDefaultParams, kSmallParams}) {
    FastCdc cdc(p);
    // A reader that keeps exactly max_size bytes (or what is left of the
    // file) in its window: cut, drop the chunk, refill, repeat.
    std::vector<uint8_t> window;
    size_t read = 0;
    std::vector<uint32_t> streamed;
    while (true) {
      const size_t refill =
          std::min(p.max_size - window.size(), data.size() - read);
      window.insert(window.end(), data.begin() + read,
                    data.begin() + read + refill);
      read += refill;
      if (window.empty()) break;
      const size_t cut = cdc.NextCut(window);
      ASSERT_GT(cut, 0u);
      streamed.push_back(static_cast<uint32_t>(cut));
      window.erase(window.begin(), window.begin() + cut);
    }
    EXPECT_EQ(streamed, cdc.Split(data));
  }
}

// Chunks of `edited` whose content does not occur among `original`'s chunks.
size_t NewChunks(const ChunkingParams& p, std::span<const uint8_t> original,
                 std::span<const uint8_t> edited) {
  FastCdc cdc(p);
  const std::vector<Digest> before =
      ChunkDigests(original, cdc.Split(original));
  const std::vector<Digest> after = ChunkDigests(edited, cdc.Split(edited));
  const std::unordered_set<Digest> known(before.begin(), before.end());
  return std::count_if(after.begin(), after.end(),
                       [&](const Digest& d) { return !known.contains(d); });
}

TEST(FastCdcTest, InsertionInTheMiddleChangesFewChunks) {
  const std::vector<uint8_t> original = RandomBytes(99, 64u << 20);
  std::vector<uint8_t> edited = original;
  const uint8_t inserted[7] = {'f', 'l', 'e', 'e', 't', '!', '\n'};
  const size_t at = original.size() / 2 + 4321;
  edited.insert(edited.begin() + at, std::begin(inserted), std::end(inserted));
  const size_t changed = NewChunks(kDefaultParams, original, edited);
  EXPECT_GE(changed, 1u);
  EXPECT_LE(changed, 3u);
}

TEST(FastCdcTest, DeletionAndOverwriteChangeFewChunks) {
  const auto& original = KnownAnswerData();
  std::vector<uint8_t> deleted = original;
  deleted.erase(deleted.begin() + 3000000, deleted.begin() + 3000100);
  EXPECT_LE(NewChunks(kSmallParams, original, deleted), 3u);
  std::vector<uint8_t> overwritten = original;
  for (size_t i = 5000000; i < 5000016; ++i) overwritten[i] ^= 0x5a;
  const size_t changed = NewChunks(kSmallParams, original, overwritten);
  EXPECT_GE(changed, 1u);
  EXPECT_LE(changed, 3u);
}

}  // namespace
}  // namespace fleetcast
