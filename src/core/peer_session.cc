#include "core/peer_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace fleetcast {
namespace {

std::unexpected<Error> Misuse(std::string message) {
  return MakeError(ErrorCode::kInternal, "peer session", std::move(message));
}

Status ValidateVersion(const PeerVersionInfo& v) {
  if (v.max_chunk_size == 0 ||
      v.max_chunk_size > ChunkingParams::kMaxChunkLimit) {
    return MakeError(
        ErrorCode::kInvalidArgument, "peer session",
        fmt::format("max_chunk_size {} not in [1, {}]", v.max_chunk_size,
                    ChunkingParams::kMaxChunkLimit));
  }
  if (v.chunk_lengths && v.chunk_lengths->size() != v.chunk_count) {
    return MakeError(ErrorCode::kInvalidArgument, "peer session",
                     "chunk_lengths does not have chunk_count entries");
  }
  return {};
}

long long Seconds(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

Result<PeerSession> PeerSession::Create(PeerSessionOptions options,
                                        TimePoint now) {
  if (auto st = options.limits.Validate(); !st) {
    return std::unexpected(st.error());
  }
  std::vector<uint8_t> probe;
  if (auto st = EncodeHello(options.hello, probe); !st) {
    return std::unexpected(st.error());
  }
  bool needs_version =
      options.role == PeerRole::kInitiator || options.expected_root.has_value();
  if (needs_version && !options.version) {
    return MakeError(ErrorCode::kInvalidArgument, "peer session",
                     "an initiator, or an acceptor with expected_root, "
                     "needs the version info");
  }
  if (options.version) {
    if (auto st = ValidateVersion(*options.version); !st) {
      return std::unexpected(st.error());
    }
  }
  return PeerSession(std::move(options), now);
}

PeerSession::PeerSession(PeerSessionOptions options, TimePoint now)
    : opts_(std::move(options)),
      decoder_(opts_.limits.max_handshake_frame, opts_.limits.max_indices),
      started_(now),
      last_received_(now),
      last_sent_(now) {
  if (opts_.role == PeerRole::kInitiator) {
    preface_got_ = kPeerPreface.size();
    out_.insert(out_.end(), kPeerPreface.begin(), kPeerPreface.end());
    SendOurHello();
  }
}

std::string PeerSession::PeerName() const {
  if (!peer_hello_) return "peer";
  return "peer " + ToHex(ByteSpan(peer_hello_->node_id)).substr(0, 16);
}

void PeerSession::SendOurHello() {
  HelloMsg h = opts_.hello;
  h.protocol_version = kPeerProtocolVersion;
  h.max_requests = opts_.limits.max_outstanding_requests;
  h.max_request_bytes = opts_.limits.max_request_bytes;
  h.max_indices = opts_.limits.max_indices;
  if (opts_.role == PeerRole::kAcceptor) h.root = peer_hello_->root;
  (void)EncodeHello(h, Out());  // validated in Create
  hello_sent_ = true;
}

void PeerSession::Establish(PeerVersionInfo version) {
  uint64_t max_frame = std::max<uint64_t>(
      {uint64_t{version.max_chunk_size} + PeerLimits::kFrameSlack,
       1 + 4 + Bitfield::BytesFor(version.chunk_count),
       opts_.limits.max_handshake_frame});
  decoder_.set_max_frame(static_cast<uint32_t>(
      std::min<uint64_t>(max_frame, std::numeric_limits<uint32_t>::max())));
  version_ = std::move(version);
  established_ = true;
  we_may_bitfield_ = true;
}

// ---------------------------------------------------------------------------
// Input

void PeerSession::OnBytesReceived(ByteSpan bytes, TimePoint now) {
  if (closed_ || bytes.empty()) return;
  last_received_ = now;
  if (preface_got_ < kPeerPreface.size()) {
    size_t n = std::min(bytes.size(), kPeerPreface.size() - preface_got_);
    if (!std::equal(bytes.begin(), bytes.begin() + n,
                    kPeerPreface.begin() + preface_got_)) {
      Violation(GoodbyeReason::kProtocolError,
                "connection does not start with the peer preface", now);
      return;
    }
    preface_got_ += n;
    bytes = bytes.subspan(n);
  }
  while (!bytes.empty() && !closed_) {
    auto step = decoder_.Decode(bytes);
    if (!step) {
      Violation(GoodbyeReason::kProtocolError, step.error().message, now);
      return;
    }
    bytes = bytes.subspan(step->consumed);
    if (step->message) HandleMessage(std::move(*step->message), now);
  }
}

void PeerSession::HandleHello(HelloMsg hello, TimePoint now) {
  if (hello.protocol_version != kPeerProtocolVersion) {
    Violation(GoodbyeReason::kIncompatibleVersion,
              fmt::format("peer speaks protocol version {}, we speak {}",
                          hello.protocol_version, kPeerProtocolVersion),
              now);
    return;
  }
  if (hello.node_id == opts_.hello.node_id) {
    Close(GoodbyeReason::kSelfConnection, "connected to self", now);
    return;
  }
  peer_hello_ = hello;
  peer_may_bitfield_ = true;
  events_.push_back(HelloReceived{std::move(hello)});
  const Digest& root = peer_hello_->root;
  if (opts_.role == PeerRole::kInitiator) {
    if (root != opts_.hello.root) {
      Violation(GoodbyeReason::kUnknownRoot,
                fmt::format("peer answered for version root {}, we asked "
                            "for {}",
                            root.ShortHex(), opts_.hello.root.ShortHex()),
                now);
      return;
    }
    Establish(*opts_.version);
    return;
  }
  if (!opts_.expected_root) return;  // Accept() or Close() decides
  if (root != *opts_.expected_root) {
    Close(GoodbyeReason::kUnknownRoot,
          fmt::format("version root {} is not served here", root.ShortHex()),
          now);
    return;
  }
  SendOurHello();
  Queued(now);
  Establish(*opts_.version);
}

void PeerSession::HandleMessage(PeerMessage message, TimePoint now) {
  MessageType type = TypeOf(message);
  std::string_view name = MessageTypeName(type);
  if (auto* bye = std::get_if<GoodbyeMsg>(&message)) {
    Finish(Closed{bye->reason, std::move(bye->message), true, std::nullopt});
    return;
  }
  if (!peer_hello_) {
    if (type == MessageType::kHello) {
      HandleHello(std::get<HelloMsg>(std::move(message)), now);
    } else {
      Violation(GoodbyeReason::kProtocolError,
                fmt::format("{} before HELLO", name), now);
    }
    return;
  }
  if (type == MessageType::kKeepalive) return;
  if (type == MessageType::kHello) {
    Violation(GoodbyeReason::kProtocolError, "second HELLO", now);
    return;
  }
  if (!established_) {
    Violation(GoodbyeReason::kProtocolError,
              fmt::format("{} before the handshake completed", name), now);
    return;
  }
  bool bitfield_allowed = std::exchange(peer_may_bitfield_, false);
  const uint32_t count = version_->chunk_count;
  auto check_range = [&](const std::vector<uint32_t>& indices) {
    for (uint32_t i : indices) {
      if (i >= count) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("{} names chunk {}, the version has {}", name, i,
                              count),
                  now);
        return false;
      }
    }
    return true;
  };
  switch (type) {
    case MessageType::kBitfield: {
      auto& bits = std::get<BitfieldMsg>(message).bits;
      if (!bitfield_allowed) {
        Violation(GoodbyeReason::kProtocolError,
                  "BITFIELD is allowed only once, right after HELLO", now);
        return;
      }
      if (bits.size() != count) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("BITFIELD has {} bits, the version has {} "
                              "chunks",
                              bits.size(), count),
                  now);
        return;
      }
      events_.push_back(BitfieldReceived{std::move(bits)});
      return;
    }
    case MessageType::kHave: {
      auto& indices = std::get<HaveMsg>(message).indices;
      if (check_range(indices)) {
        events_.push_back(HaveReceived{std::move(indices)});
      }
      return;
    }
    case MessageType::kRequest: {
      auto& indices = std::get<RequestMsg>(message).indices;
      if (!check_range(indices)) return;
      size_t limit = opts_.limits.max_outstanding_requests;
      if (theirs_.size() + indices.size() > limit) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("{} outstanding requests exceed the limit {}",
                              theirs_.size() + indices.size(), limit),
                  now);
        return;
      }
      if (indices.size() > 1 && version_->chunk_lengths) {
        uint64_t bytes = 0;
        for (uint32_t i : indices) bytes += (*version_->chunk_lengths)[i];
        if (bytes > opts_.limits.max_request_bytes) {
          Violation(GoodbyeReason::kProtocolError,
                    fmt::format("REQUEST batch asks for {} bytes, the limit "
                                "is {}",
                                bytes, opts_.limits.max_request_bytes),
                    now);
          return;
        }
      }
      for (uint32_t i : indices) {
        if (!theirs_.insert(i).second) {
          Violation(GoodbyeReason::kProtocolError,
                    fmt::format("REQUEST for chunk {}, which is already "
                                "requested",
                                i),
                    now);
          return;
        }
      }
      events_.push_back(RequestReceived{std::move(indices)});
      return;
    }
    case MessageType::kData: {
      auto& data = std::get<DataMsg>(message);
      auto it = ours_.find(data.index);
      if (it == ours_.end()) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("DATA for chunk {}, which we did not request",
                              data.index),
                  now);
        return;
      }
      if (version_->chunk_lengths &&
          data.bytes().size() != (*version_->chunk_lengths)[data.index]) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("DATA for chunk {} has {} bytes, the chunk has "
                              "{}",
                              data.index, data.bytes().size(),
                              (*version_->chunk_lengths)[data.index]),
                  now);
        return;
      }
      bool cancelled = it->second;
      ours_.erase(it);
      events_.push_back(DataReceived{std::move(data), cancelled});
      return;
    }
    case MessageType::kCancel: {
      auto& indices = std::get<CancelMsg>(message).indices;
      if (!check_range(indices)) return;
      std::vector<uint32_t> dropped;
      for (uint32_t i : indices) {
        // Not pending: our answer crossed the CANCEL. Nothing to do.
        if (theirs_.erase(i) == 0) continue;
        EncodeReject(i, RejectReason::kCancelled, Out());
        dropped.push_back(i);
      }
      if (!dropped.empty()) {
        we_may_bitfield_ = false;
        Queued(now);
        events_.push_back(CancelReceived{std::move(dropped)});
      }
      return;
    }
    case MessageType::kReject: {
      auto& reject = std::get<RejectMsg>(message);
      if (ours_.erase(reject.index) == 0) {
        Violation(GoodbyeReason::kProtocolError,
                  fmt::format("REJECT for chunk {}, which we did not request",
                              reject.index),
                  now);
        return;
      }
      events_.push_back(RejectReceived{reject.index, reject.reason});
      return;
    }
    default:
      Violation(GoodbyeReason::kProtocolError,
                fmt::format("unexpected {}", name), now);
      return;
  }
}

