// Ed25519 keys and signatures over manifest roots (OpenSSL).
//
// The publisher signs the message "fleetcast-manifest-v1\0" || root (a
// domain-separated 54-byte message); agents and verify accept a manifest
// only when its signature verifies against one of their trusted keys.
//
// Key generation needs randomness; core takes no global randomness, so the
// caller supplies the 32-byte seed (the edge reads it from the OS).
//
// Key files are text (so they survive copy-paste and config management):
//   private: "fleetcast-ed25519-private <64 hex>\n"   (the seed)
//   public:  "fleetcast-ed25519 <64 hex>\n"
// FromText accepts surrounding whitespace and either hex case; anything else
// is kInvalidArgument (errors never echo a private key).
//
// Thread-safety: SigningKey and PublicKey are immutable values after
// construction; Sign/Verify may be called from any thread.
#ifndef FLEETCAST_CORE_SIGNING_H_
#define FLEETCAST_CORE_SIGNING_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"

namespace fleetcast {

using Signature = std::array<uint8_t, 64>;

struct PublicKey {
  std::array<uint8_t, 32> bytes{};

  std::string ToText() const;  // key file contents, with trailing newline
  static Result<PublicKey> FromText(std::string_view text);
  // Short fingerprint for display: first 16 hex of SHA-256 of the key.
  std::string Fingerprint() const;
  bool Verify(const Digest& root, const Signature& sig) const;

  bool operator==(const PublicKey&) const = default;
};

class SigningKey {
 public:
  static Result<SigningKey> FromSeed(std::span<const uint8_t, 32> seed);
  static Result<SigningKey> FromText(std::string_view text);

  std::string ToText() const;
  const PublicKey& public_key() const { return public_; }
  Signature Sign(const Digest& root) const;

 private:
  std::array<uint8_t, 32> seed_{};
  PublicKey public_;
};

// The set of keys an agent or verifier trusts.
class TrustedKeys {
 public:
  void Add(const PublicKey& key) { keys_.push_back(key); }
  bool empty() const { return keys_.empty(); }
  bool Contains(const PublicKey& key) const;

 private:
  std::vector<PublicKey> keys_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_SIGNING_H_
