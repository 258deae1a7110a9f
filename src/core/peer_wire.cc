#include "core/peer_wire.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

namespace fleetcast {
namespace {

// HELLO after the version field: node id, root, dataset length, listen
// port, zone length, flags, max_requests, max_request_bytes, max_indices.
constexpr size_t kHelloFixedBytes = 2 + 16 + 32 + 2 + 2 + 1 + 4 + 2 + 4 + 2;
constexpr size_t kHelloMaxBytes = 1 + kHelloFixedBytes + 65535 + 255;
constexpr size_t kGoodbyeMaxBytes = 1 + 1 + 2 + 65535;

std::unexpected<Error> Malformed(std::string message) {
  return MakeError(ErrorCode::kPeerProtocol, "peer frame", std::move(message));
}

void PutU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> 8 * i));
}
void PutBytes(std::vector<uint8_t>& out, ByteSpan bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
// Frame header for a payload of `payload_bytes` (without the type byte).
void PutHeader(std::vector<uint8_t>& out, MessageType type,
               uint64_t payload_bytes) {
  PutU32(out, static_cast<uint32_t>(payload_bytes + 1));
  out.push_back(static_cast<uint8_t>(type));
}

uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// Bounds-checked reads over one frame body; each failure names the field.
class Reader {
 public:
  explicit Reader(ByteSpan bytes) : bytes_(bytes) {}
  size_t remaining() const { return bytes_.size() - pos_; }
  size_t pos() const { return pos_; }

  Status Need(size_t n, std::string_view type, std::string_view field) const {
    if (n <= remaining()) return {};
    return Malformed(fmt::format("{}: {} needs {} bytes, only {} remain", type,
                                 field, n, remaining()));
  }
  uint8_t U8() { return bytes_[pos_++]; }
  uint16_t U16() {
    uint16_t v = static_cast<uint16_t>(bytes_[pos_] | bytes_[pos_ + 1] << 8);
    pos_ += 2;
    return v;
  }
  uint32_t U32() {
    uint32_t v = LoadU32(&bytes_[pos_]);
    pos_ += 4;
    return v;
  }
  ByteSpan Take(size_t n) {
    ByteSpan s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  Status End(std::string_view type) const {
    if (remaining() == 0) return {};
    return Malformed(
        fmt::format("{}: {} trailing bytes in frame", type, remaining()));
  }

 private:
  ByteSpan bytes_;
  size_t pos_ = 0;
};

template <typename LengthT>
Result<std::string> ReadString(Reader& r, std::string_view type,
                               std::string_view field) {
  if (auto st = r.Need(sizeof(LengthT), type, field); !st) {
    return std::unexpected(st.error());
  }
  size_t n = sizeof(LengthT) == 1 ? r.U8() : r.U16();
  if (auto st = r.Need(n, type, field); !st) {
    return std::unexpected(st.error());
  }
  ByteSpan s = r.Take(n);
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

Result<std::vector<uint32_t>> ReadIndices(Reader& r, std::string_view type,
                                          uint32_t max_indices) {
  if (auto st = r.Need(4, type, "count"); !st) {
    return std::unexpected(st.error());
  }
  uint32_t count = r.U32();
  if (count == 0) return Malformed(fmt::format("{}: count is 0", type));
  if (count > max_indices) {
    return Malformed(
        fmt::format("{}: {} indices, limit {}", type, count, max_indices));
  }
  if (r.remaining() != size_t{count} * 4) {
    return Malformed(
        fmt::format("{}: count {} does not match the frame ({} index bytes)",
                    type, count, r.remaining()));
  }
  std::vector<uint32_t> indices(count);
  for (uint32_t& i : indices) i = r.U32();
  return indices;
}

void EncodeIndices(MessageType type, std::span<const uint32_t> indices,
                   std::vector<uint8_t>& out) {
  PutHeader(out, type, 4 + uint64_t{indices.size()} * 4);
  PutU32(out, static_cast<uint32_t>(indices.size()));
  for (uint32_t i : indices) PutU32(out, i);
}

// The largest frame length (type + payload) a type can have, before the
// frame is read; 0 for an unknown type.
uint64_t MaxLengthOf(uint8_t type, uint32_t max_indices) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHello:
      return kHelloMaxBytes;
    case MessageType::kHave:
    case MessageType::kRequest:
    case MessageType::kCancel:
      return 1 + 4 + uint64_t{max_indices} * 4;
    case MessageType::kReject:
      return 1 + 4 + 1;
    case MessageType::kKeepalive:
      return 1;
    case MessageType::kGoodbye:
      return kGoodbyeMaxBytes;
    case MessageType::kBitfield:
    case MessageType::kData:
      return std::numeric_limits<uint32_t>::max();
  }
  return 0;
}

}  // namespace

