// SHA-256 digests: the names of chunks and versions.
//
// Digest is a 32-byte value type with hex conversion, ordering and hashing
// so it can key maps. Sha256() hashes a buffer in one call; Sha256Hasher
// hashes a stream incrementally. Both use OpenSSL's EVP interface, which
// picks the SHA-NI / AVX2 implementation at run time.
//
// Thread-safety: Digest and Sha256() are safe from any thread. A
// Sha256Hasher must be used by one thread at a time.
#ifndef FLEETCAST_CORE_SHA256_H_
#define FLEETCAST_CORE_SHA256_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace fleetcast {

using ByteSpan = std::span<const uint8_t>;

inline ByteSpan AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Digest {
  static constexpr size_t kSize = 32;
  std::array<uint8_t, kSize> bytes{};

  // 64 lowercase hex characters.
  std::string Hex() const;
  // The first 12 hex characters, used in directory names and logs.
  std::string ShortHex() const { return Hex().substr(0, 12); }
  // Accepts exactly 64 hex characters (either case).
  static Result<Digest> FromHex(std::string_view hex);

  auto operator<=>(const Digest&) const = default;
  bool operator==(const Digest&) const = default;
};

// SHA-256 of `data`.
Digest Sha256(ByteSpan data);

// Incremental SHA-256. Move-only.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(ByteSpan data);
  // Returns the digest and resets the hasher for reuse.
  Digest Finish();

 private:
  EVP_MD_CTX* ctx_;
};

// Lowercase hex of arbitrary bytes.
std::string ToHex(ByteSpan data);

}  // namespace fleetcast

template <>
struct std::hash<fleetcast::Digest> {
  size_t operator()(const fleetcast::Digest& d) const noexcept {
    // SHA-256 output is uniformly distributed: any 8 bytes make a good hash.
    size_t h;
    std::memcpy(&h, d.bytes.data(), sizeof h);
    return h;
  }
};

#endif  // FLEETCAST_CORE_SHA256_H_
