#include "core/manifest_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "core/manifest_test_support.h"
#include "core/path_rules.h"

namespace fleetcast {
namespace {

using ::fleetcast::testing::AppendEntry;
using ::fleetcast::testing::FixedKey;
using ::fleetcast::testing::SyntheticManifest;
using ::testing::HasSubstr;

// --------------------------------------------------------------------------
// Helpers

// Seed bytes fill, 2 * fill, 3 * fill, ...
SigningKey TestKey(uint8_t fill = 0x11) { return FixedKey(fill, fill); }

TrustedKeys Trust(const SigningKey& key) {
  TrustedKeys t;
  t.Add(key.public_key());
  return t;
}

Digest HashOf(std::string_view s) { return Sha256(AsBytes(s)); }

// Chunk hashes are Sha256(path + "/" + index): RichManifest's encoding,
// and so the tests that pin it, depend on that recipe.
void AddEntry(Manifest& m, std::string path, EntryType type, uint32_t mode,
              int64_t mtime_ns, std::string target = "",
              const std::vector<uint32_t>& lengths = {}) {
  AppendEntry(m, std::move(path), type, mode, mtime_ns, std::move(target),
              lengths, "/");
}

// A small manifest that uses every feature of the format: all entry types,
// names with spaces, newlines and UTF-8, empty files, a chunk shared by two
// files, a parent root, negative times.
Manifest RichManifest(bool with_parent = true) {
  Manifest m;
  m.header.dataset = "models/ranker";
  m.header.label = "v42+build.7";
  m.header.created_unix_s = 1700000000;
  m.header.chunking = ChunkingParams{4096, 16384, 65536};
  if (with_parent) m.header.parent = HashOf("parent");
  AddEntry(m, "bin", EntryType::kDirectory, 0755, 1);
  AddEntry(m, "bin/run me", EntryType::kFile, 0755, -5, "", {4096, 100});
  AddEntry(m, "caf\xc3\xa9", EntryType::kDirectory, 0700, 2);
  AddEntry(m, "caf\xc3\xa9/empty", EntryType::kFile, 0644, 4);
  AddEntry(m, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt", EntryType::kFile,
           0600, 3, "", {65536, 65536, 1});
  AddEntry(m, "current", EntryType::kSymlink, 0, 5, "caf\xc3\xa9");
  AddEntry(m, "dangling", EntryType::kSymlink, 0, 6, "not/there");
  AddEntry(m, "line\nbreak", EntryType::kFile, 0444, -1700000000000000000, "",
           {7});
  AddEntry(m, "z", EntryType::kDirectory, 0, 0);
  AddEntry(m, "z/copy", EntryType::kFile, 0444, 9, "", {7});
  // Same content as "line\nbreak": a chunk shared by two files.
  m.chunks.back() = m.chunks[m.chunks.size() - 2];
  AddEntry(m, "z/up", EntryType::kSymlink, 0, 8, "../bin/run me");
  EXPECT_TRUE(ValidateManifest(m).has_value())
      << ValidateManifest(m).error().ToString();
  return m;
}

// An independent writer that follows docs/manifest-format.md byte by byte,
// used to pin the layout of EncodeCanonical and to craft encodings that the
// model cannot express.
class SpecWriter {
 public:
  SpecWriter& U8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  SpecWriter& U16(uint16_t v) { return Le(v, 2); }
  SpecWriter& U32(uint32_t v) { return Le(v, 4); }
  SpecWriter& U64(uint64_t v) { return Le(v, 8); }
  SpecWriter& I64(int64_t v) { return Le(static_cast<uint64_t>(v), 8); }
  SpecWriter& Raw(std::string_view s) {
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  SpecWriter& Raw(const Digest& d) {
    b_.insert(b_.end(), d.bytes.begin(), d.bytes.end());
    return *this;
  }
  SpecWriter& Str16(std::string_view s) {
    return U16(static_cast<uint16_t>(s.size())).Raw(s);
  }
  SpecWriter& Str32(std::string_view s) {
    return U32(static_cast<uint32_t>(s.size())).Raw(s);
  }
  // Everything up to and including the two counts.
  SpecWriter& Header(uint64_t entries, uint64_t chunks,
                     std::string_view dataset = "ds",
                     std::string_view label = "v1") {
    Raw("FCMF").U16(1).Str16(dataset).Str16(label).I64(0);
    U32(64 << 10).U32(256 << 10).U32(1 << 20);
    U8(0).Raw(Digest{});
    return U64(entries).U64(chunks);
  }
  SpecWriter& Dir(std::string_view path) {
    return U8(2).U32(0755).I64(0).U64(0).Str32(path);
  }
  SpecWriter& EmptyFile(std::string_view path) {
    return U8(1).U32(0644).I64(0).U64(0).Str32(path).U32(0);
  }
  SpecWriter& Link(std::string_view path, std::string_view target) {
    return U8(3).U32(0).I64(0).U64(0).Str32(path).Str32(target);
  }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  SpecWriter& Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b_.push_back(static_cast<uint8_t>(v >> 8 * i));
    return *this;
  }
  std::vector<uint8_t> b_;
};

void ExpectCorrupt(ByteSpan bytes, const std::string& what,
                   ErrorCode code = ErrorCode::kCorrupt) {
  auto m = DecodeCanonical(bytes);
  ASSERT_FALSE(m.has_value()) << "accepted, expected: " << what;
  EXPECT_EQ(m.error().code, code) << m.error().ToString();
  EXPECT_THAT(m.error().ToString(), HasSubstr(what));
}

// --------------------------------------------------------------------------
// Canonical encoding

TEST(CanonicalTest, LayoutMatchesSpec) {
  Manifest m;
  m.header.dataset = "ds";
  m.header.label = "v1";
  m.header.created_unix_s = 0x0102030405060708;
  m.header.chunking = ChunkingParams{1024, 4096, 16384};
  Digest parent;
  for (size_t i = 0; i < 32; ++i) parent.bytes[i] = static_cast<uint8_t>(i);
  m.header.parent = parent;
  AddEntry(m, "d", EntryType::kDirectory, 0755, -1);
  AddEntry(m, "d/f", EntryType::kFile, 0644, 5, "", {1, 2});
  AddEntry(m, "l", EntryType::kSymlink, 0, 7, "d/f");

  SpecWriter w;
  w.Raw("FCMF").U16(1).Str16("ds").Str16("v1").I64(0x0102030405060708);
  w.U32(1024).U32(4096).U32(16384).U8(1).Raw(parent);
  w.U64(3).U64(2);
  w.U8(2).U32(0755).I64(-1).U64(0).Str32("d");
  w.U8(1).U32(0644).I64(5).U64(3).Str32("d/f").U32(2);
  w.Raw(m.chunks[0].hash).U32(1).Raw(m.chunks[1].hash).U32(2);
  w.U8(3).U32(0).I64(7).U64(0).Str32("l").Str32("d/f");

  std::vector<uint8_t> encoded = EncodeCanonical(m);
  EXPECT_EQ(encoded, w.bytes());
  EXPECT_EQ(encoded.size(), 83u + 26 + 28 + 4 + 72 + 26 + 7);
  auto decoded = DecodeCanonical(w.bytes());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, m);
}

// The example of docs/manifest-format.md: its root and signature are
// published there, so other implementations can check themselves.
TEST(CanonicalTest, KnownAnswer) {
  Manifest m;
  m.header.dataset = "ds";
  m.header.label = "v1";
  AddEntry(m, "d", EntryType::kDirectory, 0755, 0);
  AddEntry(m, "d/f", EntryType::kFile, 0644, 0, "", {5});
  m.chunks[0].hash = HashOf("hello");
  AddEntry(m, "l", EntryType::kSymlink, 0, 0, "d/f");
  ASSERT_TRUE(ValidateManifest(m).has_value());
  std::vector<uint8_t> bytes = EncodeCanonical(m);
  EXPECT_EQ(bytes.size(), 210u);
  Digest root = Sha256(bytes);
  EXPECT_EQ(root.Hex(),
            "639c8678090c4617bcc31c8720ce965c84e506a59853614512d13476d8b329c5");
  std::array<uint8_t, 32> zero_seed{};
  auto key = SigningKey::FromSeed(zero_seed);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(ToHex(key->public_key().bytes),
            "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29");
  EXPECT_EQ(ToHex(key->Sign(root)),
            "62573ed7bf17500f7459fb8d3e6f6e8fc532979476ca0aa7618d709aa9647175"
            "b91c2918e443aa39a89d61898d00119b703fcbfdd3f272a77a28263841ac6c01");
}

TEST(CanonicalTest, EmptyManifestLayout) {
  Manifest m;
  m.header.dataset = "ds";
  m.header.label = "v1";
  SpecWriter w;
  w.Header(0, 0);
  EXPECT_EQ(EncodeCanonical(m), w.bytes());
  EXPECT_EQ(w.bytes().size(), 83u);
  auto decoded = DecodeCanonical(w.bytes());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, m);
}