void PeerSession::OnTimer(TimePoint now) {
  if (closed_) return;
  if (!established_ && now >= started_ + opts_.limits.handshake_timeout) {
    Violation(GoodbyeReason::kTimeout,
              fmt::format("handshake not completed within {} s",
                          Seconds(opts_.limits.handshake_timeout)),
              now);
    return;
  }
  if (now >= last_received_ + opts_.limits.idle_timeout) {
    Violation(GoodbyeReason::kTimeout,
              fmt::format("nothing received for {} s",
                          Seconds(opts_.limits.idle_timeout)),
              now);
    return;
  }
  if (hello_sent_ && payload_owed_ == 0 &&
      now >= last_sent_ + opts_.limits.keepalive_interval) {
    EncodeKeepalive(Out());
    Queued(now);
  }
}

void PeerSession::OnConnectionLost(TimePoint) {
  if (closed_) return;
  Finish(Closed{GoodbyeReason::kNormal, "connection lost", false,
                Error{ErrorCode::kIo, PeerName(),
                      "connection ended without GOODBYE", 0}});
}

TimePoint PeerSession::NextDeadline() const {
  if (closed_) return TimePoint::max();
  TimePoint d = last_received_ + opts_.limits.idle_timeout;
  if (!established_) {
    d = std::min(d, started_ + opts_.limits.handshake_timeout);
  }
  if (hello_sent_ && payload_owed_ == 0) {
    d = std::min(d, last_sent_ + opts_.limits.keepalive_interval);
  }
  return d;
}

