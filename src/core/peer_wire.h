// The peer protocol's wire format: message types, encoders and an
// incremental frame decoder. docs/protocol.md is the specification.
//
// A peer connection starts with the 8-byte preface "\0FCPEER1" from the
// connecting side, then carries frames in both directions:
//   u32 length (little-endian; bytes of type + payload) | u8 type | payload
// Encoders append one frame to a caller's buffer. FrameDecoder takes byte
// slices split anywhere and yields whole messages; it checks every length
// against its limits before allocating and rejects malformed frames with
// ErrorCode::kPeerProtocol. DATA payloads are handed out in the frame buffer
// the decoder filled (no second copy).
//
// The protocol rules that span messages (handshake order, outstanding
// requests, timeouts) live in peer_session.h.
//
// Thread-safety: plain values and free functions; a FrameDecoder must be
// used by one thread at a time.
#ifndef FLEETCAST_CORE_PEER_WIRE_H_
#define FLEETCAST_CORE_PEER_WIRE_H_

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/chunking_params.h"
#include "core/error.h"
#include "core/sha256.h"

namespace fleetcast {

inline constexpr std::array<uint8_t, 8> kPeerPreface = {0,   'F', 'C', 'P',
                                                        'E', 'E', 'R', '1'};
inline constexpr uint16_t kPeerProtocolVersion = 1;
// u32 length + u8 type.
inline constexpr size_t kFrameHeaderBytes = 5;
// Frame header + u32 chunk index: what precedes a chunk's bytes in DATA.
inline constexpr size_t kDataHeaderBytes = kFrameHeaderBytes + 4;

enum class PrefaceMatch { kNeedMore, kPeer, kNotPeer };

// Tells a peer connection from HTTP by its first bytes. kNotPeer as soon as
// a byte differs from the preface (an HTTP request never starts with NUL,
// so the first byte already decides in practice), kPeer once all 8 match.
PrefaceMatch MatchPeerPreface(ByteSpan first_bytes);

enum class MessageType : uint8_t {
  kHello = 1,
  kBitfield = 2,
  kHave = 3,
  kRequest = 4,
  kData = 5,
  kCancel = 6,
  kReject = 7,
  kKeepalive = 8,
  kGoodbye = 9,
};
std::string_view MessageTypeName(MessageType type);

enum class RejectReason : uint8_t {
  kBusy = 1,            // try again later or elsewhere
  kNotHave = 2,         // we do not hold that chunk
  kUnknownVersion = 3,  // we no longer serve this version
  kCancelled = 4,       // answer to a CANCEL that arrived before the data
};
std::string_view RejectReasonName(RejectReason reason);

// Informational: any value is accepted on receipt.
enum class GoodbyeReason : uint8_t {
  kNormal = 0,               // done, or shutting down
  kProtocolError = 1,        // the receiver broke a rule
  kTimeout = 2,              // handshake or idle timeout
  kIncompatibleVersion = 3,  // protocol version mismatch
  kUnknownRoot = 4,          // version root not served / not the one asked
  kTooManyPeers = 5,         // connection limit reached
  kSelfConnection = 6,       // both ends have the same node id
  kDuplicate = 7,            // already connected to that node
};
std::string_view GoodbyeReasonName(GoodbyeReason reason);

using NodeId = std::array<uint8_t, 16>;

struct HelloMsg {
  static constexpr uint32_t kFlagSeed = 1u << 0;  // origin / seed

  uint16_t protocol_version = kPeerProtocolVersion;
  NodeId node_id{};
  Digest root;          // the version this connection is about
  std::string dataset;  // <= 65535 bytes
  uint16_t listen_port = 0;
  std::string zone;  // <= 255 bytes
  uint32_t flags = 0;
  // What the sender accepts from the receiver (receivers enforce their own
  // PeerLimits; these let the other side size its pipeline to them).
  uint16_t max_requests = 0;       // outstanding REQUEST indices
  uint32_t max_request_bytes = 0;  // bytes asked for by one REQUEST batch
  uint16_t max_indices = 0;        // indices per HAVE/REQUEST/CANCEL

  bool operator==(const HelloMsg&) const = default;
};

// A set of chunk indices [0, size) as sent in BITFIELD: bit i is bit
// (7 - i % 8) of byte i / 8 (MSB first); spare bits of the last byte are 0.
class Bitfield {
 public:
  Bitfield() = default;
  explicit Bitfield(uint32_t size) : size_(size), bytes_(BytesFor(size)) {}
  // Checks the byte count and that spare bits are zero.
  static Result<Bitfield> FromBytes(uint32_t size, ByteSpan bytes);
  static size_t BytesFor(uint32_t size) { return (size_t{size} + 7) / 8; }

  uint32_t size() const { return size_; }
  bool Test(uint32_t i) const {
    return i < size_ && (bytes_[i / 8] >> (7 - i % 8) & 1) != 0;
  }
  // i must be < size().
  void Set(uint32_t i, bool value = true);
  size_t Count() const;
  ByteSpan bytes() const { return bytes_; }

  bool operator==(const Bitfield&) const = default;

 private:
  uint32_t size_ = 0;
  std::vector<uint8_t> bytes_;
};

struct BitfieldMsg {
  Bitfield bits;
  bool operator==(const BitfieldMsg&) const = default;
};
struct HaveMsg {
  std::vector<uint32_t> indices;
  bool operator==(const HaveMsg&) const = default;
};
struct RequestMsg {
  std::vector<uint32_t> indices;
  bool operator==(const RequestMsg&) const = default;
};
struct CancelMsg {
  std::vector<uint32_t> indices;
  bool operator==(const CancelMsg&) const = default;
};
// The chunk's bytes are frame[offset, end): the decoder's buffer, moved
// here without copying.
struct DataMsg {
  uint32_t index = 0;
  std::vector<uint8_t> frame;
  size_t offset = 0;

