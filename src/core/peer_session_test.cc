#include "core/peer_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fleetcast {
namespace {

using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint32_t kChunks = 20;
const TimePoint kT0 = TimePoint() + std::chrono::hours(1);

NodeId Id(uint8_t fill) {
  NodeId id;
  id.fill(fill);
  return id;
}

Digest Root(std::string_view name = "v1") { return Sha256(AsBytes(name)); }

PeerVersionInfo Version(uint32_t chunks = kChunks) {
  PeerVersionInfo v;
  v.chunk_count = chunks;
  v.max_chunk_size = 64 * 1024;
  return v;
}

PeerSessionOptions Initiator(Digest root = Root()) {
  PeerSessionOptions o;
  o.role = PeerRole::kInitiator;
  o.hello.node_id = Id(0xA1);
  o.hello.root = root;
  o.hello.dataset = "models/ranker";
  o.hello.listen_port = 7001;
  o.hello.zone = "z1";
  o.version = Version();
  return o;
}

PeerSessionOptions Acceptor(std::optional<Digest> expected = Root()) {
  PeerSessionOptions o;
  o.role = PeerRole::kAcceptor;
  o.hello.node_id = Id(0xB2);
  o.hello.dataset = "models/ranker";
  o.hello.listen_port = 7002;
  o.hello.flags = HelloMsg::kFlagSeed;
  o.expected_root = expected;
  if (expected) o.version = Version();
  return o;
}

std::vector<uint8_t> Chunk(uint32_t index, size_t size = 1000) {
  std::vector<uint8_t> c(size);
  for (size_t i = 0; i < size; ++i) c[i] = uint8_t(index * 31 + i);
  return c;
}

template <typename T>
std::vector<T> Of(const std::vector<PeerEvent>& events) {
  std::vector<T> out;
  for (const auto& e : events) {
    if (auto* p = std::get_if<T>(&e)) out.push_back(*p);
  }
  return out;
}

// Frames in `bytes` (no preface).
std::vector<PeerMessage> Frames(ByteSpan bytes) {
  FrameDecoder d(1u << 30, 1u << 20);
  std::vector<PeerMessage> out;
  while (!bytes.empty()) {
    auto step = d.Decode(bytes);
    EXPECT_TRUE(step);
    if (!step) break;
    bytes = bytes.subspan(step->consumed);
    if (step->message) out.push_back(std::move(*step->message));
  }
  return out;
}

// Two sessions back to back: a (initiator) and b (acceptor).
struct Pair {
  PeerSession a;
  PeerSession b;
  TimePoint now = kT0;
  std::vector<PeerEvent> a_events, b_events;
  size_t a_to_b_bytes = 0, b_to_a_bytes = 0;

  static Pair Make(PeerSessionOptions ao = Initiator(),
                   PeerSessionOptions bo = Acceptor()) {
    auto a = PeerSession::Create(std::move(ao), kT0);
    auto b = PeerSession::Create(std::move(bo), kT0);
    EXPECT_TRUE(a && b);
    return Pair{std::move(*a), std::move(*b)};
  }

  // Moves bytes both ways until both are quiet; collects events.
  void Pump() {
    for (;;) {
      auto ab = a.TakeBytesToSend();
      auto ba = b.TakeBytesToSend();
      if (ab.empty() && ba.empty()) break;
      a_to_b_bytes += ab.size();
      b_to_a_bytes += ba.size();
      b.OnBytesReceived(ab, now);
      a.OnBytesReceived(ba, now);
    }
    while (auto e = a.PollEvent()) a_events.push_back(std::move(*e));
    while (auto e = b.PollEvent()) b_events.push_back(std::move(*e));
  }

