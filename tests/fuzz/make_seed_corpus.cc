// Writes the seed corpus of manifest_decode_fuzz: the canonical encoding
// and the sealed envelope of each manifest in fuzz_manifests.h.
//
// Usage: make_seed_corpus DIR   (DIR is created if needed)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/manifest_codec.h"
#include "fuzz_manifests.h"

namespace {

bool WriteFile(const std::filesystem::path& path,
               const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fleetcast;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path dir(argv[1]);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "cannot create %s: %s\n", argv[1],
                 ec.message().c_str());
    return 1;
  }
  int index = 0;
  for (const Manifest& m : fuzz::SeedManifests()) {
    auto sealed = SealManifest(m, fuzz::FuzzKey());
    if (!sealed) {
      std::fprintf(stderr, "seed manifest %d is invalid: %s\n", index,
                   sealed.error().ToString().c_str());
      return 1;
    }
    std::string stem = "seed-" + std::to_string(index);
    if (!WriteFile(dir / (stem + ".fcmf"), EncodeCanonical(m)) ||
        !WriteFile(dir / (stem + ".fcms"), sealed->envelope)) {
      std::fprintf(stderr, "cannot write to %s\n", argv[1]);
      return 1;
    }
    ++index;
  }
  std::printf("wrote %d canonical manifests and %d envelopes to %s\n", index,
              index, argv[1]);
  return 0;
}