TEST(CanonicalTest, RoundTripRichManifest) {
  for (bool with_parent : {true, false}) {
    Manifest m = RichManifest(with_parent);
    std::vector<uint8_t> bytes = EncodeCanonical(m);
    auto decoded = DecodeCanonical(bytes);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
    EXPECT_EQ(*decoded, m);
    EXPECT_EQ(decoded->header.parent.has_value(), with_parent);
    EXPECT_EQ(EncodeCanonical(*decoded), bytes);
  }
}

TEST(CanonicalTest, ShuffledEntriesSortToTheSameEncodingAndRoot) {
  const Manifest m = RichManifest();
  const std::vector<uint8_t> expected = EncodeCanonical(m);
  std::mt19937 rng(7);
  for (int round = 0; round < 10; ++round) {
    std::vector<size_t> order(m.entries.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    Manifest shuffled;
    shuffled.header = m.header;
    for (size_t i : order) {
      ManifestEntry e = m.entries[i];
      auto run = m.ChunksOf(e);
      e.first_chunk = shuffled.chunks.size();
      shuffled.chunks.insert(shuffled.chunks.end(), run.begin(), run.end());
      shuffled.entries.push_back(std::move(e));
    }
    SortCanonically(shuffled);
    ASSERT_TRUE(ValidateManifest(shuffled).has_value());
    EXPECT_EQ(EncodeCanonical(shuffled), expected);
    EXPECT_EQ(Sha256(EncodeCanonical(shuffled)), Sha256(expected));
  }
}

TEST(CanonicalTest, DifferentManifestsHaveDifferentRoots) {
  Manifest a = RichManifest();
  Manifest b = a;
  b.entries[1].mtime_ns += 1;
  Manifest c = a;
  c.header.parent.reset();
  EXPECT_NE(Sha256(EncodeCanonical(a)), Sha256(EncodeCanonical(b)));
  EXPECT_NE(Sha256(EncodeCanonical(a)), Sha256(EncodeCanonical(c)));
}

TEST(CanonicalTest, RejectsBadMagicAndVersion) {
  std::vector<uint8_t> bytes = EncodeCanonical(RichManifest());
  auto bad = bytes;
  bad[0] = 'X';
  ExpectCorrupt(bad, "bad magic");
  bad = bytes;
  bad[4] = 2;
  ExpectCorrupt(bad, "format version 2", ErrorCode::kUnsupported);
  bad = bytes;
  bad[5] = 1;
  ExpectCorrupt(bad, "format version 257", ErrorCode::kUnsupported);
}

TEST(CanonicalTest, RejectsNonCanonicalParentFields) {
  SpecWriter two;
  two.Raw("FCMF").U16(1).Str16("ds").Str16("v1").I64(0);
  two.U32(64 << 10).U32(256 << 10).U32(1 << 20).U8(2).Raw(Digest{});
  two.U64(0).U64(0);
  ExpectCorrupt(two.bytes(), "has_parent is 2");

  SpecWriter stray;
  stray.Raw("FCMF").U16(1).Str16("ds").Str16("v1").I64(0);
  stray.U32(64 << 10).U32(256 << 10).U32(1 << 20).U8(0).Raw(HashOf("x"));
  stray.U64(0).U64(0);
  ExpectCorrupt(stray.bytes(), "parent root must be all zero");
}

TEST(CanonicalTest, RejectsUnknownEntryTypes) {
  for (uint8_t type : {0, 4, 255}) {
    SpecWriter w;
    w.Header(1, 0).U8(type).U32(0).I64(0).U64(0).Str32("a");
    ExpectCorrupt(w.bytes(), "unknown entry type " + std::to_string(type));
  }
}

TEST(CanonicalTest, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = EncodeCanonical(RichManifest());
  bytes.push_back(0);
  ExpectCorrupt(bytes, "1 trailing bytes");
  SpecWriter w;
  w.Header(1, 0).Dir("a").U8(0);
  ExpectCorrupt(w.bytes(), "trailing");
}

TEST(CanonicalTest, RejectsEveryTruncation) {
  std::vector<uint8_t> bytes = EncodeCanonical(RichManifest());
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto m = DecodeCanonical(ByteSpan(bytes).first(len));
    ASSERT_FALSE(m.has_value()) << "accepted a prefix of length " << len;
    EXPECT_EQ(m.error().code, ErrorCode::kCorrupt) << m.error().ToString();
  }
}