  // Advances time to the earlier deadline, fires timers, pumps.
  void Tick() {
    now = std::min(a.NextDeadline(), b.NextDeadline());
    a.OnTimer(now);
    b.OnTimer(now);
    Pump();
  }
};

Pair Handshaken() {
  Pair p = Pair::Make();
  p.Pump();
  EXPECT_TRUE(p.a.established());
  EXPECT_TRUE(p.b.established());
  return p;
}

// --------------------------------------------------------------------------

TEST(PeerSession, HandshakeAndBitfields) {
  Pair p = Pair::Make();
  auto first = p.a.TakeBytesToSend();
  ASSERT_GE(first.size(), 8u);
  EXPECT_EQ(MatchPeerPreface(first), PrefaceMatch::kPeer);
  p.b.OnBytesReceived(first, p.now);
  p.Pump();
  ASSERT_TRUE(p.a.established() && p.b.established());
  auto a_hellos = Of<HelloReceived>(p.a_events);
  auto b_hellos = Of<HelloReceived>(p.b_events);
  ASSERT_EQ(a_hellos.size(), 1u);
  ASSERT_EQ(b_hellos.size(), 1u);
  EXPECT_EQ(a_hellos[0].hello.node_id, Id(0xB2));
  EXPECT_EQ(a_hellos[0].hello.root, Root());  // acceptor echoes the root
  EXPECT_TRUE(a_hellos[0].hello.flags & HelloMsg::kFlagSeed);
  EXPECT_EQ(a_hellos[0].hello.max_requests, 64);
  EXPECT_EQ(b_hellos[0].hello.zone, "z1");

  Bitfield full(kChunks), some(kChunks);
  for (uint32_t i = 0; i < kChunks; ++i) full.Set(i);
  some.Set(3);
  ASSERT_TRUE(p.b.SendBitfield(full, p.now));
  ASSERT_TRUE(p.a.SendBitfield(some, p.now));
  EXPECT_FALSE(p.a.SendBitfield(some, p.now));  // only once
  p.Pump();
  ASSERT_EQ(Of<BitfieldReceived>(p.a_events).size(), 1u);
  EXPECT_EQ(Of<BitfieldReceived>(p.a_events)[0].bits, full);
  EXPECT_EQ(Of<BitfieldReceived>(p.b_events)[0].bits, some);
  EXPECT_FALSE(p.a.closed() || p.b.closed());
}

TEST(PeerSession, AcceptorDecidesTheRootAfterHello) {
  Pair p = Pair::Make(Initiator(), Acceptor(std::nullopt));
  p.Pump();
  EXPECT_FALSE(p.b.established());
  ASSERT_EQ(Of<HelloReceived>(p.b_events).size(), 1u);
  EXPECT_EQ(Of<HelloReceived>(p.b_events)[0].hello.root, Root());
  EXPECT_FALSE(p.a.established());  // no answer yet
  ASSERT_TRUE(p.b.Accept(Version(), p.now));
  p.Pump();
  EXPECT_TRUE(p.a.established() && p.b.established());
}

TEST(PeerSession, RequestServeRejectAndZeroCopyHeader) {
  Pair p = Handshaken();
  std::vector<uint32_t> want = {1, 2, 3};
  ASSERT_TRUE(p.a.SendRequest(want, p.now));
  EXPECT_EQ(p.a.outstanding_requests(), 3u);
  p.Pump();
  auto reqs = Of<RequestReceived>(p.b_events);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].indices, want);
  EXPECT_EQ(p.b.pending_peer_requests(), 3u);

  ASSERT_TRUE(p.b.SendData(1, Chunk(1), p.now));
  // Header only; output queued meanwhile waits for the payload.
  std::vector<uint8_t> c2 = Chunk(2, 5000);
  ASSERT_TRUE(p.b.SendDataHeader(2, uint32_t(c2.size()), p.now));
  ASSERT_TRUE(p.b.SendHave(std::vector<uint32_t>{7}, p.now));
  EXPECT_FALSE(p.b.SendData(3, Chunk(3), p.now));  // payload owed
  auto bytes = p.b.TakeBytesToSend();
  ASSERT_GE(bytes.size(), kDataHeaderBytes);
  EXPECT_EQ(
      Frames(ByteSpan(bytes).first(bytes.size() - kDataHeaderBytes)).size(),
      1u);  // DATA 1, then the 9-byte header of DATA 2
  bytes.insert(bytes.end(), c2.begin(), c2.end());  // the "sendfile"
  p.b.DataPayloadSent(p.now);
  ASSERT_TRUE(p.b.SendReject(3, RejectReason::kNotHave, p.now));
  EXPECT_FALSE(p.b.SendReject(3, RejectReason::kNotHave, p.now));
  p.a.OnBytesReceived(bytes, p.now);
  p.Pump();

  auto data = Of<DataReceived>(p.a_events);
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].data.index, 1u);
  EXPECT_TRUE(std::ranges::equal(data[0].data.bytes(), Chunk(1)));
  EXPECT_EQ(data[1].data.index, 2u);
  EXPECT_TRUE(std::ranges::equal(data[1].data.bytes(), c2));
  EXPECT_FALSE(data[1].cancelled);
  ASSERT_EQ(Of<HaveReceived>(p.a_events).size(), 1u);
  auto rejects = Of<RejectReceived>(p.a_events);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].index, 3u);
  EXPECT_EQ(rejects[0].reason, RejectReason::kNotHave);
  EXPECT_EQ(p.a.outstanding_requests(), 0u);
  EXPECT_EQ(p.b.pending_peer_requests(), 0u);
  EXPECT_FALSE(p.a.closed() || p.b.closed());
}