PrefaceMatch MatchPeerPreface(ByteSpan first_bytes) {
  size_t n = std::min(first_bytes.size(), kPeerPreface.size());
  if (!std::equal(first_bytes.begin(), first_bytes.begin() + n,
                  kPeerPreface.begin())) {
    return PrefaceMatch::kNotPeer;
  }
  return n == kPeerPreface.size() ? PrefaceMatch::kPeer
                                  : PrefaceMatch::kNeedMore;
}

std::string_view MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "HELLO";
    case MessageType::kBitfield:
      return "BITFIELD";
    case MessageType::kHave:
      return "HAVE";
    case MessageType::kRequest:
      return "REQUEST";
    case MessageType::kData:
      return "DATA";
    case MessageType::kCancel:
      return "CANCEL";
    case MessageType::kReject:
      return "REJECT";
    case MessageType::kKeepalive:
      return "KEEPALIVE";
    case MessageType::kGoodbye:
      return "GOODBYE";
  }
  return "unknown";
}

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kBusy:
      return "busy";
    case RejectReason::kNotHave:
      return "not have";
    case RejectReason::kUnknownVersion:
      return "unknown version";
    case RejectReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view GoodbyeReasonName(GoodbyeReason reason) {
  switch (reason) {
    case GoodbyeReason::kNormal:
      return "normal";
    case GoodbyeReason::kProtocolError:
      return "protocol error";
    case GoodbyeReason::kTimeout:
      return "timeout";
    case GoodbyeReason::kIncompatibleVersion:
      return "incompatible protocol version";
    case GoodbyeReason::kUnknownRoot:
      return "unknown version root";
    case GoodbyeReason::kTooManyPeers:
      return "too many peers";
    case GoodbyeReason::kSelfConnection:
      return "connected to self";
    case GoodbyeReason::kDuplicate:
      return "duplicate connection";
  }
  return "unknown";
}

MessageType TypeOf(const PeerMessage& message) {
  return static_cast<MessageType>(message.index() + 1);
}

// ---------------------------------------------------------------------------
// Bitfield

Result<Bitfield> Bitfield::FromBytes(uint32_t size, ByteSpan bytes) {
  if (bytes.size() != BytesFor(size)) {
    return Malformed(fmt::format("BITFIELD: {} bits need {} bytes, got {}",
                                 size, BytesFor(size), bytes.size()));
  }
  if (size % 8 != 0 && (bytes.back() & (0xFFu >> (size % 8))) != 0) {
    return Malformed("BITFIELD: spare bits of the last byte are not zero");
  }
  Bitfield b;
  b.size_ = size;
  b.bytes_.assign(bytes.begin(), bytes.end());
  return b;
}

void Bitfield::Set(uint32_t i, bool value) {
  uint8_t mask = static_cast<uint8_t>(0x80u >> (i % 8));
  if (value) {
    bytes_[i / 8] |= mask;
  } else {
    bytes_[i / 8] &= static_cast<uint8_t>(~mask);
  }
}

size_t Bitfield::Count() const {
  size_t n = 0;
  for (uint8_t b : bytes_) n += static_cast<size_t>(std::popcount(b));
  return n;
}

