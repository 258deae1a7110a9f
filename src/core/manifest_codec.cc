#include "core/manifest_codec.h"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "core/path_rules.h"

namespace fleetcast {
namespace {

// Layout constants; docs/manifest-format.md is the specification.
constexpr uint8_t kCanonicalMagic[4] = {'F', 'C', 'M', 'F'};
constexpr uint8_t kEnvelopeMagic[4] = {'F', 'C', 'M', 'S'};
constexpr uint16_t kEnvelopeVersion = 1;
// magic, version, reserved, signer key, signature, canonical length,
// payload digest.
constexpr size_t kEnvelopeHeaderBytes = 4 + 2 + 2 + 32 + 64 + 8 + 32;
static_assert(kEnvelopeHeaderBytes == 144);
// magic, version, dataset length, label length, created, chunking (3 x u32),
// has_parent, parent root, entry count, chunk count.
constexpr size_t kFixedHeaderBytes = 4 + 2 + 2 + 2 + 8 + 12 + 1 + 32 + 8 + 8;
// type, mode, mtime, size, path length: every entry has these.
constexpr size_t kEntryFixedBytes = 1 + 4 + 8 + 8 + 4;
// hash, length.
constexpr size_t kChunkRecordBytes = 32 + 4;
// Chunk hashes are incompressible, so only paths shrink; levels 1 and 3
// take the same time on a 150 MB manifest (~0.5 s, single-threaded; see
// bench/micro/manifest_bench.cc) and 3 compresses paths better.
constexpr int kZstdLevel = 3;

std::unexpected<Error> Corrupt(std::string subject, std::string message) {
  return MakeError(ErrorCode::kCorrupt, std::move(subject), std::move(message));
}

// Little-endian stores into a buffer whose size was computed in advance.
// The shift form compiles to plain stores on little-endian machines.
class Writer {
 public:
  explicit Writer(uint8_t* p) : p_(p) {}
  void U8(uint8_t v) { *p_++ = v; }
  void U16(uint16_t v) {
    p_[0] = static_cast<uint8_t>(v);
    p_[1] = static_cast<uint8_t>(v >> 8);
    p_ += 2;
  }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) p_[i] = static_cast<uint8_t>(v >> (8 * i));
    p_ += 4;
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) p_[i] = static_cast<uint8_t>(v >> (8 * i));
    p_ += 8;
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void Bytes(const void* data, size_t n) {
    if (n != 0) std::memcpy(p_, data, n);
    p_ += n;
  }
  void Zeros(size_t n) {
    std::memset(p_, 0, n);
    p_ += n;
  }
  uint8_t* pos() const { return p_; }

 private:
  uint8_t* p_;
};

uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t LoadU64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadU32(p)) |
         static_cast<uint64_t>(LoadU32(p + 4)) << 32;
}