// Control frames overtake DATA still queued in the session; DATA keeps its
// order, and GOODBYE comes after every DATA frame queued before it.
TEST(PeerSession, ControlFramesGoAheadOfQueuedData) {
  Pair p = Handshaken();
  ASSERT_TRUE(p.a.SendRequest(std::vector<uint32_t>{1, 2, 3}, p.now));
  p.Pump();
  ASSERT_TRUE(p.b.SendData(1, Chunk(1), p.now));
  ASSERT_TRUE(p.b.SendData(2, Chunk(2), p.now));
  ASSERT_TRUE(p.b.SendHave(std::vector<uint32_t>{7}, p.now));
  auto first = p.b.TakeOutput(/*data_budget=*/0);
  EXPECT_EQ(first.data_frames, 1u);
  auto frames = Frames(first.bytes);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<HaveMsg>(frames[0]));
  ASSERT_TRUE(std::holds_alternative<DataMsg>(frames[1]));
  EXPECT_EQ(std::get<DataMsg>(frames[1]).index, 1u);
  // A HAVE queued after DATA 2 still goes first.
  ASSERT_TRUE(p.b.SendHave(std::vector<uint32_t>{8}, p.now));
  EXPECT_TRUE(p.b.has_bytes_to_send());
  auto second = p.b.TakeOutput(0);
  EXPECT_EQ(second.data_frames, 1u);
  frames = Frames(second.bytes);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<HaveMsg>(frames[0]));
  EXPECT_EQ(std::get<DataMsg>(frames[1]).index, 2u);
  EXPECT_FALSE(p.b.has_bytes_to_send());
  // Closing: DATA 3, then GOODBYE.
  ASSERT_TRUE(p.b.SendData(3, Chunk(3), p.now));
  p.b.Close(GoodbyeReason::kNormal, "bye", p.now);
  auto last = p.b.TakeOutput(0);
  EXPECT_EQ(last.data_frames, 1u);
  frames = Frames(last.bytes);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(std::get<DataMsg>(frames[0]).index, 3u);
  EXPECT_TRUE(std::holds_alternative<GoodbyeMsg>(frames[1]));
  // The receiver gets all three chunks intact.
  p.a.OnBytesReceived(first.bytes, p.now);
  p.a.OnBytesReceived(second.bytes, p.now);
  p.a.OnBytesReceived(last.bytes, p.now);
  p.Pump();
  auto data = Of<DataReceived>(p.a_events);
  ASSERT_EQ(data.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(data[i].data.index, i + 1);
    EXPECT_TRUE(std::ranges::equal(data[i].data.bytes(), Chunk(i + 1)));
  }
}

TEST(PeerSession, CancelBeforeServedIsAnsweredWithReject) {
  Pair p = Handshaken();
  ASSERT_TRUE(p.a.SendRequest(std::vector<uint32_t>{4, 5}, p.now));
  ASSERT_TRUE(p.a.SendCancel(std::vector<uint32_t>{5}, p.now));
  p.Pump();
  auto cancels = Of<CancelReceived>(p.b_events);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_THAT(cancels[0].indices, ElementsAre(5u));
  EXPECT_EQ(p.b.SendData(5, Chunk(5), p.now).error().code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(p.b.SendData(4, Chunk(4), p.now));
  p.Pump();
  auto rejects = Of<RejectReceived>(p.a_events);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].reason, RejectReason::kCancelled);
  EXPECT_EQ(Of<DataReceived>(p.a_events).size(), 1u);
  EXPECT_EQ(p.a.outstanding_requests(), 0u);
}

TEST(PeerSession, LateDataCrossingCancelIsTolerated) {
  Pair p = Handshaken();
  ASSERT_TRUE(p.a.SendRequest(std::vector<uint32_t>{6}, p.now));
  p.Pump();
  // Both act before seeing the other's message.
  ASSERT_TRUE(p.b.SendData(6, Chunk(6), p.now));
  ASSERT_TRUE(p.a.SendCancel(std::vector<uint32_t>{6}, p.now));
  p.Pump();
  auto data = Of<DataReceived>(p.a_events);
  ASSERT_EQ(data.size(), 1u);
  EXPECT_TRUE(data[0].cancelled);
  EXPECT_TRUE(Of<CancelReceived>(p.b_events).empty());
  EXPECT_EQ(p.a.outstanding_requests(), 0u);
  EXPECT_FALSE(p.a.closed() || p.b.closed());
}

