// PeerSession: the per-connection state machine of the peer protocol,
// sans-I/O (ngtcp2 / h11 style). The connection driver feeds it received
// bytes and timer expiries with the current time, sends what
// TakeBytesToSend() returns, handles what PollEvent() returns and arms a
// timer for NextDeadline(). The session never touches a socket or a clock.
//
// It enforces the rules of docs/protocol.md: preface and HELLO first
// (within the handshake timeout), protocol version and root match,
// BITFIELD at most once and only right after HELLO, indices in range,
// REQUEST limits, DATA only for requested indices (late DATA after our
// CANCEL is tolerated), idle timeout and keepalives. Any violation sends
// GOODBYE and yields a Closed event carrying ErrorCode::kPeerProtocol.
// It does not verify chunk hashes (the swarm does) and does not decide
// what to request (the scheduler does).
//
// Thread-safety: none; one session belongs to one connection's strand.
#ifndef FLEETCAST_CORE_PEER_SESSION_H_
#define FLEETCAST_CORE_PEER_SESSION_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/peer_wire.h"

namespace fleetcast {

using TimePoint = std::chrono::steady_clock::time_point;

enum class PeerRole { kInitiator, kAcceptor };

// What a session must know about the version it serves or fetches.
struct PeerVersionInfo {
  uint32_t chunk_count = 0;  // distinct chunks (manifest-format.md)
  // Largest chunk (the manifest's ChunkingParams::max_size); bounds frames.
  uint32_t max_chunk_size = ChunkingParams{}.max_size;
  // Optional: length of each distinct chunk. When set (size chunk_count),
  // REQUEST batches are held to max_request_bytes and DATA must have the
  // chunk's exact length. Shared by every session of the version.
  std::shared_ptr<const std::vector<uint32_t>> chunk_lengths;
};

struct PeerSessionOptions {
  PeerRole role = PeerRole::kInitiator;
  // Our HELLO. protocol_version and the max_* fields are filled in from
  // `limits`. Initiator: hello.root is the version asked for. Acceptor:
  // hello.root is replaced by the accepted root.
  HelloMsg hello;
  // Initiator: required. Acceptor: used with expected_root.
  std::optional<PeerVersionInfo> version;
  // Acceptor only. Set: a HELLO for another root is refused (GOODBYE
  // kUnknownRoot) and a matching one accepted with `version`. Unset: the
  // session emits HelloReceived and waits for Accept() or Close().
  std::optional<Digest> expected_root;
  PeerLimits limits;
};

// Events, in the order they happened.
struct HelloReceived {
  HelloMsg hello;
};
struct BitfieldReceived {
  Bitfield bits;
};
struct HaveReceived {
  std::vector<uint32_t> indices;
};
// Answer each index with SendData/SendDataHeader or SendReject.
struct RequestReceived {
  std::vector<uint32_t> indices;
};
// Not verified. `cancelled` when it answers a request we had cancelled.
struct DataReceived {
  DataMsg data;
  bool cancelled = false;
};
// Only the indices still waiting for our answer: drop them from the serve
// queue. The session has already answered them with REJECT kCancelled.
struct CancelReceived {
  std::vector<uint32_t> indices;
};
// Also sent for requests we cancelled (reason kCancelled).
struct RejectReceived {
  uint32_t index = 0;
  RejectReason reason = RejectReason::kBusy;
};
// The session is over. error: kPeerProtocol when the peer broke a rule or
// timed out (ban-worthy), kIo when the connection ended without GOODBYE,
// none for an orderly GOODBYE (either side) or a local Close().
struct Closed {
  GoodbyeReason reason = GoodbyeReason::kNormal;
  std::string message;
  bool by_peer = false;  // the peer sent GOODBYE
  std::optional<Error> error;
};

using PeerEvent =
    std::variant<HelloReceived, BitfieldReceived, HaveReceived, RequestReceived,
                 DataReceived, CancelReceived, RejectReceived, Closed>;

class PeerSession {
 public:
  // Checks the options; an initiator's preface and HELLO are queued at once.
  static Result<PeerSession> Create(PeerSessionOptions options, TimePoint now);

  // Input. After closed() both are no-ops.
  void OnBytesReceived(ByteSpan bytes, TimePoint now);
  void OnTimer(TimePoint now);
  // The transport ended (EOF or error) without us closing.
  void OnConnectionLost(TimePoint now);

  // Acceptor without expected_root, after HelloReceived: serve the peer's
  // root. Sends our HELLO.
  Status Accept(PeerVersionInfo version, TimePoint now);