// Bounds-checked little-endian reads. Need() checks that n bytes remain;
// the typed reads after it are unchecked.
class Reader {
 public:
  explicit Reader(ByteSpan bytes)
      : p_(bytes.data()),
        end_(bytes.data() + bytes.size()),
        begin_(bytes.data()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  Status Need(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return {};
    return Corrupt("manifest",
                   fmt::format("truncated: {} needs {} bytes at offset {}, "
                               "only {} remain",
                               what, n, offset(), remaining()));
  }

  uint8_t U8() { return *p_++; }
  uint16_t U16() {
    uint16_t v = LoadU16(p_);
    p_ += 2;
    return v;
  }
  uint32_t U32() {
    uint32_t v = LoadU32(p_);
    p_ += 4;
    return v;
  }
  uint64_t U64() {
    uint64_t v = LoadU64(p_);
    p_ += 8;
    return v;
  }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  const uint8_t* Take(size_t n) {
    const uint8_t* p = p_;
    p_ += n;
    return p;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
};

// Reads a string with a u16 (header) or u32 (entry) length prefix.
template <typename LengthT>
Result<std::string> ReadString(Reader& r, std::string_view what) {
  if (auto st = r.Need(sizeof(LengthT), what); !st) {
    return std::unexpected(st.error());
  }
  uint64_t n = sizeof(LengthT) == 2 ? r.U16() : r.U32();
  if (auto st = r.Need(n, what); !st) return std::unexpected(st.error());
  const uint8_t* p = r.Take(static_cast<size_t>(n));
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

// The chunk run of a file entry, clipped to the chunks that exist so that
// encoding a manifest that breaks the precondition stays memory-safe.
std::span<const ChunkRef> ClippedRun(const Manifest& m,
                                     const ManifestEntry& e) {
  if (e.type != EntryType::kFile || e.first_chunk >= m.chunks.size()) {
    return {};
  }
  uint64_t n =
      std::min<uint64_t>(e.chunk_count, m.chunks.size() - e.first_chunk);
  return std::span<const ChunkRef>(m.chunks).subspan(
      static_cast<size_t>(e.first_chunk), static_cast<size_t>(n));
}

// Header strings longer than a u16 can hold are invalid anyway (dataset
// <= 255 bytes, label <= 128); they are clipped so that the output of
// EncodeCanonical stays self-consistent.
uint16_t HeaderStringLength(const std::string& s) {
  return static_cast<uint16_t>(std::min<size_t>(s.size(), 0xffff));
}

size_t EncodedSize(const Manifest& m) {
  size_t n = kFixedHeaderBytes + HeaderStringLength(m.header.dataset) +
             HeaderStringLength(m.header.label);
  for (const ManifestEntry& e : m.entries) {
    n += kEntryFixedBytes + e.path.size();
    if (e.type == EntryType::kSymlink) n += 4 + e.symlink_target.size();
    if (e.type == EntryType::kFile) {
      n += 4 + kChunkRecordBytes * ClippedRun(m, e).size();
    }
  }
  return n;
}

struct ZstdDctxFree {
  void operator()(ZSTD_DCtx* p) const { ZSTD_freeDCtx(p); }
};
struct ZstdCctxFree {
  void operator()(ZSTD_CCtx* p) const { ZSTD_freeCCtx(p); }
};

// Decompresses exactly one zstd frame that must produce `expected` bytes.
// The output grows as data actually arrives instead of trusting the
// declared size up front, so a small hostile envelope cannot make us
// allocate gigabytes.
Result<std::vector<uint8_t>> DecompressFrame(ByteSpan frame,
                                             uint64_t expected) {
  unsigned long long declared =
      ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return Corrupt("manifest envelope", "payload is not a zstd frame");
  }
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return Corrupt("manifest envelope",
                   "zstd frame does not declare its content size");
  }
  if (declared != expected) {
    return Corrupt("manifest envelope",
                   fmt::format("zstd frame declares {} bytes but the envelope "
                               "says {}",
                               declared, expected));
  }
  // zstd ignores the "unused" bit of the frame header descriptor; refuse it
  // so that a flip there does not go unnoticed. (getFrameContentSize
  // succeeded, so the descriptor byte is present.)
  if (frame.size() > 4 && (frame[4] & 0x10) != 0) {
    return Corrupt("manifest envelope",
                   "zstd frame header has its unused bit set");
  }
  std::unique_ptr<ZSTD_DCtx, ZstdDctxFree> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) {
    return MakeError(ErrorCode::kInternal, "zstd", "cannot allocate context");
  }
  std::vector<uint8_t> out;
  // Real manifests are mostly hashes and compress little, so this is
  // usually the final size.
  uint64_t initial = std::max<uint64_t>(64 << 10, 8 * uint64_t{frame.size()});
  out.resize(static_cast<size_t>(std::min(expected, initial)));
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  ZSTD_outBuffer o{out.data(), out.size(), 0};
  while (true) {
    size_t in_before = in.pos;
    size_t out_before = o.pos;
    size_t ret = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(ret)) {
      return Corrupt("manifest envelope",
                     fmt::format("zstd: {}", ZSTD_getErrorName(ret)));
    }
    if (ret == 0) break;  // frame complete (checksum verified)
    if (o.pos == o.size && o.size < expected) {
      size_t next = static_cast<size_t>(
          std::min<uint64_t>(expected, 2 * uint64_t{o.size}));
      out.resize(next);
      o.dst = out.data();
      o.size = out.size();
      continue;
    }
    if (in.pos == in.size || (in.pos == in_before && o.pos == out_before)) {
      return Corrupt("manifest envelope",
                     "zstd frame is truncated or longer than declared");
    }
  }
  if (o.pos != expected) {
    return Corrupt(
        "manifest envelope",
        fmt::format("decompressed {} bytes, expected {}", o.pos, expected));
  }
  if (in.pos != in.size) {
    return Corrupt("manifest envelope",
                   fmt::format("{} trailing bytes after the zstd frame",
                               in.size - in.pos));
  }
  out.resize(o.pos);
  return out;
}

}  // namespace