TEST(PeerSession, RequestsAreBatchedWithinThePeersLimits) {
  auto lengths = std::make_shared<std::vector<uint32_t>>(kChunks, 3u << 20);
  PeerSessionOptions ao = Initiator(), bo = Acceptor();
  ao.version->chunk_lengths = lengths;
  ao.version->max_chunk_size = 4u << 20;
  bo.version = ao.version;
  bo.limits.max_outstanding_requests = 4;
  Pair p = Pair::Make(ao, bo);
  p.Pump();
  // 3 MiB chunks, 4 MiB per batch: one REQUEST frame each.
  ASSERT_TRUE(p.a.SendRequest(std::vector<uint32_t>{0, 1, 2}, p.now));
  auto frames = Frames(p.a.TakeBytesToSend());
  EXPECT_EQ(frames.size(), 3u);
  // The peer announced 4 outstanding requests at most.
  auto over = p.a.SendRequest(std::vector<uint32_t>{3, 4}, p.now);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kInternal);
  EXPECT_FALSE(p.a.SendRequest(std::vector<uint32_t>{0}, p.now));  // again
  EXPECT_FALSE(p.a.SendRequest(std::vector<uint32_t>{kChunks}, p.now));
}

TEST(PeerSession, KeepalivesKeepAnIdleConnectionOpen) {
  Pair p = Handshaken();
  size_t before = p.a_to_b_bytes;
  while (p.now < kT0 + std::chrono::minutes(5)) p.Tick();
  EXPECT_FALSE(p.a.closed() || p.b.closed());
  // At least one KEEPALIVE (5 bytes) per 15 s from a.
  EXPECT_GE(p.a_to_b_bytes - before, 5u * (300 / 15));
  EXPECT_TRUE(Of<Closed>(p.a_events).empty());
}

TEST(PeerSession, IdlePeerTimesOut) {
  Pair p = Handshaken();
  // b goes silent: nothing of b's reaches a any more.
  TimePoint now = p.now;
  int keepalives = 0;
  while (!p.a.closed()) {
    now = p.a.NextDeadline();
    p.a.OnTimer(now);
    auto out = Frames(p.a.TakeBytesToSend());
    for (auto& m : out) keepalives += std::holds_alternative<KeepaliveMsg>(m);
  }
  EXPECT_EQ(now, p.now + seconds(60));
  EXPECT_EQ(keepalives, 3);  // at 15, 30, 45 s
  auto e = p.a.PollEvent();
  ASSERT_TRUE(e);
  auto* closed = std::get_if<Closed>(&*e);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->reason, GoodbyeReason::kTimeout);
  ASSERT_TRUE(closed->error);
  EXPECT_EQ(closed->error->code, ErrorCode::kPeerProtocol);
  EXPECT_THAT(closed->error->message, HasSubstr("nothing received for 60 s"));
  EXPECT_EQ(p.a.NextDeadline(), TimePoint::max());
}

TEST(PeerSession, HandshakeTimeout) {
  auto b = PeerSession::Create(Acceptor(), kT0);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->NextDeadline(), kT0 + seconds(10));
  b->OnBytesReceived(ByteSpan(kPeerPreface).first(4), kT0 + seconds(1));
  b->OnTimer(kT0 + seconds(10));
  ASSERT_TRUE(b->closed());
  auto closed = std::get<Closed>(*b->PollEvent());
  EXPECT_THAT(closed.error->message, HasSubstr("handshake not completed"));
}

TEST(PeerSession, GoodbyeClosesCleanly) {
  Pair p = Handshaken();
  p.a.Close(GoodbyeReason::kNormal, "done", p.now);
  EXPECT_TRUE(p.a.closed());
  p.Pump();
  auto b_closed = Of<Closed>(p.b_events);
  ASSERT_EQ(b_closed.size(), 1u);
  EXPECT_TRUE(b_closed[0].by_peer);
  EXPECT_EQ(b_closed[0].message, "done");
  EXPECT_FALSE(b_closed[0].error);
  auto a_closed = Of<Closed>(p.a_events);
  ASSERT_EQ(a_closed.size(), 1u);
  EXPECT_FALSE(a_closed[0].error);
  EXPECT_FALSE(p.a.SendHave(std::vector<uint32_t>{1}, p.now));
}