  ByteSpan bytes() const { return ByteSpan(frame).subspan(offset); }
  bool operator==(const DataMsg& o) const {
    return index == o.index && std::ranges::equal(bytes(), o.bytes());
  }
};
struct RejectMsg {
  uint32_t index = 0;
  RejectReason reason = RejectReason::kBusy;
  bool operator==(const RejectMsg&) const = default;
};
struct KeepaliveMsg {
  bool operator==(const KeepaliveMsg&) const = default;
};
struct GoodbyeMsg {
  GoodbyeReason reason = GoodbyeReason::kNormal;
  std::string message;  // <= 65535 bytes
  bool operator==(const GoodbyeMsg&) const = default;
};

using PeerMessage =
    std::variant<HelloMsg, BitfieldMsg, HaveMsg, RequestMsg, DataMsg, CancelMsg,
                 RejectMsg, KeepaliveMsg, GoodbyeMsg>;
MessageType TypeOf(const PeerMessage& message);

// Every limit of the protocol. Each side enforces its own on what it
// receives and announces the per-request ones in HELLO.
struct PeerLimits {
  // Once the version is known a frame may be at most its largest chunk
  // (ChunkingParams::max_size, <= 64 MiB) + kFrameSlack bytes, or the
  // version's whole BITFIELD frame if that is larger.
  static constexpr uint32_t kFrameSlack = 64;
  // Frames before the version is known (HELLO, KEEPALIVE, GOODBYE).
  uint32_t max_handshake_frame = 66 * 1024;
  // Indices per HAVE / REQUEST / CANCEL frame.
  uint16_t max_indices = 4096;
  // A REQUEST asking for several chunks may ask for at most this many bytes
  // in total; a single-chunk REQUEST is always allowed. Checked only when the
  // session knows the chunk lengths.
  uint32_t max_request_bytes = 4u << 20;
  // REQUEST indices a peer may have open with us (not yet answered by DATA
  // or REJECT). More is a violation.
  uint16_t max_outstanding_requests = 64;
  // Preface and both HELLOs must be done within this long of the start.
  std::chrono::milliseconds handshake_timeout{10'000};
  // Close when nothing at all was received for this long.
  std::chrono::milliseconds idle_timeout{60'000};
  // Send KEEPALIVE when nothing was sent for this long.
  std::chrono::milliseconds keepalive_interval{15'000};

  Status Validate() const;
};

// Encoders: append one frame to `out`. Index lists must hold at most
// 2^32 - 1 entries and strings must fit their length fields (HELLO
// returns kInvalidArgument otherwise; GOODBYE truncates its message).
Status EncodeHello(const HelloMsg& hello, std::vector<uint8_t>& out);
void EncodeBitfield(const Bitfield& bits, std::vector<uint8_t>& out);
void EncodeHave(std::span<const uint32_t> indices, std::vector<uint8_t>& out);
void EncodeRequest(std::span<const uint32_t> indices,
                   std::vector<uint8_t>& out);
void EncodeCancel(std::span<const uint32_t> indices, std::vector<uint8_t>& out);
// The 9 bytes before a chunk of `length` bytes: send the chunk right after
// (e.g. with sendfile) to complete the frame.
void EncodeDataHeader(uint32_t index, uint32_t length,
                      std::vector<uint8_t>& out);
void EncodeData(uint32_t index, ByteSpan chunk, std::vector<uint8_t>& out);
void EncodeReject(uint32_t index, RejectReason reason,
                  std::vector<uint8_t>& out);
void EncodeKeepalive(std::vector<uint8_t>& out);
void EncodeGoodbye(GoodbyeReason reason, std::string_view message,
                   std::vector<uint8_t>& out);
// Any message (for tests and tools).
Status EncodeMessage(const PeerMessage& message, std::vector<uint8_t>& out);

// Parses one frame body (type byte already split off). Takes the buffer so
// DATA can keep it. A HELLO whose version is not kPeerProtocolVersion
// parses to a HelloMsg holding only that version: the rest of its layout
// is the other version's business, and the session reports the mismatch.
Result<PeerMessage> ParseFrame(uint8_t type, std::vector<uint8_t> payload,
                               uint32_t max_indices);

// Incremental decoder of a frame stream (after the preface).
class FrameDecoder {
 public:
  // max_frame: largest length field accepted (type + payload bytes).
  FrameDecoder(uint32_t max_frame, uint32_t max_indices)
      : max_frame_(max_frame), max_indices_(max_indices) {}

  // Takes effect for the next frame whose header is not yet complete.
  void set_max_frame(uint32_t max_frame) { max_frame_ = max_frame; }
  uint32_t max_frame() const { return max_frame_; }

  struct Step {
    size_t consumed = 0;                 // bytes of the input used
    std::optional<PeerMessage> message;  // set when a frame completed
  };
  // Consumes input up to the end of at most one frame. Call again with the
  // rest of the input until it is empty. After an error the decoder is
  // broken and returns the same error forever.
  Result<Step> Decode(ByteSpan input);

  // True between frames (no partial frame buffered).
  bool at_frame_boundary() const { return header_got_ == 0; }

 private:
  Result<Step> Fail(Error error);

  uint32_t max_frame_;
  uint32_t max_indices_;
  std::array<uint8_t, kFrameHeaderBytes> header_{};
  size_t header_got_ = 0;
  uint8_t type_ = 0;
  // Reserved to the frame's size once the header is in, filled by appends
  // (never zero-filled first: a DATA payload is a whole chunk).
  std::vector<uint8_t> payload_;
  size_t payload_len_ = 0;
  std::optional<Error> error_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_PEER_WIRE_H_