TEST(CanonicalTest, RejectsCountsThatCannotFitBeforeAllocating) {
  for (uint64_t n : {uint64_t{1} << 62, ~uint64_t{0}, uint64_t{1000}}) {
    SpecWriter entries;
    entries.Header(n, 0).Dir("a");
    ExpectCorrupt(entries.bytes(), "cannot fit");
    SpecWriter chunks;
    chunks.Header(1, n).Dir("a");
    ExpectCorrupt(chunks.bytes(), "cannot fit");
  }
}

TEST(CanonicalTest, RejectsChunkCountMismatches) {
  // A file claims more chunks than the header declares.
  SpecWriter more;
  more.Header(1, 1).U8(1).U32(0644).I64(0).U64(2).Str32("f").U32(2);
  more.Raw(HashOf("a")).U32(1).Raw(HashOf("b")).U32(1);
  ExpectCorrupt(more.bytes(), "only 1 of the declared 1");
  // The header declares more chunks than the files list.
  SpecWriter fewer;
  fewer.Header(1, 2).U8(1).U32(0644).I64(0).U64(1).Str32("f").U32(1);
  fewer.Raw(HashOf("a")).U32(1).Raw(HashOf("b")).U32(1);
  ExpectCorrupt(fewer.bytes(), "declares 2 chunks but its files list 1");
}