  // Commands. kInternal when used out of order or beyond the limits the
  // peer announced (a bug of the caller); nothing is sent then.
  Status SendBitfield(const Bitfield& bits, TimePoint now);
  Status SendHave(std::span<const uint32_t> indices, TimePoint now);
  Status SendRequest(std::span<const uint32_t> indices, TimePoint now);
  Status SendCancel(std::span<const uint32_t> indices, TimePoint now);
  // Answers a request. kNotFound (not a bug) when the index is no longer
  // waiting for an answer, e.g. the peer cancelled it: drop the chunk.
  Status SendData(uint32_t index, ByteSpan chunk, TimePoint now);
  // Like SendData, but only the 9-byte header is queued: the driver sends
  // exactly `length` chunk bytes after what TakeBytesToSend() returns, then
  // calls DataPayloadSent(). Output produced meanwhile is held back.
  Status SendDataHeader(uint32_t index, uint32_t length, TimePoint now);
  void DataPayloadSent(TimePoint now);
  Status SendReject(uint32_t index, RejectReason reason, TimePoint now);
  // Sends GOODBYE and closes (Closed event without error). No-op if closed.
  void Close(GoodbyeReason reason, std::string_view message, TimePoint now);

  // Output. Control frames (everything but DATA) go out ahead of DATA
  // frames queued before them: a HAVE offer or a REQUEST must not wait
  // behind megabytes of chunks on a congested link (the peer's next
  // request, and so the link's use, depends on it). DATA frames keep their
  // order; GOODBYE comes after every DATA frame queued before it.
  struct Output {
    std::vector<uint8_t> bytes;
    size_t data_frames = 0;  // whole DATA frames (SendData) in `bytes`
  };
  // Every queued control frame, then whole DATA frames in order while
  // their bytes stay under `data_budget` (at least one, if any). A small
  // budget keeps DATA in the caller's hands, where later control frames
  // can still overtake it.
  Output TakeOutput(size_t data_budget);
  // Everything queued: TakeOutput without a budget.
  std::vector<uint8_t> TakeBytesToSend();
  bool has_bytes_to_send() const {
    return !out_.empty() || (!data_frames_.empty() && payload_owed_ == 0);
  }
  std::optional<PeerEvent> PollEvent();
  // When OnTimer() must be called next; TimePoint::max() once closed.
  TimePoint NextDeadline() const;

  bool closed() const { return closed_; }
  // Both HELLOs exchanged and the version known.
  bool established() const { return established_; }
  const std::optional<HelloMsg>& peer_hello() const { return peer_hello_; }
  // Our requests not yet answered (including cancelled ones).
  size_t outstanding_requests() const { return ours_.size(); }
  // Peer's requests we have not answered yet.
  size_t pending_peer_requests() const { return theirs_.size(); }
  uint32_t payload_owed() const { return payload_owed_; }

 private:
  PeerSession(PeerSessionOptions options, TimePoint now);

  std::vector<uint8_t>& Out() { return payload_owed_ ? held_ : out_; }
  // Moves queued DATA frames into the output (before a GOODBYE or a
  // SendDataHeader, whose payload must follow its header directly).
  void FlushDataFrames();
  void Queued(TimePoint now);
  void Establish(PeerVersionInfo version);
  void SendOurHello();
  // Feeds frames after the preface.
  void HandleMessage(PeerMessage message, TimePoint now);
  void HandleHello(HelloMsg hello, TimePoint now);
  void Violation(GoodbyeReason reason, std::string message, TimePoint now);
  void Finish(Closed closed);
  Status CheckOpen(std::string_view what) const;
  Status CheckIndices(std::span<const uint32_t> indices,
                      std::string_view what) const;
  // Removes a peer request awaiting our answer; kNotFound if it is not.
  Status TakePeerRequest(uint32_t index, std::string_view what);
  std::string PeerName() const;

  PeerSessionOptions opts_;
  FrameDecoder decoder_;
  TimePoint started_;
  TimePoint last_received_;
  TimePoint last_sent_;

  size_t preface_got_ = 0;  // acceptor: preface bytes matched so far
  bool hello_sent_ = false;
  std::optional<HelloMsg> peer_hello_;
  bool established_ = false;
  bool closed_ = false;
  std::optional<PeerVersionInfo> version_;
  // The first frame after HELLO may be BITFIELD (per direction).
  bool peer_may_bitfield_ = false;
  bool we_may_bitfield_ = false;

  // Our requests without an answer: index -> cancelled.
  std::unordered_map<uint32_t, bool> ours_;
  // Peer's requests without our answer.
  std::unordered_set<uint32_t> theirs_;

  std::vector<uint8_t> out_;  // control frames (and SendDataHeader's)
  std::deque<std::vector<uint8_t>> data_frames_;  // SendData's, in order
  size_t flushed_data_frames_ = 0;  // DATA frames moved into out_ at close
  std::vector<uint8_t> held_;       // queued while a DATA payload is owed
  uint32_t payload_owed_ = 0;
  std::deque<PeerEvent> events_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_PEER_SESSION_H_
