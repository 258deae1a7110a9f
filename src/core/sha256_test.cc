#include "core/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace fleetcast {
namespace {

// FIPS 180-2 / NIST CSRC example messages.
constexpr char kEmpty[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char k448BitMessage[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char k448BitDigest[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr char k896BitMessage[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
    "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
constexpr char k896BitDigest[] =
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1";
constexpr char kMillionA[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Test, FipsKnownAnswers) {
  EXPECT_EQ(Sha256(AsBytes("")).Hex(), kEmpty);
  EXPECT_EQ(Sha256({}).Hex(), kEmpty);
  EXPECT_EQ(Sha256(AsBytes("abc")).Hex(), kAbc);
  EXPECT_EQ(Sha256(AsBytes(k448BitMessage)).Hex(), k448BitDigest);
  EXPECT_EQ(Sha256(AsBytes(k896BitMessage)).Hex(), k896BitDigest);
}

TEST(Sha256Test, MillionAsIncrementally) {
  Sha256Hasher hasher;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.Update(AsBytes(thousand));
  EXPECT_EQ(hasher.Finish().Hex(), kMillionA);
}

TEST(Sha256Test, FinishResetsTheHasher) {
  Sha256Hasher hasher;
  EXPECT_EQ(hasher.Finish().Hex(), kEmpty);
  hasher.Update(AsBytes("ab"));
  hasher.Update(AsBytes("c"));
  EXPECT_EQ(hasher.Finish().Hex(), kAbc);
  hasher.Update(AsBytes("abc"));
  EXPECT_EQ(hasher.Finish().Hex(), kAbc);
}

TEST(Sha256Test, MovedHasherKeepsItsState) {
  Sha256Hasher a;
  a.Update(AsBytes("ab"));
  Sha256Hasher b(std::move(a));
  b.Update(AsBytes("c"));
  Sha256Hasher c;
  c = std::move(b);
  EXPECT_EQ(c.Finish().Hex(), kAbc);
}

TEST(Sha256Test, IncrementalEqualsOneShotAtRandomSplitPoints) {
  std::mt19937_64 rng(1234);  // fixed seed: reproducible
  std::vector<uint8_t> data(300000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  const ByteSpan all(data);
  for (int round = 0; round < 50; ++round) {
    const size_t size = rng() % (data.size() + 1);
    const ByteSpan msg = all.first(size);
    // Between 0 and 6 split points, duplicates allowed (empty updates).
    std::vector<size_t> cuts(rng() % 7);
    for (size_t& cut : cuts) cut = size == 0 ? 0 : rng() % (size + 1);
    std::sort(cuts.begin(), cuts.end());
    Sha256Hasher hasher;
    size_t pos = 0;
    for (size_t cut : cuts) {
      hasher.Update(msg.subspan(pos, cut - pos));
      pos = cut;
    }
    hasher.Update(msg.subspan(pos));
    EXPECT_EQ(hasher.Finish(), Sha256(msg)) << "size " << size;
  }
}

TEST(Sha256Test, HexRoundTrip) {
  const Digest d = Sha256(AsBytes("abc"));
  EXPECT_EQ(d.ShortHex(), "ba7816bf8f01");
  const Result<Digest> parsed = Digest::FromHex(d.Hex());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, d);
  std::string upper = kAbc;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](char ch) { return std::toupper(ch); });
  const Result<Digest> from_upper = Digest::FromHex(upper);
  ASSERT_TRUE(from_upper.has_value());
  EXPECT_EQ(*from_upper, d);
  EXPECT_EQ(ToHex(AsBytes("\x01\xab\xff")), "01abff");
  EXPECT_EQ(ToHex({}), "");
}

TEST(Sha256Test, FromHexRejectsBadInput) {
  const std::string good = kAbc;
  const std::string bad[] = {
      "",
      good.substr(1),            // 63 characters
      good + "0",                // 65 characters
      "g" + good.substr(1),      // not hex
      good.substr(0, 63) + " ",  // trailing space
      " " + good.substr(1),      // leading space
      "0x" + good.substr(2),     // prefix
      good.substr(0, 32) + "-" + good.substr(33),
      std::string(64, '\0'),
  };
  for (const std::string& hex : bad) {
    const Result<Digest> r = Digest::FromHex(hex);
    ASSERT_FALSE(r.has_value()) << hex;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(Sha256Test, DigestsOrderAndHash) {
  const Digest a = Sha256(AsBytes("a"));
  const Digest b = Sha256(AsBytes("b"));
  EXPECT_NE(a, b);
  EXPECT_EQ(a < b, a.bytes < b.bytes);
  std::unordered_set<Digest> set = {a, b, a};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(Sha256(AsBytes("b"))));
}

}  // namespace
}  // namespace fleetcast
