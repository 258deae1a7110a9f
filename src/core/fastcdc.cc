#include "core/fastcdc.h"

#include <algorithm>
#include <array>
#include <bit>

namespace fleetcast {
namespace {

// The gear table is the first 256 outputs of SplitMix64 (Steele, Lea and
// Flood, 2014; the generator of java.util.SplittableRandom) seeded with the
// ASCII bytes "fleetcas" read as a big-endian integer. It is computed at
// compile time, so it cannot drift; docs/chunking.md gives the procedure and
// fastcdc_test.cc pins the result.
constexpr uint64_t kGearSeed = 0x666c656574636173;  // "fleetcas"

constexpr uint64_t SplitMix64Next(uint64_t& state) {
  state += 0x9e3779b97f4a7c15;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

constexpr std::array<uint64_t, 256> MakeGearTable() {
  std::array<uint64_t, 256> table{};
  uint64_t state = kGearSeed;
  for (uint64_t& entry : table) entry = SplitMix64Next(state);
  return table;
}

constexpr std::array<uint64_t, 256> kGear = MakeGearTable();

// `bits` one-bits in the most significant positions of a 64-bit word.
//
// Why the high bits: the fingerprint is updated as fp = (fp << 1) + G[byte],
// so bit j of fp depends only on the last j + 1 bytes (older bytes have
// been shifted out above it). A mask over the low k bits would therefore
// look at a window of only ~k bytes, and runs of similar short byte patterns
// would cut far too often or never. The top bits depend on the last 64
// bytes, which is the full window a 64-bit Gear hash can offer.
constexpr uint64_t HighMask(int bits) {
  return ((uint64_t{1} << bits) - 1) << (64 - bits);
}

// Feeds p[j] and p[j + 1] into the fingerprint `h`. Returns the chunk length
// if either byte is a cut point (j + 1 or j + 2), else 0.
//
// For consecutive bytes a, b
//   fp_a = (fp << 1) + G[a]
//   fp_b = (fp_a << 1) + G[b] = (fp << 2) + ((G[a] << 1) + G[b])
// so fp_b is computed from fp without waiting for fp_a, which halves the
// serial dependency chain through the fingerprint. Both fp_a and fp_b are
// tested: the result is bit-for-bit the byte-at-a-time rule.
[[gnu::always_inline]] inline size_t Step2(const uint8_t* p, size_t j,
                                           uint64_t mask, uint64_t& h) {
  const uint64_t ga = kGear[p[j]];
  const uint64_t gb = kGear[p[j + 1]];
  const uint64_t fa = (h << 1) + ga;
  if ((fa & mask) == 0) [[unlikely]] {
    return j + 1;
  }
  h = (h << 2) + ((ga << 1) + gb);
  if ((h & mask) == 0) [[unlikely]] {
    return j + 2;
  }
  return 0;
}

// Feeds p[i], p[i + 1], ..., p[end - 1] into the Gear fingerprint `fp` and
// stops after the first byte that leaves (fp & mask) == 0. Returns the
// offset just past that byte (the chunk length), or 0 if no byte in
// [i, end) matched; a real cut is never 0 because i >= min_size >= 64.
// On return without a cut, `fp` holds the fingerprint after p[end - 1].
// Precondition: i <= end.
//
// This is the hot loop of publishing: eight bytes per iteration (two per
// Step2), raw pointers, no bounds checks, a predictable branch per byte.
[[gnu::always_inline]] inline size_t FindCut(const uint8_t* p, size_t i,
                                             size_t end, uint64_t mask,
                                             uint64_t& fp) {
  uint64_t h = fp;
  for (; end - i >= 8; i += 8) {
    if (size_t cut = Step2(p, i, mask, h)) return cut;
    if (size_t cut = Step2(p, i + 2, mask, h)) return cut;
    if (size_t cut = Step2(p, i + 4, mask, h)) return cut;
    if (size_t cut = Step2(p, i + 6, mask, h)) return cut;
  }
  for (; i < end; ++i) {
    h = (h << 1) + kGear[p[i]];
    if ((h & mask) == 0) return i + 1;
  }
  fp = h;
  return 0;
}

}  // namespace

const uint64_t* GearTable() { return kGear.data(); }

FastCdc::FastCdc(const ChunkingParams& params) : params_(params) {
  // avg_size is a power of two in [2^8, 2^26] once validated; the clamp only
  // keeps the shifts defined if the precondition is broken.
  const int bits =
      std::clamp(static_cast<int>(std::bit_width(params.avg_size)) - 1, 8, 26);
  mask_small_ = HighMask(bits + 2);
  mask_large_ = HighMask(bits - 2);
}

size_t FastCdc::NextCut(std::span<const uint8_t> data) const {
  const size_t min_size = params_.min_size;
  if (data.size() <= min_size) return data.size();
  const size_t end = std::min<size_t>(data.size(), params_.max_size);
  // Normalized chunking: the harder mask up to avg_size, the easier one
  // after it. Cut-point skipping: bytes before min_size are not hashed.
  const size_t normal_end = std::min<size_t>(params_.avg_size, end);
  const uint8_t* p = data.data();
  uint64_t fp = 0;
  if (size_t cut = FindCut(p, min_size, normal_end, mask_small_, fp)) {
    return cut;
  }
  if (size_t cut = FindCut(p, normal_end, end, mask_large_, fp)) return cut;
  return end;
}

std::vector<uint32_t> FastCdc::Split(std::span<const uint8_t> data) const {
  std::vector<uint32_t> lengths;
  lengths.reserve(data.size() / params_.avg_size + 1);
  while (!data.empty()) {
    const size_t len = NextCut(data);
    lengths.push_back(static_cast<uint32_t>(len));
    data = data.subspan(len);
  }
  return lengths;
}

}  // namespace fleetcast
