#include "core/signing.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace fleetcast {
namespace {

constexpr std::string_view kPrivatePrefix = "fleetcast-ed25519-private ";
constexpr std::string_view kPublicPrefix = "fleetcast-ed25519 ";
// The signed message is kDomain, a NUL byte, then the 32-byte root.
constexpr std::string_view kDomain = "fleetcast-manifest-v1";
constexpr size_t kMessageBytes = kDomain.size() + 1 + Digest::kSize;
static_assert(kMessageBytes == 54);

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::array<uint8_t, kMessageBytes> SignedMessage(const Digest& root) {
  std::array<uint8_t, kMessageBytes> msg{};
  std::memcpy(msg.data(), kDomain.data(), kDomain.size());
  msg[kDomain.size()] = 0;
  std::memcpy(msg.data() + kDomain.size() + 1, root.bytes.data(),
              Digest::kSize);
  return msg;
}

std::string_view TrimAsciiSpace(std::string_view s) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses "<prefix><64 hex>" surrounded by optional ASCII whitespace. `kind`
// names the expected key kind in errors; the text itself is never echoed
// (it may be a secret).
Result<std::array<uint8_t, 32>> ParseKeyText(std::string_view text,
                                             std::string_view prefix,
                                             std::string_view other_prefix,
                                             std::string_view kind,
                                             std::string_view other_kind) {
  std::string_view s = TrimAsciiSpace(text);
  std::string expected =
      fmt::format("expected '{}<64 hex characters>'", prefix);
  if (s.starts_with(other_prefix)) {
    return MakeError(
        ErrorCode::kInvalidArgument, std::string(kind),
        fmt::format("this is an Ed25519 {}, not a {}", other_kind, kind));
  }
  if (!s.starts_with(prefix)) {
    return MakeError(
        ErrorCode::kInvalidArgument, std::string(kind),
        fmt::format("not a fleetcast Ed25519 {}: {}", kind, expected));
  }
  s.remove_prefix(prefix.size());
  if (s.size() != 64) {
    return MakeError(
        ErrorCode::kInvalidArgument, std::string(kind),
        fmt::format("key must be 64 hex characters, found {} characters "
                    "after the prefix ({})",
                    s.size(), expected));
  }
  std::array<uint8_t, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) {
    int hi = HexValue(s[2 * i]);
    int lo = HexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return MakeError(
          ErrorCode::kInvalidArgument, std::string(kind),
          fmt::format("key has a non-hex character ({})", expected));
    }
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return bytes;
}

PkeyPtr PrivateKeyFromSeed(std::span<const uint8_t, 32> seed) {
  return PkeyPtr(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                              seed.data(), seed.size()));
}

}  // namespace

std::string PublicKey::ToText() const {
  return fmt::format("{}{}\n", kPublicPrefix, ToHex(bytes));
}

Result<PublicKey> PublicKey::FromText(std::string_view text) {
  auto bytes = ParseKeyText(text, kPublicPrefix, kPrivatePrefix, "public key",
                            "private key");
  if (!bytes) return std::unexpected(bytes.error());
  PublicKey key;
  key.bytes = *bytes;
  return key;
}

std::string PublicKey::Fingerprint() const {
  return Sha256(bytes).Hex().substr(0, 16);
}

bool PublicKey::Verify(const Digest& root, const Signature& sig) const {
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           bytes.data(), bytes.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = false;
  if (pkey != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) ==
          1) {
    auto msg = SignedMessage(root);
    ok = EVP_DigestVerify(ctx.get(), sig.data(), sig.size(), msg.data(),
                          msg.size()) == 1;
  }
  // A failed verification leaves entries on this thread's OpenSSL error
  // queue; drop them so they are not blamed on a later, unrelated call.
  if (!ok) ERR_clear_error();
  return ok;
}

Result<SigningKey> SigningKey::FromSeed(std::span<const uint8_t, 32> seed) {
  PkeyPtr pkey = PrivateKeyFromSeed(seed);
  size_t len = 32;
  SigningKey key;
  if (pkey == nullptr ||
      EVP_PKEY_get_raw_public_key(pkey.get(), key.public_.bytes.data(), &len) !=
          1 ||
      len != 32) {
    ERR_clear_error();
    return MakeError(ErrorCode::kInternal, "Ed25519",
                     "OpenSSL could not derive an Ed25519 key from the seed");
  }
  std::copy(seed.begin(), seed.end(), key.seed_.begin());
  return key;
}

Result<SigningKey> SigningKey::FromText(std::string_view text) {
  auto seed = ParseKeyText(text, kPrivatePrefix, kPublicPrefix, "private key",
                           "public key");
  if (!seed) return std::unexpected(seed.error());
  auto key = FromSeed(std::span<const uint8_t, 32>(*seed));
  OPENSSL_cleanse(seed->data(), seed->size());
  return key;
}

std::string SigningKey::ToText() const {
  return fmt::format("{}{}\n", kPrivatePrefix, ToHex(seed_));
}

Signature SigningKey::Sign(const Digest& root) const {
  PkeyPtr pkey = PrivateKeyFromSeed(seed_);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  Signature sig{};
  size_t len = sig.size();
  auto msg = SignedMessage(root);
  // With a key that FromSeed accepted these fail only when memory runs out;
  // Sign has no error channel, so treat that like a failed allocation.
  if (pkey == nullptr || ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &len, msg.data(), msg.size()) !=
          1 ||
      len != sig.size()) {
    std::abort();
  }
  return sig;
}

bool TrustedKeys::Contains(const PublicKey& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

}  // namespace fleetcast