// ---------------------------------------------------------------------------
// Commands

Status PeerSession::Accept(PeerVersionInfo version, TimePoint now) {
  if (opts_.role != PeerRole::kAcceptor || closed_ || established_ ||
      !peer_hello_) {
    return Misuse("Accept() is for an acceptor after HelloReceived");
  }
  if (auto st = ValidateVersion(version); !st) return st;
  SendOurHello();
  Queued(now);
  Establish(std::move(version));
  return {};
}

Status PeerSession::CheckOpen(std::string_view what) const {
  if (closed_) return Misuse(fmt::format("{} after the session closed", what));
  if (!established_) {
    return Misuse(fmt::format("{} before the handshake completed", what));
  }
  return {};
}

Status PeerSession::CheckIndices(std::span<const uint32_t> indices,
                                 std::string_view what) const {
  if (auto st = CheckOpen(what); !st) return st;
  for (uint32_t i : indices) {
    if (i >= version_->chunk_count) {
      return Misuse(fmt::format("{} of chunk {}, the version has {}", what, i,
                                version_->chunk_count));
    }
  }
  return {};
}

Status PeerSession::SendBitfield(const Bitfield& bits, TimePoint now) {
  if (auto st = CheckOpen("SendBitfield"); !st) return st;
  if (!we_may_bitfield_) {
    return Misuse("SendBitfield must come first after the handshake, once");
  }
  if (bits.size() != version_->chunk_count) {
    return Misuse(fmt::format("SendBitfield of {} bits, the version has {}",
                              bits.size(), version_->chunk_count));
  }
  we_may_bitfield_ = false;
  EncodeBitfield(bits, Out());
  Queued(now);
  return {};
}

