// Canonical binary encoding of manifests and the signed, compressed
// envelope in which they are stored and sent. The byte-level format is
// specified in docs/manifest-format.md.
//
// EncodeCanonical() is a pure function of a canonical manifest; the root
// hash of a version is Sha256(EncodeCanonical(m)). The envelope carries the
// signer's public key, an Ed25519 signature over the root, the SHA-256 of
// the compressed payload and the canonical bytes compressed with zstd (frame
// checksum on).
//
// Decoding treats its input as hostile: every length is bounded by the
// remaining input before anything is allocated, the result must pass
// ValidateManifest(), and trailing bytes are an error. Errors have code
// kCorrupt (malformed), kPathRule (bad path), kSignature, or kUnsupported
// (a format or envelope version this build does not know).
//
// Thread-safety: pure functions.
#ifndef FLEETCAST_CORE_MANIFEST_CODEC_H_
#define FLEETCAST_CORE_MANIFEST_CODEC_H_

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"
#include "core/sha256.h"
#include "core/signing.h"

namespace fleetcast {

inline constexpr uint16_t kManifestFormatVersion = 1;
// Upper bound on a decoded canonical manifest (a 1 TiB dataset of 256 KiB
// chunks encodes to about 160 MB).
inline constexpr uint64_t kMaxCanonicalManifestBytes = 4ull << 30;

// Precondition: ValidateManifest(m) succeeded. On a manifest that breaks it
// the output is unspecified but the call is memory-safe (tests use this to
// craft invalid encodings).
std::vector<uint8_t> EncodeCanonical(const Manifest& m);
Result<Manifest> DecodeCanonical(ByteSpan bytes);

struct SealedManifest {
  Digest root;
  std::vector<uint8_t> envelope;  // what is stored on disk and sent
};

// Validates, encodes, hashes, signs and compresses.
Result<SealedManifest> SealManifest(const Manifest& m, const SigningKey& key);

struct OpenedManifest {
  Manifest manifest;
  Digest root;
  PublicKey signer;
};

// Decompresses, hashes and checks the signature. With a non-empty `trusted`,
// the signer must be one of them (else kSignature). With an empty set the
// signature is still checked against the embedded signer key, which proves
// integrity but not origin; callers that act on the data must pass keys.
Result<OpenedManifest> OpenManifest(ByteSpan envelope,
                                    const TrustedKeys& trusted);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_MANIFEST_CODEC_H_