// ---------------------------------------------------------------------------
// Limits

Status PeerLimits::Validate() const {
  auto bad = [](std::string m) {
    return MakeError(ErrorCode::kInvalidArgument, "peer limits", std::move(m));
  };
  if (max_handshake_frame < 256) {
    return bad("max_handshake_frame too small for a HELLO");
  }
  if (max_indices == 0 || max_outstanding_requests == 0) {
    return bad("max_indices and max_outstanding_requests must be > 0");
  }
  if (handshake_timeout.count() <= 0 || idle_timeout.count() <= 0 ||
      keepalive_interval.count() <= 0 || keepalive_interval >= idle_timeout) {
    return bad("timeouts must be > 0 and keepalive_interval < idle_timeout");
  }
  return {};
}

// ---------------------------------------------------------------------------
// Encoders

Status EncodeHello(const HelloMsg& h, std::vector<uint8_t>& out) {
  if (h.dataset.size() > 65535 || h.zone.size() > 255) {
    return MakeError(ErrorCode::kInvalidArgument, "HELLO",
                     "dataset longer than 65535 or zone longer than 255 bytes");
  }
  PutHeader(out, MessageType::kHello,
            kHelloFixedBytes + h.dataset.size() + h.zone.size());
  PutU16(out, h.protocol_version);
  PutBytes(out, h.node_id);
  PutBytes(out, h.root.bytes);
  PutU16(out, static_cast<uint16_t>(h.dataset.size()));
  PutBytes(out, AsBytes(h.dataset));
  PutU16(out, h.listen_port);
  out.push_back(static_cast<uint8_t>(h.zone.size()));
  PutBytes(out, AsBytes(h.zone));
  PutU32(out, h.flags);
  PutU16(out, h.max_requests);
  PutU32(out, h.max_request_bytes);
  PutU16(out, h.max_indices);
  return {};
}

void EncodeBitfield(const Bitfield& bits, std::vector<uint8_t>& out) {
  PutHeader(out, MessageType::kBitfield, 4 + bits.bytes().size());
  PutU32(out, bits.size());
  PutBytes(out, bits.bytes());
}

void EncodeHave(std::span<const uint32_t> indices, std::vector<uint8_t>& out) {
  EncodeIndices(MessageType::kHave, indices, out);
}
void EncodeRequest(std::span<const uint32_t> indices,
                   std::vector<uint8_t>& out) {
  EncodeIndices(MessageType::kRequest, indices, out);
}
void EncodeCancel(std::span<const uint32_t> indices,
                  std::vector<uint8_t>& out) {
  EncodeIndices(MessageType::kCancel, indices, out);
}

void EncodeDataHeader(uint32_t index, uint32_t length,
                      std::vector<uint8_t>& out) {
  PutHeader(out, MessageType::kData, 4 + uint64_t{length});
  PutU32(out, index);
}

void EncodeData(uint32_t index, ByteSpan chunk, std::vector<uint8_t>& out) {
  EncodeDataHeader(index, static_cast<uint32_t>(chunk.size()), out);
  PutBytes(out, chunk);
}

void EncodeReject(uint32_t index, RejectReason reason,
                  std::vector<uint8_t>& out) {
  PutHeader(out, MessageType::kReject, 5);
  PutU32(out, index);
  out.push_back(static_cast<uint8_t>(reason));
}

void EncodeKeepalive(std::vector<uint8_t>& out) {
  PutHeader(out, MessageType::kKeepalive, 0);
}

void EncodeGoodbye(GoodbyeReason reason, std::string_view message,
                   std::vector<uint8_t>& out) {
  message = message.substr(0, 65535);
  PutHeader(out, MessageType::kGoodbye, 1 + 2 + message.size());
  out.push_back(static_cast<uint8_t>(reason));
  PutU16(out, static_cast<uint16_t>(message.size()));
  PutBytes(out, AsBytes(message));
}