Status PeerSession::SendHave(std::span<const uint32_t> indices, TimePoint now) {
  if (auto st = CheckIndices(indices, "SendHave"); !st) return st;
  size_t per_frame = peer_hello_->max_indices;
  for (size_t at = 0; at < indices.size(); at += per_frame) {
    EncodeHave(indices.subspan(at, std::min(per_frame, indices.size() - at)),
               Out());
  }
  if (!indices.empty()) {
    we_may_bitfield_ = false;
    Queued(now);
  }
  return {};
}

Status PeerSession::SendRequest(std::span<const uint32_t> indices,
                                TimePoint now) {
  if (auto st = CheckIndices(indices, "SendRequest"); !st) return st;
  if (ours_.size() + indices.size() > peer_hello_->max_requests) {
    return Misuse(
        fmt::format("SendRequest: {} outstanding requests exceed "
                    "the peer's limit {}",
                    ours_.size() + indices.size(), peer_hello_->max_requests));
  }
  std::unordered_set<uint32_t> seen;
  for (uint32_t i : indices) {
    if (ours_.contains(i) || !seen.insert(i).second) {
      return Misuse(fmt::format("SendRequest: chunk {} already requested", i));
    }
  }
  // Batches within the peer's limits: count, and bytes when lengths known.
  const auto* lengths = version_->chunk_lengths.get();
  size_t start = 0;
  uint64_t bytes = 0;
  for (size_t k = 0; k <= indices.size(); ++k) {
    uint64_t len = (k < indices.size() && lengths) ? (*lengths)[indices[k]] : 0;
    bool full = k == indices.size() || k - start == peer_hello_->max_indices ||
                (k > start && bytes + len > peer_hello_->max_request_bytes);
    if (full && k > start) {
      EncodeRequest(indices.subspan(start, k - start), Out());
      start = k;
      bytes = 0;
    }
    bytes += len;
  }
  for (uint32_t i : indices) ours_.emplace(i, false);
  if (!indices.empty()) {
    we_may_bitfield_ = false;
    Queued(now);
  }
  return {};
}

Status PeerSession::SendCancel(std::span<const uint32_t> indices,
                               TimePoint now) {
  if (auto st = CheckIndices(indices, "SendCancel"); !st) return st;
  std::vector<uint32_t> cancel;
  for (uint32_t i : indices) {
    auto it = ours_.find(i);
    // Already answered (event not yet handled) or already cancelled.
    if (it == ours_.end() || it->second) continue;
    it->second = true;
    cancel.push_back(i);
  }
  size_t per_frame = peer_hello_->max_indices;
  for (size_t at = 0; at < cancel.size(); at += per_frame) {
    EncodeCancel(std::span<const uint32_t>(cancel).subspan(
                     at, std::min(per_frame, cancel.size() - at)),
                 Out());
  }
  if (!cancel.empty()) {
    we_may_bitfield_ = false;
    Queued(now);
  }
  return {};
}

Status PeerSession::TakePeerRequest(uint32_t index, std::string_view what) {
  if (auto st = CheckOpen(what); !st) return st;
  if (payload_owed_ != 0) {
    return Misuse(fmt::format("{} while a DATA payload is owed", what));
  }
  if (!theirs_.contains(index)) {
    return MakeError(ErrorCode::kNotFound, "peer session",
                     fmt::format("{}: chunk {} is not waiting for an answer "
                                 "(cancelled or never requested)",
                                 what, index));
  }
  return {};
}