TEST(PeerSession, ConnectionLostWithoutGoodbyeIsIo) {
  Pair p = Handshaken();
  p.b.OnConnectionLost(p.now);
  auto closed = std::get<Closed>(*p.b.PollEvent());
  ASSERT_TRUE(closed.error);
  EXPECT_EQ(closed.error->code, ErrorCode::kIo);
}

TEST(PeerSession, UnknownRootIsRefusedWithAReason) {
  Pair p = Pair::Make(Initiator(Root("v2")), Acceptor(Root("v1")));
  p.Pump();
  auto a_closed = Of<Closed>(p.a_events);
  ASSERT_EQ(a_closed.size(), 1u);
  EXPECT_TRUE(a_closed[0].by_peer);
  EXPECT_EQ(a_closed[0].reason, GoodbyeReason::kUnknownRoot);
  EXPECT_THAT(a_closed[0].message, HasSubstr("is not served here"));
  EXPECT_TRUE(p.b.closed());
}

TEST(PeerSession, ProtocolVersionMismatch) {
  auto b = PeerSession::Create(Acceptor(), kT0);
  ASSERT_TRUE(b);
  std::vector<uint8_t> in(kPeerPreface.begin(), kPeerPreface.end());
  // HELLO of protocol version 2 with a body we do not understand.
  for (uint8_t byte : {5, 0, 0, 0, 1, 2, 0, 0xAA, 0xBB}) in.push_back(byte);
  b->OnBytesReceived(in, kT0);
  auto closed = std::get<Closed>(*b->PollEvent());
  EXPECT_EQ(closed.reason, GoodbyeReason::kIncompatibleVersion);
  ASSERT_TRUE(closed.error);
  EXPECT_EQ(closed.error->code, ErrorCode::kPeerProtocol);
  EXPECT_THAT(closed.error->message,
              HasSubstr("peer speaks protocol version 2, we speak 1"));
  auto sent = Frames(b->TakeBytesToSend());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(std::get<GoodbyeMsg>(sent[0]).reason,
            GoodbyeReason::kIncompatibleVersion);
}

TEST(PeerSession, SelfConnectionIsClosed) {
  PeerSessionOptions bo = Acceptor();
  bo.hello.node_id = Initiator().hello.node_id;
  Pair p = Pair::Make(Initiator(), bo);
  p.Pump();
  EXPECT_TRUE(p.b.closed());
  ASSERT_EQ(Of<Closed>(p.a_events).size(), 1u);
  EXPECT_EQ(Of<Closed>(p.a_events)[0].reason, GoodbyeReason::kSelfConnection);
}

// A peer's rule breaking: GOODBYE kProtocolError goes out and Closed says
// which rule, with kPeerProtocol.
void ExpectViolation(PeerSession& s, ByteSpan input, std::string_view want) {
  (void)s.TakeBytesToSend();
  while (s.PollEvent()) {
  }
  s.OnBytesReceived(input, kT0);
  ASSERT_TRUE(s.closed()) << want;
  std::optional<Closed> closed;
  while (auto e = s.PollEvent()) {
    if (auto* c = std::get_if<Closed>(&*e)) closed = *c;
  }
  ASSERT_TRUE(closed && closed->error) << want;
  EXPECT_EQ(closed->error->code, ErrorCode::kPeerProtocol);
  EXPECT_THAT(closed->error->message, HasSubstr(want));
  auto sent = Frames(s.TakeBytesToSend());
  ASSERT_FALSE(sent.empty());
  auto* bye = std::get_if<GoodbyeMsg>(&sent.back());
  ASSERT_TRUE(bye) << want;
  EXPECT_THAT(bye->message, HasSubstr(want));
}

template <typename F>
std::vector<uint8_t> Bytes(F&& encode) {
  std::vector<uint8_t> out;
  encode(out);
  return out;
}