Status EncodeMessage(const PeerMessage& message, std::vector<uint8_t>& out) {
  struct Visitor {
    std::vector<uint8_t>& out;
    Status operator()(const HelloMsg& m) { return EncodeHello(m, out); }
    Status operator()(const BitfieldMsg& m) {
      EncodeBitfield(m.bits, out);
      return {};
    }
    Status operator()(const HaveMsg& m) {
      EncodeHave(m.indices, out);
      return {};
    }
    Status operator()(const RequestMsg& m) {
      EncodeRequest(m.indices, out);
      return {};
    }
    Status operator()(const DataMsg& m) {
      EncodeData(m.index, m.bytes(), out);
      return {};
    }
    Status operator()(const CancelMsg& m) {
      EncodeCancel(m.indices, out);
      return {};
    }
    Status operator()(const RejectMsg& m) {
      EncodeReject(m.index, m.reason, out);
      return {};
    }
    Status operator()(const KeepaliveMsg&) {
      EncodeKeepalive(out);
      return {};
    }
    Status operator()(const GoodbyeMsg& m) {
      EncodeGoodbye(m.reason, m.message, out);
      return {};
    }
  };
  return std::visit(Visitor{out}, message);
}

// ---------------------------------------------------------------------------
// Parsing

namespace {

Result<PeerMessage> ParseHello(Reader& r) {
  constexpr std::string_view kT = "HELLO";
  HelloMsg h;
  if (auto st = r.Need(2, kT, "protocol version"); !st) {
    return std::unexpected(st.error());
  }
  h.protocol_version = r.U16();
  if (h.protocol_version != kPeerProtocolVersion) return h;
  if (auto st = r.Need(16 + 32, kT, "node id and root"); !st) {
    return std::unexpected(st.error());
  }
  ByteSpan id = r.Take(16);
  std::copy(id.begin(), id.end(), h.node_id.begin());
  ByteSpan root = r.Take(32);
  std::copy(root.begin(), root.end(), h.root.bytes.begin());
  auto dataset = ReadString<uint16_t>(r, kT, "dataset");
  if (!dataset) return std::unexpected(dataset.error());
  h.dataset = std::move(*dataset);
  if (auto st = r.Need(2, kT, "listen port"); !st) {
    return std::unexpected(st.error());
  }
  h.listen_port = r.U16();
  auto zone = ReadString<uint8_t>(r, kT, "zone");
  if (!zone) return std::unexpected(zone.error());
  h.zone = std::move(*zone);
  if (auto st = r.Need(4 + 2 + 4 + 2, kT, "flags and limits"); !st) {
    return std::unexpected(st.error());
  }
  h.flags = r.U32();
  h.max_requests = r.U16();
  h.max_request_bytes = r.U32();
  h.max_indices = r.U16();
  if (h.max_requests == 0 || h.max_indices == 0) {
    return Malformed("HELLO: max_requests and max_indices must be > 0");
  }
  if (auto st = r.End(kT); !st) return std::unexpected(st.error());
  return h;
}

}  // namespace