Status PeerSession::SendData(uint32_t index, ByteSpan chunk, TimePoint now) {
  if (auto st = TakePeerRequest(index, "SendData"); !st) return st;
  if (chunk.empty() || chunk.size() > version_->max_chunk_size) {
    return Misuse(fmt::format("SendData of {} bytes", chunk.size()));
  }
  theirs_.erase(index);
  we_may_bitfield_ = false;
  std::vector<uint8_t> frame;
  EncodeData(index, chunk, frame);
  data_frames_.push_back(std::move(frame));
  Queued(now);
  return {};
}

Status PeerSession::SendDataHeader(uint32_t index, uint32_t length,
                                   TimePoint now) {
  if (auto st = TakePeerRequest(index, "SendDataHeader"); !st) return st;
  if (length == 0 || length > version_->max_chunk_size) {
    return Misuse(fmt::format("SendDataHeader of {} bytes", length));
  }
  theirs_.erase(index);
  we_may_bitfield_ = false;
  FlushDataFrames();  // the payload must follow the header directly
  EncodeDataHeader(index, length, Out());
  payload_owed_ = length;
  Queued(now);
  return {};
}

void PeerSession::DataPayloadSent(TimePoint now) {
  if (payload_owed_ == 0) return;
  payload_owed_ = 0;
  out_.insert(out_.end(), held_.begin(), held_.end());
  held_.clear();
  Queued(now);
}

Status PeerSession::SendReject(uint32_t index, RejectReason reason,
                               TimePoint now) {
  if (auto st = TakePeerRequest(index, "SendReject"); !st) return st;
  theirs_.erase(index);
  we_may_bitfield_ = false;
  EncodeReject(index, reason, Out());
  Queued(now);
  return {};
}

void PeerSession::Close(GoodbyeReason reason, std::string_view message,
                        TimePoint now) {
  if (closed_) return;
  FlushDataFrames();
  EncodeGoodbye(reason, message, Out());
  Queued(now);
  Finish(Closed{reason, std::string(message), false, std::nullopt});
}

// ---------------------------------------------------------------------------
// Closing and output

void PeerSession::Violation(GoodbyeReason reason, std::string message,
                            TimePoint now) {
  FlushDataFrames();
  EncodeGoodbye(reason, message, Out());
  Queued(now);
  Error error{ErrorCode::kPeerProtocol, PeerName(), message, 0};
  Finish(Closed{reason, std::move(message), false, std::move(error)});
}

void PeerSession::Finish(Closed closed) {
  closed_ = true;
  ours_.clear();
  theirs_.clear();
  events_.push_back(std::move(closed));
}

void PeerSession::Queued(TimePoint now) { last_sent_ = now; }

void PeerSession::FlushDataFrames() {
  for (auto& frame : data_frames_) {
    Out().insert(Out().end(), frame.begin(), frame.end());
  }
  flushed_data_frames_ += data_frames_.size();
  data_frames_.clear();
}

PeerSession::Output PeerSession::TakeOutput(size_t data_budget) {
  Output o;
  o.bytes = std::exchange(out_, {});
  o.data_frames = std::exchange(flushed_data_frames_, 0);
  // While a SendDataHeader payload is owed, its bytes must follow the
  // header directly: DATA frames wait (held_ holds the control frames).
  if (payload_owed_ != 0) return o;
  size_t data_bytes = 0;
  const size_t flushed = o.data_frames;
  while (!data_frames_.empty() &&
         (o.data_frames == flushed || data_bytes < data_budget)) {
    std::vector<uint8_t>& frame = data_frames_.front();
    data_bytes += frame.size();
    if (o.bytes.empty()) {
      o.bytes = std::move(frame);
    } else {
      o.bytes.insert(o.bytes.end(), frame.begin(), frame.end());
    }
    data_frames_.pop_front();
    ++o.data_frames;
  }
  return o;
}

std::vector<uint8_t> PeerSession::TakeBytesToSend() {
  return TakeOutput(std::numeric_limits<size_t>::max()).bytes;
}

std::optional<PeerEvent> PeerSession::PollEvent() {
  if (events_.empty()) return std::nullopt;
  PeerEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

}  // namespace fleetcast