TEST(CanonicalTest, RejectsLengthsPastTheEnd) {
  SpecWriter path;
  path.Header(1, 0).U8(2).U32(0).I64(0).U64(0).U32(0xffffffff).Raw("a");
  ExpectCorrupt(path.bytes(), "entry path needs 4294967295 bytes");
  SpecWriter target;
  target.Header(1, 0).U8(3).U32(0).I64(0).U64(0).Str32("l").U32(1000);
  ExpectCorrupt(target.bytes(), "symlink target needs 1000 bytes");
  SpecWriter dataset;
  dataset.Raw("FCMF").U16(1).U16(500).Raw("ds");
  ExpectCorrupt(dataset.bytes(), "dataset name needs 500 bytes");
}

TEST(CanonicalTest, ValidatesAfterDecoding) {
  SpecWriter w;
  w.Header(1, 0).Link("l", "../outside");
  auto m = DecodeCanonical(w.bytes());
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code, ErrorCode::kPathRule);
  EXPECT_EQ(m.error().subject, "l");
  SpecWriter bad_name;
  bad_name.Header(0, 0, "../ds");
  ExpectCorrupt(bad_name.bytes(), "invalid dataset name");
}

// Any single-byte change of a canonical encoding is either rejected or
// decodes to a manifest that encodes back to exactly those bytes: the
// encoding of a manifest is unique.
TEST(CanonicalTest, EverySingleByteChangeIsRejectedOrCanonical) {
  const Manifest original = RichManifest();
  const std::vector<uint8_t> bytes = EncodeCanonical(original);
  size_t accepted = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= mask;
      auto m = DecodeCanonical(bad);
      if (!m.has_value()) continue;
      ++accepted;
      EXPECT_EQ(EncodeCanonical(*m), bad) << "offset " << i;
      EXPECT_NE(*m, original) << "offset " << i;
    }
  }
  // Hash bytes, mtimes and such are free-form: many changes are valid.
  EXPECT_GT(accepted, 0u);
}

// 16k files x 256 chunks = 4M chunks, a 1 TiB dataset at 256 KiB chunks
// (about 150 MB encoded). Timing lives in bench/micro/manifest_bench.cc;
// this checks correctness at scale. Smaller in unoptimized and sanitized
// builds.
#if defined(__SANITIZE_ADDRESS__) || !defined(NDEBUG)
constexpr bool kReducedScale = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
constexpr bool kReducedScale = true;
#else
constexpr bool kReducedScale = false;
#endif
#else
constexpr bool kReducedScale = false;
#endif