std::vector<uint8_t> EncodeCanonical(const Manifest& m) {
  const ManifestHeader& h = m.header;
  std::vector<uint8_t> out(EncodedSize(m));
  Writer w(out.data());
  w.Bytes(kCanonicalMagic, sizeof kCanonicalMagic);
  w.U16(kManifestFormatVersion);
  const uint16_t dataset_len = HeaderStringLength(h.dataset);
  const uint16_t label_len = HeaderStringLength(h.label);
  w.U16(dataset_len);
  w.Bytes(h.dataset.data(), dataset_len);
  w.U16(label_len);
  w.Bytes(h.label.data(), label_len);
  w.I64(h.created_unix_s);
  w.U32(h.chunking.min_size);
  w.U32(h.chunking.avg_size);
  w.U32(h.chunking.max_size);
  w.U8(h.parent.has_value() ? 1 : 0);
  if (h.parent.has_value()) {
    w.Bytes(h.parent->bytes.data(), Digest::kSize);
  } else {
    w.Zeros(Digest::kSize);
  }
  w.U64(m.entries.size());
  w.U64(m.chunks.size());
  for (const ManifestEntry& e : m.entries) {
    w.U8(static_cast<uint8_t>(e.type));
    w.U32(e.mode);
    w.I64(e.mtime_ns);
    w.U64(e.size);
    w.U32(static_cast<uint32_t>(e.path.size()));
    w.Bytes(e.path.data(), e.path.size());
    if (e.type == EntryType::kSymlink) {
      w.U32(static_cast<uint32_t>(e.symlink_target.size()));
      w.Bytes(e.symlink_target.data(), e.symlink_target.size());
    } else if (e.type == EntryType::kFile) {
      std::span<const ChunkRef> run = ClippedRun(m, e);
      w.U32(static_cast<uint32_t>(run.size()));
      for (const ChunkRef& c : run) {
        w.Bytes(c.hash.bytes.data(), Digest::kSize);
        w.U32(c.length);
      }
    }
  }
  // The size was computed from the same fields; only a mismatch between
  // EncodedSize and this function could break this.
  if (w.pos() != out.data() + out.size()) std::abort();
  return out;
}