TEST(PeerSession, ViolationsCloseTheSession) {
  std::vector<uint32_t> too_many(65);
  for (uint32_t i = 0; i < 65; ++i) too_many[i] = i % kChunks;
  struct Case {
    std::vector<uint8_t> bytes;
    std::string want;
    bool to_acceptor = false;
  };
  std::vector<Case> cases = {
      {Bytes([](auto& o) { EncodeData(3, Chunk(3), o); }),
       "DATA for chunk 3, which we did not request"},
      {Bytes([](auto& o) { EncodeReject(3, RejectReason::kBusy, o); }),
       "REJECT for chunk 3, which we did not request"},
      {Bytes([](auto& o) { EncodeHave(std::vector<uint32_t>{kChunks}, o); }),
       "HAVE names chunk 20, the version has 20"},
      {Bytes([](auto& o) {
         EncodeHave(std::vector<uint32_t>{1}, o);
         EncodeBitfield(Bitfield(kChunks), o);
       }),
       "BITFIELD is allowed only once, right after HELLO"},
      {Bytes([](auto& o) {
         EncodeBitfield(Bitfield(kChunks), o);
         EncodeBitfield(Bitfield(kChunks), o);
       }),
       "BITFIELD is allowed only once"},
      {Bytes([](auto& o) { EncodeBitfield(Bitfield(kChunks + 1), o); }),
       "BITFIELD has 21 bits, the version has 20 chunks"},
      {Bytes([](auto& o) {
         HelloMsg h = Acceptor().hello;
         h.max_requests = h.max_indices = 1;
         (void)EncodeHello(h, o);
       }),
       "second HELLO"},
      {Bytes([](auto& o) { EncodeHave(std::vector<uint32_t>(5000, 1), o); }),
       "HAVE frame length 20005 exceeds its maximum"},
      {Bytes([](auto& o) { EncodeDataHeader(1, 100u << 20, o); }),
       "exceeds the limit"},
      {Bytes([&](auto& o) { EncodeRequest(too_many, o); }),
       "65 outstanding requests exceed the limit 64", true},
      {Bytes([](auto& o) {
         EncodeRequest(std::vector<uint32_t>{2, 2}, o);
       }),
       "REQUEST for chunk 2, which is already requested", true},
  };
  for (const auto& c : cases) {
    Pair p = Handshaken();
    ExpectViolation(c.to_acceptor ? p.b : p.a, c.bytes, c.want);
  }
}

TEST(PeerSession, HandshakeOrderViolations) {
  {
    auto b = PeerSession::Create(Acceptor(), kT0);
    ExpectViolation(*b, AsBytes("GET / HTTP/1.1\r\n"), "peer preface");
  }
  {
    auto b = PeerSession::Create(Acceptor(), kT0);
    auto in = Bytes([](auto& o) {
      o.assign(kPeerPreface.begin(), kPeerPreface.end());
      EncodeHave(std::vector<uint32_t>{1}, o);
    });
    ExpectViolation(*b, in, "HAVE before HELLO");
  }
  {
    // Acceptor still deciding on the root: only KEEPALIVE / GOODBYE allowed.
    Pair p = Pair::Make(Initiator(), Acceptor(std::nullopt));
    p.Pump();
    auto in = Bytes([](auto& o) {
      EncodeKeepalive(o);
      EncodeRequest(std::vector<uint32_t>{1}, o);
    });
    ExpectViolation(p.b, in, "REQUEST before the handshake completed");
  }
  {
    // An acceptor answering for another root.
    auto a = PeerSession::Create(Initiator(), kT0);
    HelloMsg h = Acceptor().hello;
    h.root = Root("other");
    h.max_requests = h.max_indices = 1;
    auto in = Bytes([&](auto& o) { (void)EncodeHello(h, o); });
    ExpectViolation(*a, in, "peer answered for version root");
  }
}

TEST(PeerSession, WrongDataLengthWhenLengthsKnown) {
  auto lengths = std::make_shared<std::vector<uint32_t>>(kChunks, 1000);
  PeerSessionOptions ao = Initiator(), bo = Acceptor();
  ao.version->chunk_lengths = lengths;
  Pair p = Pair::Make(ao, bo);
  p.Pump();
  ASSERT_TRUE(p.a.SendRequest(std::vector<uint32_t>{1}, p.now));
  p.Pump();
  ExpectViolation(p.a, Bytes([](auto& o) { EncodeData(1, Chunk(1, 999), o); }),
                  "DATA for chunk 1 has 999 bytes, the chunk has 1000");
}

TEST(PeerSession, CreateChecksOptions) {
  PeerSessionOptions o = Initiator();
  o.version.reset();
  EXPECT_EQ(PeerSession::Create(o, kT0).error().code,
            ErrorCode::kInvalidArgument);
  o = Initiator();
  o.hello.zone.assign(300, 'z');
  EXPECT_FALSE(PeerSession::Create(o, kT0));
  o = Initiator();
  o.version->max_chunk_size = (64u << 20) + 1;
  EXPECT_FALSE(PeerSession::Create(o, kT0));
}

}  // namespace
}  // namespace fleetcast