TEST(CanonicalTest, LargeManifestRoundTrip) {
  const size_t files = 16 * 1024;
  const size_t per_file = kReducedScale ? 8 : 256;
  Manifest m = SyntheticManifest({.files = files, .chunks_per_file = per_file});
  ASSERT_EQ(m.chunks.size(), files * per_file);
  std::vector<uint8_t> bytes = EncodeCanonical(m);
  // Header with "bench/large" and "v1", 128 directories "dNNNN", files
  // "dNNNN/fNNNNNN" with a chunk count, 36 bytes per chunk.
  EXPECT_EQ(bytes.size(), (79 + 11 + 2) + 128 * (25 + 5) +
                              files * (25 + 13 + 4) + m.chunks.size() * 36);
  auto decoded = DecodeCanonical(bytes);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_TRUE(*decoded == m);
}

// --------------------------------------------------------------------------
// Envelope

TEST(EnvelopeTest, SealOpenRoundTrip) {
  SigningKey key = TestKey();
  Manifest m = RichManifest();
  auto sealed = SealManifest(m, key);
  ASSERT_TRUE(sealed.has_value()) << sealed.error().ToString();
  EXPECT_EQ(sealed->root, Sha256(EncodeCanonical(m)));

  auto opened = OpenManifest(sealed->envelope, Trust(key));
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  EXPECT_EQ(opened->manifest, m);
  EXPECT_EQ(opened->root, sealed->root);
  EXPECT_EQ(opened->signer, key.public_key());
}

TEST(EnvelopeTest, LayoutMatchesSpec) {
  SigningKey key = TestKey();
  Manifest m = RichManifest();
  auto sealed = SealManifest(m, key);
  ASSERT_TRUE(sealed.has_value());
  const std::vector<uint8_t>& env = sealed->envelope;
  std::vector<uint8_t> canonical = EncodeCanonical(m);
  ASSERT_GT(env.size(), 144u);
  EXPECT_EQ(std::string(env.begin(), env.begin() + 4), "FCMS");
  EXPECT_EQ(env[4], 1);  // version, little-endian
  EXPECT_EQ(env[5], 0);
  EXPECT_EQ(env[6], 0);  // reserved
  EXPECT_EQ(env[7], 0);
  EXPECT_TRUE(std::equal(env.begin() + 8, env.begin() + 40,
                         key.public_key().bytes.begin()));
  Signature sig;
  std::copy(env.begin() + 40, env.begin() + 104, sig.begin());
  EXPECT_TRUE(key.public_key().Verify(sealed->root, sig));
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = len << 8 | env[104 + i];
  EXPECT_EQ(len, canonical.size());
  // One zstd frame with content size and checksum.
  Digest digest;
  std::copy(env.begin() + 112, env.begin() + 144, digest.bytes.begin());
  const uint8_t* frame = env.data() + 144;
  size_t frame_size = env.size() - 144;
  EXPECT_EQ(digest, Sha256(ByteSpan(frame, frame_size)));
  EXPECT_EQ(ZSTD_findFrameCompressedSize(frame, frame_size), frame_size);
  EXPECT_EQ(ZSTD_getFrameContentSize(frame, frame_size), canonical.size());
  EXPECT_EQ(frame[4] & 0x04, 0x04);  // Content_Checksum_flag
  std::vector<uint8_t> out(canonical.size());
  EXPECT_EQ(ZSTD_decompress(out.data(), out.size(), frame, frame_size),
            canonical.size());
  EXPECT_EQ(out, canonical);
}

TEST(EnvelopeTest, EmptyTrustedSetStillChecksTheSignature) {
  SigningKey key = TestKey();
  auto sealed = SealManifest(RichManifest(), key);
  ASSERT_TRUE(sealed.has_value());
  auto opened = OpenManifest(sealed->envelope, TrustedKeys{});
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  EXPECT_EQ(opened->signer, key.public_key());

  // Swap in another key: the signature no longer matches it.
  std::vector<uint8_t> env = sealed->envelope;
  PublicKey other = TestKey(0x22).public_key();
  std::copy(other.bytes.begin(), other.bytes.end(), env.begin() + 8);
  auto bad = OpenManifest(env, TrustedKeys{});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kSignature);
}