Result<PeerMessage> ParseFrame(uint8_t type, std::vector<uint8_t> payload,
                               uint32_t max_indices) {
  Reader r(payload);
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHello:
      return ParseHello(r);
    case MessageType::kBitfield: {
      if (auto st = r.Need(4, "BITFIELD", "bit count"); !st) {
        return std::unexpected(st.error());
      }
      uint32_t n = r.U32();
      auto bits = Bitfield::FromBytes(n, r.Take(r.remaining()));
      if (!bits) return std::unexpected(bits.error());
      return BitfieldMsg{std::move(*bits)};
    }
    case MessageType::kHave:
    case MessageType::kRequest:
    case MessageType::kCancel: {
      std::string_view name = MessageTypeName(static_cast<MessageType>(type));
      auto indices = ReadIndices(r, name, max_indices);
      if (!indices) return std::unexpected(indices.error());
      if (type == static_cast<uint8_t>(MessageType::kHave)) {
        return HaveMsg{std::move(*indices)};
      }
      if (type == static_cast<uint8_t>(MessageType::kRequest)) {
        return RequestMsg{std::move(*indices)};
      }
      return CancelMsg{std::move(*indices)};
    }
    case MessageType::kData: {
      if (auto st = r.Need(4, "DATA", "index"); !st) {
        return std::unexpected(st.error());
      }
      uint32_t index = r.U32();
      if (r.remaining() == 0) return Malformed("DATA: empty chunk");
      return DataMsg{index, std::move(payload), 4};
    }
    case MessageType::kReject: {
      if (auto st = r.Need(5, "REJECT", "index and reason"); !st) {
        return std::unexpected(st.error());
      }
      RejectMsg m;
      m.index = r.U32();
      uint8_t reason = r.U8();
      if (reason < 1 || reason > 4) {
        return Malformed(fmt::format("REJECT: unknown reason {}", reason));
      }
      m.reason = static_cast<RejectReason>(reason);
      if (auto st = r.End("REJECT"); !st) return std::unexpected(st.error());
      return m;
    }
    case MessageType::kKeepalive:
      if (auto st = r.End("KEEPALIVE"); !st) {
        return std::unexpected(st.error());
      }
      return KeepaliveMsg{};
    case MessageType::kGoodbye: {
      if (auto st = r.Need(1, "GOODBYE", "reason"); !st) {
        return std::unexpected(st.error());
      }
      GoodbyeMsg m;
      m.reason = static_cast<GoodbyeReason>(r.U8());
      auto text = ReadString<uint16_t>(r, "GOODBYE", "message");
      if (!text) return std::unexpected(text.error());
      m.message = std::move(*text);
      if (auto st = r.End("GOODBYE"); !st) return std::unexpected(st.error());
      return m;
    }
  }
  return Malformed(fmt::format("unknown message type {}", type));
}

// ---------------------------------------------------------------------------
// FrameDecoder

Result<FrameDecoder::Step> FrameDecoder::Fail(Error error) {
  error_ = error;
  return std::unexpected(std::move(error));
}

Result<FrameDecoder::Step> FrameDecoder::Decode(ByteSpan input) {
  if (error_) return std::unexpected(*error_);
  Step step;
  if (header_got_ < kFrameHeaderBytes) {
    size_t n = std::min(input.size(), kFrameHeaderBytes - header_got_);
    std::memcpy(header_.data() + header_got_, input.data(), n);
    header_got_ += n;
    step.consumed = n;
    input = input.subspan(n);
    if (header_got_ < kFrameHeaderBytes) return step;
    // Check the length field before anything is allocated.
    uint32_t length = LoadU32(header_.data());
    type_ = header_[4];
    if (length == 0) return Fail(Malformed("frame length 0").error());
    if (length > max_frame_) {
      return Fail(Malformed(fmt::format("frame length {} exceeds the limit {}",
                                        length, max_frame_))
                      .error());
    }
    uint64_t type_max = MaxLengthOf(type_, max_indices_);
    if (type_max == 0) {
      return Fail(
          Malformed(fmt::format("unknown message type {}", type_)).error());
    }
    if (length > type_max) {
      return Fail(
          Malformed(fmt::format("{} frame length {} exceeds its maximum {}",
                                MessageTypeName(MessageType{type_}), length,
                                type_max))
              .error());
    }
    payload_.clear();
    payload_.reserve(length - 1);
    payload_len_ = length - 1;
  }
  size_t n = std::min(input.size(), payload_len_ - payload_.size());
  payload_.insert(payload_.end(), input.begin(), input.begin() + n);
  step.consumed += n;
  if (payload_.size() < payload_len_) return step;
  header_got_ = 0;
  auto message = ParseFrame(type_, std::exchange(payload_, {}), max_indices_);
  if (!message) return Fail(std::move(message.error()));
  step.message = std::move(*message);
  return step;
}

}  // namespace fleetcast