Result<Manifest> DecodeCanonical(ByteSpan bytes) {
  Reader r(bytes);
  if (auto st = r.Need(6, "magic and version"); !st) {
    return std::unexpected(st.error());
  }
  if (std::memcmp(r.Take(4), kCanonicalMagic, 4) != 0) {
    return Corrupt("manifest", "not a canonical manifest (bad magic)");
  }
  if (uint16_t version = r.U16(); version != kManifestFormatVersion) {
    return MakeError(ErrorCode::kUnsupported, "manifest",
                     fmt::format("format version {} is not supported (this "
                                 "build reads version {})",
                                 version, kManifestFormatVersion));
  }

  Manifest m;
  ManifestHeader& h = m.header;
  auto dataset = ReadString<uint16_t>(r, "dataset name");
  if (!dataset) return std::unexpected(dataset.error());
  h.dataset = std::move(*dataset);
  auto label = ReadString<uint16_t>(r, "label");
  if (!label) return std::unexpected(label.error());
  h.label = std::move(*label);
  if (auto st = r.Need(8 + 12 + 1 + 32 + 8 + 8, "header fields"); !st) {
    return std::unexpected(st.error());
  }
  h.created_unix_s = r.I64();
  h.chunking.min_size = r.U32();
  h.chunking.avg_size = r.U32();
  h.chunking.max_size = r.U32();
  uint8_t has_parent = r.U8();
  const uint8_t* parent = r.Take(Digest::kSize);
  if (has_parent > 1) {
    return Corrupt("manifest",
                   fmt::format("has_parent is {}, must be 0 or 1", has_parent));
  }
  if (has_parent == 1) {
    Digest d;
    std::memcpy(d.bytes.data(), parent, Digest::kSize);
    h.parent = d;
  } else if (std::any_of(parent, parent + Digest::kSize,
                         [](uint8_t b) { return b != 0; })) {
    return Corrupt("manifest",
                   "parent root must be all zero when has_parent "
                   "is 0");
  }
  const uint64_t entry_count = r.U64();
  const uint64_t chunk_count = r.U64();
  // Every entry takes at least kEntryFixedBytes and every chunk exactly
  // kChunkRecordBytes: check the counts against the input before
  // allocating anything for them.
  if (entry_count > r.remaining() / kEntryFixedBytes ||
      chunk_count > r.remaining() / kChunkRecordBytes ||
      entry_count * kEntryFixedBytes + chunk_count * kChunkRecordBytes >
          r.remaining()) {
    return Corrupt("manifest",
                   fmt::format("{} entries and {} chunks cannot fit in the "
                               "{} remaining bytes",
                               entry_count, chunk_count, r.remaining()));
  }
  m.entries.reserve(static_cast<size_t>(entry_count));
  m.chunks.resize(static_cast<size_t>(chunk_count));

  uint64_t cursor = 0;
  for (uint64_t i = 0; i < entry_count; ++i) {
    if (auto st = r.Need(kEntryFixedBytes, "entry"); !st) {
      return std::unexpected(st.error());
    }
    ManifestEntry& e = m.entries.emplace_back();
    uint8_t type = r.U8();
    if (type < static_cast<uint8_t>(EntryType::kFile) ||
        type > static_cast<uint8_t>(EntryType::kSymlink)) {
      return Corrupt(fmt::format("entry #{}", i),
                     fmt::format("unknown entry type {}", type));
    }
    e.type = static_cast<EntryType>(type);
    e.mode = r.U32();
    e.mtime_ns = r.I64();
    e.size = r.U64();
    uint32_t path_len = r.U32();
    if (auto st = r.Need(path_len, "entry path"); !st) {
      return std::unexpected(st.error());
    }
    e.path.assign(reinterpret_cast<const char*>(r.Take(path_len)), path_len);
    e.first_chunk = cursor;
    if (e.type == EntryType::kSymlink) {
      auto target = ReadString<uint32_t>(r, "symlink target");
      if (!target) return std::unexpected(target.error());
      e.symlink_target = std::move(*target);
    } else if (e.type == EntryType::kFile) {
      if (auto st = r.Need(4, "chunk count"); !st) {
        return std::unexpected(st.error());
      }
      uint32_t n = r.U32();
      if (n > chunk_count - cursor) {
        return Corrupt(e.path,
                       fmt::format("file has {} chunks but only {} of the "
                                   "declared {} are left",
                                   n, chunk_count - cursor, chunk_count));
      }
      if (auto st = r.Need(uint64_t{n} * kChunkRecordBytes, "chunk list");
          !st) {
        return std::unexpected(st.error());
      }
      const uint8_t* p = r.Take(size_t{n} * kChunkRecordBytes);
      ChunkRef* dst = m.chunks.data() + cursor;
      for (uint32_t k = 0; k < n; ++k, p += kChunkRecordBytes) {
        std::memcpy(dst[k].hash.bytes.data(), p, Digest::kSize);
        dst[k].length = LoadU32(p + Digest::kSize);
      }
      e.chunk_count = n;
      cursor += n;
    }
  }
  if (cursor != chunk_count) {
    return Corrupt("manifest", fmt::format("declares {} chunks but its files "
                                           "list {}",
                                           chunk_count, cursor));
  }
  if (r.remaining() != 0) {
    return Corrupt("manifest", fmt::format("{} trailing bytes after the last "
                                           "entry",
                                           r.remaining()));
  }
  if (auto st = ValidateManifest(m); !st) return std::unexpected(st.error());
  return m;
}