TEST(EnvelopeTest, RefusesUntrustedSigner) {
  SigningKey key = TestKey();
  SigningKey other = TestKey(0x22);
  auto sealed = SealManifest(RichManifest(), other);
  ASSERT_TRUE(sealed.has_value());
  auto opened = OpenManifest(sealed->envelope, Trust(key));
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::kSignature);
  EXPECT_THAT(opened.error().message, HasSubstr("not trusted"));
  EXPECT_THAT(opened.error().message,
              HasSubstr(other.public_key().Fingerprint()));

  TrustedKeys both = Trust(key);
  both.Add(other.public_key());
  EXPECT_TRUE(OpenManifest(sealed->envelope, both).has_value());
}

TEST(EnvelopeTest, SealRefusesInvalidManifest) {
  Manifest m = RichManifest();
  m.entries.back().path = "../escape";
  auto sealed = SealManifest(m, TestKey());
  ASSERT_FALSE(sealed.has_value());
  EXPECT_EQ(sealed.error().code, ErrorCode::kPathRule);
}

// Wraps canonical bytes in an envelope by hand, so tests can sign things
// SealManifest would refuse.
// Recomputes the payload digest (bytes 112..143) of an envelope whose
// payload starts at byte 144, so a test can reach the checks behind it.
std::vector<uint8_t> WithDigest(std::vector<uint8_t> env) {
  env.resize(std::max<size_t>(env.size(), 144));
  Digest d = Sha256(ByteSpan(env).subspan(144));
  std::copy(d.bytes.begin(), d.bytes.end(), env.begin() + 112);
  return env;
}

std::vector<uint8_t> HandSeal(const std::vector<uint8_t>& canonical,
                              const SigningKey& key, uint64_t declared_len,
                              bool checksum = true) {
  Signature sig = key.Sign(Sha256(canonical));
  SpecWriter w;
  w.Raw("FCMS").U16(1).U16(0);
  w.Raw(std::string_view(
      reinterpret_cast<const char*>(key.public_key().bytes.data()), 32));
  w.Raw(std::string_view(reinterpret_cast<const char*>(sig.data()), 64));
  w.U64(declared_len);
  w.Raw(std::string(32, '\0'));  // payload digest, filled in below
  std::vector<uint8_t> env = w.bytes();
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  std::vector<uint8_t> frame(ZSTD_compressBound(canonical.size()));
  size_t n = ZSTD_compress2(cctx, frame.data(), frame.size(), canonical.data(),
                            canonical.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  env.insert(env.end(), frame.begin(), frame.begin() + n);
  return WithDigest(std::move(env));
}

TEST(EnvelopeTest, SignedButInvalidManifestIsStillRejected) {
  SigningKey key = TestKey();
  Manifest m = RichManifest();
  ASSERT_EQ(m.entries[5].path, "current");
  m.entries[5].symlink_target = "../../etc";
  std::vector<uint8_t> canonical = EncodeCanonical(m);
  auto opened =
      OpenManifest(HandSeal(canonical, key, canonical.size()), Trust(key));
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::kPathRule);
  EXPECT_EQ(opened.error().subject, "current");
}

TEST(EnvelopeTest, HandSealedValidManifestOpens) {
  // The envelope format is what the spec says: an independent writer's
  // envelope opens.
  SigningKey key = TestKey();
  std::vector<uint8_t> canonical = EncodeCanonical(RichManifest());
  auto opened =
      OpenManifest(HandSeal(canonical, key, canonical.size()), Trust(key));
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  EXPECT_EQ(opened->manifest, RichManifest());
}

TEST(EnvelopeTest, RejectsHeaderProblems) {
  SigningKey key = TestKey();
  auto sealed = SealManifest(RichManifest(), key);
  ASSERT_TRUE(sealed.has_value());
  auto open = [&](const std::vector<uint8_t>& env) {
    return OpenManifest(env, Trust(key));
  };
  auto env = sealed->envelope;
  env[3] = 'X';
  EXPECT_THAT(open(env).error().message, HasSubstr("bad magic"));
  env = sealed->envelope;
  env[4] = 2;
  EXPECT_EQ(open(env).error().code, ErrorCode::kUnsupported);
  env = sealed->envelope;
  env[7] = 1;
  EXPECT_THAT(open(env).error().message, HasSubstr("reserved"));
  env = sealed->envelope;
  env[104] ^= 1;
  EXPECT_THAT(open(env).error().message, HasSubstr("declares"));
  env = sealed->envelope;
  env[111] = 0x80;
  EXPECT_THAT(open(env).error().message, HasSubstr("exceeds the limit"));
  env = sealed->envelope;
  env.push_back(0);
  EXPECT_THAT(open(env).error().message, HasSubstr("digest"));
  env = sealed->envelope;
  env[120] ^= 1;
  EXPECT_THAT(open(env).error().message, HasSubstr("digest"));
  // Behind a matching digest: two frames, the second is trailing data.
  env = sealed->envelope;
  env.insert(env.end(), sealed->envelope.begin() + 144, sealed->envelope.end());
  EXPECT_THAT(open(WithDigest(env)).error().message, HasSubstr("trailing"));
}

