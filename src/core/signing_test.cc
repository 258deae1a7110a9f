#include "core/signing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <array>
#include <cctype>
#include <string>
#include <vector>

#include "core/manifest_test_support.h"

namespace fleetcast {
namespace {

using ::fleetcast::testing::FixedKey;
using ::fleetcast::testing::SeedSequence;
using ::testing::HasSubstr;
using ::testing::Not;

// Seed bytes fill, fill + 1, fill + 2, ...
std::array<uint8_t, 32> Seed(uint8_t fill) { return SeedSequence(fill, 1); }

SigningKey KeyFromSeed(uint8_t fill) { return FixedKey(Seed(fill)); }

std::array<uint8_t, 32> FromHex32(std::string_view hex) {
  auto d = Digest::FromHex(hex);
  EXPECT_TRUE(d.has_value());
  return d->bytes;
}

// RFC 8032, section 7.1, TEST 1.
constexpr std::string_view kRfcSeed =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kRfcPublic =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

TEST(SigningKeyTest, DerivesPublicKeyPerRfc8032) {
  auto seed = FromHex32(kRfcSeed);
  auto key = SigningKey::FromSeed(seed);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(ToHex(key->public_key().bytes), kRfcPublic);
}

TEST(SigningKeyTest, SignsTheDomainSeparatedMessage) {
  SigningKey key = KeyFromSeed(1);
  Digest root = Sha256(AsBytes("some canonical manifest"));
  Signature sig = key.Sign(root);

  // Verify with OpenSSL directly over the documented 54-byte message.
  std::string msg("fleetcast-manifest-v1", 21);
  msg.push_back('\0');
  msg.append(reinterpret_cast<const char*>(root.bytes.data()), 32);
  ASSERT_EQ(msg.size(), 54u);
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, key.public_key().bytes.data(), 32);
  ASSERT_NE(pkey, nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx, sig.data(), sig.size(),
                             reinterpret_cast<const uint8_t*>(msg.data()),
                             msg.size()),
            1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
}

TEST(SigningKeyTest, SignVerifyRoundTripAndDeterminism) {
  SigningKey key = KeyFromSeed(1);
  Digest root = Sha256(AsBytes("root"));
  Signature sig = key.Sign(root);
  EXPECT_TRUE(key.public_key().Verify(root, sig));
  EXPECT_EQ(key.Sign(root), sig);  // Ed25519 is deterministic.
}

TEST(SigningKeyTest, VerifyRejectsWrongRootSignatureOrKey) {
  SigningKey key = KeyFromSeed(1);
  SigningKey other = KeyFromSeed(2);
  Digest root = Sha256(AsBytes("root"));
  Signature sig = key.Sign(root);

  Digest other_root = root;
  other_root.bytes[31] ^= 1;
  EXPECT_FALSE(key.public_key().Verify(other_root, sig));
  EXPECT_FALSE(other.public_key().Verify(root, sig));
  for (size_t i = 0; i < sig.size(); ++i) {
    Signature bad = sig;
    bad[i] ^= 0x01;
    EXPECT_FALSE(key.public_key().Verify(root, bad)) << "byte " << i;
  }
  Signature zero{};
  EXPECT_FALSE(key.public_key().Verify(root, zero));
}

TEST(SigningKeyTest, VerifyWithGarbagePublicKeyFailsCleanly) {
  Digest root = Sha256(AsBytes("root"));
  Signature sig = KeyFromSeed(1).Sign(root);
  PublicKey garbage;
  garbage.bytes.fill(0xff);
  EXPECT_FALSE(garbage.Verify(root, sig));
  PublicKey zero;
  EXPECT_FALSE(zero.Verify(root, sig));
}

TEST(KeyTextTest, PublicKeyRoundTrip) {
  PublicKey pub = KeyFromSeed(3).public_key();
  std::string text = pub.ToText();
  EXPECT_EQ(text, "fleetcast-ed25519 " + ToHex(pub.bytes) + "\n");
  auto parsed = PublicKey::FromText(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, pub);
}

TEST(KeyTextTest, PrivateKeyRoundTrip) {
  auto seed = FromHex32(kRfcSeed);
  auto key = SigningKey::FromSeed(seed);
  ASSERT_TRUE(key.has_value());
  std::string text = key->ToText();
  EXPECT_EQ(text, "fleetcast-ed25519-private " + std::string(kRfcSeed) + "\n");
  auto parsed = SigningKey::FromText(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->public_key(), key->public_key());
  EXPECT_EQ(parsed->ToText(), text);
  Digest root = Sha256(AsBytes("x"));
  EXPECT_EQ(parsed->Sign(root), key->Sign(root));
}

TEST(KeyTextTest, ToleratesSurroundingWhitespaceAndUppercase) {
  PublicKey pub = KeyFromSeed(4).public_key();
  std::string hex = ToHex(pub.bytes);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  for (std::string text :
       {"fleetcast-ed25519 " + hex, "fleetcast-ed25519 " + hex + "\r\n",
        "  fleetcast-ed25519 " + hex + "\n\n", "fleetcast-ed25519 " + upper}) {
    auto parsed = PublicKey::FromText(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, pub);
  }
}

TEST(KeyTextTest, PublicFromTextRejectsMalformedText) {
  std::string hex = ToHex(KeyFromSeed(5).public_key().bytes);
  struct Case {
    std::string text;
    std::string what;
  };
  for (const Case& c : std::vector<Case>{
           {"", "not a fleetcast Ed25519 public key"},
           {"\n", "not a fleetcast Ed25519 public key"},
           {hex, "not a fleetcast Ed25519 public key"},
           {"ssh-ed25519 " + hex, "not a fleetcast Ed25519 public key"},
           {"fleetcast-ed25519" + hex, "not a fleetcast Ed25519 public key"},
           {"fleetcast-ed25519  " + hex, "64 hex characters"},
           {"fleetcast-ed25519 " + hex.substr(1), "found 63"},
           {"fleetcast-ed25519 " + hex + "0", "found 65"},
           {"fleetcast-ed25519 " + hex + " comment", "64 hex characters"},
           {"fleetcast-ed25519 " + hex + "\nfleetcast-ed25519 " + hex,
            "64 hex characters"},
           {"fleetcast-ed25519 " + hex.substr(0, 63) + "g", "non-hex"},
           {"fleetcast-ed25519-private " + hex, "private key, not a public"},
       }) {
    auto parsed = PublicKey::FromText(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(parsed.error().message, HasSubstr(c.what)) << c.text;
  }
}

TEST(KeyTextTest, PrivateFromTextRejectsMalformedTextWithoutEchoingIt) {
  std::string hex = ToHex(Seed(6));
  struct Case {
    std::string text;
    std::string what;
  };
  for (const Case& c : std::vector<Case>{
           {"", "not a fleetcast Ed25519 private key"},
           {hex, "not a fleetcast Ed25519 private key"},
           {"fleetcast-ed25519-private " + hex.substr(2), "found 62"},
           {"fleetcast-ed25519-private " + hex.substr(0, 63) + "z", "non-hex"},
           {"fleetcast-ed25519 " + hex, "public key, not a private"},
       }) {
    auto parsed = SigningKey::FromText(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(parsed.error().message, HasSubstr(c.what)) << c.text;
    // The secret must not leak into logs through the error.
    EXPECT_THAT(parsed.error().ToString(), Not(HasSubstr(hex.substr(2, 40))));
  }
}

TEST(KeyTextTest, Fingerprint) {
  PublicKey pub = KeyFromSeed(7).public_key();
  std::string fp = pub.Fingerprint();
  EXPECT_EQ(fp.size(), 16u);
  EXPECT_EQ(fp, Sha256(pub.bytes).Hex().substr(0, 16));
  EXPECT_NE(fp, KeyFromSeed(8).public_key().Fingerprint());
}

TEST(TrustedKeysTest, Contains) {
  TrustedKeys trusted;
  EXPECT_TRUE(trusted.empty());
  PublicKey a = KeyFromSeed(1).public_key();
  PublicKey b = KeyFromSeed(2).public_key();
  EXPECT_FALSE(trusted.Contains(a));
  trusted.Add(a);
  EXPECT_FALSE(trusted.empty());
  EXPECT_TRUE(trusted.Contains(a));
  EXPECT_FALSE(trusted.Contains(b));
}

}  // namespace
}  // namespace fleetcast
