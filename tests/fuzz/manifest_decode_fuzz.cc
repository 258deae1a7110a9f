// libFuzzer target for the manifest decoders, which take hostile input:
// DecodeCanonical on the raw bytes and OpenManifest on the same bytes as an
// envelope (with the seed corpus's key trusted, and with no trusted keys).
//
// Beyond "no crash, no sanitizer report" it checks two properties:
//  - whatever DecodeCanonical accepts is valid and re-encodes to exactly the
//    input (the canonical encoding of a manifest is unique);
//  - whatever OpenManifest accepts has root == Sha256(canonical encoding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/manifest_codec.h"
#include "core/path_rules.h"
#include "fuzz_manifests.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fleetcast;
  static const TrustedKeys trusted = [] {
    TrustedKeys t;
    t.Add(fuzz::FuzzKey().public_key());
    return t;
  }();
  static const TrustedKeys none;
  ByteSpan input(data, size);

  if (auto m = DecodeCanonical(input)) {
    Check(ValidateManifest(*m).has_value());
    std::vector<uint8_t> again = EncodeCanonical(*m);
    Check(again.size() == size && std::equal(again.begin(), again.end(), data));
  }
  for (const TrustedKeys* keys : {&trusted, &none}) {
    if (auto opened = OpenManifest(input, *keys)) {
      Check(opened->root == Sha256(EncodeCanonical(opened->manifest)));
      Check(keys->empty() || keys->Contains(opened->signer));
    }
  }
  return 0;
}