TEST(EnvelopeTest, FrameWithoutChecksumIsAcceptedWhenSigned) {
  // The signature covers the content; the zstd checksum is a fast first
  // line of defence, not a requirement.
  SigningKey key = TestKey();
  std::vector<uint8_t> canonical = EncodeCanonical(RichManifest());
  auto opened = OpenManifest(HandSeal(canonical, key, canonical.size(), false),
                             Trust(key));
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
}

TEST(EnvelopeTest, LyingContentSizeDoesNotAllocateItUpFront) {
  // A 30-byte frame that declares 3 GiB: rejected quickly, without
  // allocating 3 GiB (this would be slow or die under the sanitizers).
  SigningKey key = TestKey();
  const uint64_t claimed = uint64_t{3} << 30;
  SpecWriter w;
  w.Raw("FCMS").U16(1).U16(0);
  w.Raw(std::string_view(
      reinterpret_cast<const char*>(key.public_key().bytes.data()), 32));
  w.Raw(std::string(64, '\0'));
  w.U64(claimed);
  w.Raw(std::string(32, '\0'));  // payload digest
  // zstd frame: magic, descriptor (8-byte content size, checksum), window
  // descriptor (2^20), content size, one raw last block of 5 bytes.
  w.U32(0xFD2FB528).U8(0xC4).U8(0x50).U64(claimed);
  w.U8(0x29).U8(0).U8(0).Raw("hello");
  struct rusage before, after;
  ::getrusage(RUSAGE_SELF, &before);
  auto opened = OpenManifest(WithDigest(w.bytes()), Trust(key));
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::kCorrupt);
  // Peak resident memory grew by far less than the claimed size.
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 256 * 1024);  // KiB
}

TEST(EnvelopeTest, RejectsEveryTruncation) {
  SigningKey key = TestKey();
  auto sealed = SealManifest(RichManifest(), key);
  ASSERT_TRUE(sealed.has_value());
  const std::vector<uint8_t>& env = sealed->envelope;
  for (size_t len = 0; len < env.size(); ++len) {
    auto opened = OpenManifest(ByteSpan(env).first(len), Trust(key));
    ASSERT_FALSE(opened.has_value()) << "accepted a prefix of length " << len;
  }
}

// Flips bits at every offset of a sealed envelope (xor 0xff and each single
// bit) and opens it with trusted keys: every change is refused (decode,
// digest or signature error), never a crash. The payload digest is what
// catches the flips inside compressed blocks that zstd would decode to the
// very bytes that were signed (LZ77 data is malleable).
TEST(EnvelopeTest, RejectsEverySingleByteCorruption) {
  SigningKey key = TestKey();
  TrustedKeys trusted = Trust(key);
  const Manifest m = RichManifest();
  auto sealed = SealManifest(m, key);
  ASSERT_TRUE(sealed.has_value());
  const std::vector<uint8_t>& env = sealed->envelope;
  ASSERT_GT(env.size(), 300u);
  std::vector<uint8_t> masks = {0xff};
  for (int bit = 0; bit < 8; ++bit) masks.push_back(uint8_t(1u << bit));
  std::vector<uint8_t> bad = env;
  for (size_t i = 0; i < env.size(); ++i) {
    for (uint8_t mask : masks) {
      bad[i] = env[i] ^ mask;
      auto opened = OpenManifest(bad, trusted);
      ASSERT_FALSE(opened.has_value()) << "offset " << i << " xor 0x"
                                       << std::hex << int{mask} << " accepted";
      ErrorCode c = opened.error().code;
      EXPECT_TRUE(c == ErrorCode::kCorrupt || c == ErrorCode::kSignature ||
                  c == ErrorCode::kUnsupported)
          << opened.error().ToString();
    }
    bad[i] = env[i];
  }
}

}  // namespace
}  // namespace fleetcast