Result<SealedManifest> SealManifest(const Manifest& m, const SigningKey& key) {
  if (auto st = ValidateManifest(m); !st) return std::unexpected(st.error());
  std::vector<uint8_t> canonical = EncodeCanonical(m);
  SealedManifest sealed;
  sealed.root = Sha256(canonical);
  Signature sig = key.Sign(sealed.root);

  std::unique_ptr<ZSTD_CCtx, ZstdCctxFree> cctx(ZSTD_createCCtx());
  if (cctx == nullptr ||
      ZSTD_isError(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel,
                                          kZstdLevel)) ||
      ZSTD_isError(
          ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1)) ||
      ZSTD_isError(
          ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1))) {
    return MakeError(ErrorCode::kInternal, "zstd",
                     "cannot set up a compression context");
  }
  size_t bound = ZSTD_compressBound(canonical.size());
  std::vector<uint8_t>& out = sealed.envelope;
  out.resize(kEnvelopeHeaderBytes + bound);
  Writer w(out.data());
  w.Bytes(kEnvelopeMagic, sizeof kEnvelopeMagic);
  w.U16(kEnvelopeVersion);
  w.U16(0);  // reserved
  w.Bytes(key.public_key().bytes.data(), key.public_key().bytes.size());
  w.Bytes(sig.data(), sig.size());
  w.U64(canonical.size());
  size_t n = ZSTD_compress2(cctx.get(), out.data() + kEnvelopeHeaderBytes,
                            bound, canonical.data(), canonical.size());
  if (ZSTD_isError(n)) {
    return MakeError(
        ErrorCode::kInternal, "zstd",
        fmt::format("compression failed: {}", ZSTD_getErrorName(n)));
  }
  out.resize(kEnvelopeHeaderBytes + n);
  // The payload digest makes every change of the compressed bytes visible,
  // including the few that zstd would decode to the same content.
  const Digest payload_digest =
      Sha256(ByteSpan(out).subspan(kEnvelopeHeaderBytes));
  w.Bytes(payload_digest.bytes.data(), payload_digest.bytes.size());
  return sealed;
}

Result<OpenedManifest> OpenManifest(ByteSpan envelope,
                                    const TrustedKeys& trusted) {
  if (envelope.size() < kEnvelopeHeaderBytes) {
    return Corrupt("manifest envelope",
                   fmt::format("truncated: {} bytes, the header alone is {}",
                               envelope.size(), kEnvelopeHeaderBytes));
  }
  Reader r(envelope);
  if (std::memcmp(r.Take(4), kEnvelopeMagic, 4) != 0) {
    return Corrupt("manifest envelope",
                   "not a fleetcast manifest envelope (bad magic)");
  }
  if (uint16_t version = r.U16(); version != kEnvelopeVersion) {
    return MakeError(ErrorCode::kUnsupported, "manifest envelope",
                     fmt::format("envelope version {} is not supported (this "
                                 "build reads version {})",
                                 version, kEnvelopeVersion));
  }
  if (uint16_t reserved = r.U16(); reserved != 0) {
    return Corrupt("manifest envelope",
                   fmt::format("reserved field is {}, must be 0", reserved));
  }
  OpenedManifest opened;
  std::memcpy(opened.signer.bytes.data(), r.Take(32), 32);
  Signature sig;
  std::memcpy(sig.data(), r.Take(sig.size()), sig.size());
  const uint64_t canonical_len = r.U64();
  Digest payload_digest;
  std::memcpy(payload_digest.bytes.data(), r.Take(32), 32);
  // Refuse unknown signers before spending any work on the payload.
  if (!trusted.empty() && !trusted.Contains(opened.signer)) {
    return MakeError(ErrorCode::kSignature, "manifest envelope",
                     fmt::format("signed by key {}, which is not trusted",
                                 opened.signer.Fingerprint()));
  }
  if (canonical_len > kMaxCanonicalManifestBytes) {
    return Corrupt("manifest envelope",
                   fmt::format("canonical length {} exceeds the limit of {} "
                               "bytes",
                               canonical_len, kMaxCanonicalManifestBytes));
  }
  const ByteSpan payload = envelope.subspan(kEnvelopeHeaderBytes);
  if (Sha256(payload) != payload_digest) {
    return Corrupt("manifest envelope",
                   "compressed payload does not match its SHA-256 digest");
  }
  auto canonical = DecompressFrame(payload, canonical_len);
  if (!canonical) return std::unexpected(canonical.error());
  opened.root = Sha256(*canonical);
  if (!opened.signer.Verify(opened.root, sig)) {
    return MakeError(ErrorCode::kSignature, opened.root.ShortHex(),
                     fmt::format("signature by key {} does not verify",
                                 opened.signer.Fingerprint()));
  }
  auto m = DecodeCanonical(*canonical);
  if (!m) return std::unexpected(m.error());
  opened.manifest = std::move(*m);
  return opened;
}

}  // namespace fleetcast
