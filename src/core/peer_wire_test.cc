#include "core/peer_wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace fleetcast {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kMaxFrame = (1u << 20) + PeerLimits::kFrameSlack;

HelloMsg SampleHello() {
  HelloMsg h;
  for (size_t i = 0; i < h.node_id.size(); ++i) h.node_id[i] = uint8_t(i + 1);
  h.root = Sha256(AsBytes("root"));
  h.dataset = "models/ranker";
  h.listen_port = 7070;
  h.zone = "eu-west-1a";
  h.flags = HelloMsg::kFlagSeed;
  h.max_requests = 64;
  h.max_request_bytes = 4u << 20;
  h.max_indices = 4096;
  return h;
}

Bitfield SampleBits(uint32_t n) {
  Bitfield b(n);
  for (uint32_t i = 0; i < n; i += 3) b.Set(i);
  return b;
}

std::vector<PeerMessage> AllMessages() {
  std::vector<PeerMessage> m;
  m.push_back(SampleHello());
  m.push_back(BitfieldMsg{SampleBits(13)});
  m.push_back(BitfieldMsg{Bitfield(0)});
  m.push_back(HaveMsg{{0, 7, 4000000}});
  m.push_back(RequestMsg{{5}});
  m.push_back(RequestMsg{{1, 2, 3, 4}});
  std::vector<uint8_t> chunk(3000);
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = uint8_t(i * 7);
  m.push_back(DataMsg{9, chunk, 0});
  m.push_back(CancelMsg{{9, 10}});
  m.push_back(RejectMsg{3, RejectReason::kNotHave});
  m.push_back(RejectMsg{4, RejectReason::kCancelled});
  m.push_back(KeepaliveMsg{});
  m.push_back(GoodbyeMsg{GoodbyeReason::kNormal, "bye"});
  m.push_back(GoodbyeMsg{GoodbyeReason::kTimeout, ""});
  return m;
}

std::vector<uint8_t> EncodeAll(const std::vector<PeerMessage>& messages) {
  std::vector<uint8_t> out;
  for (const auto& m : messages) EXPECT_TRUE(EncodeMessage(m, out));
  return out;
}

// Feeds `bytes` in slices of the given sizes (cycled) and collects messages.
Result<std::vector<PeerMessage>> DecodeSlices(
    ByteSpan bytes, const std::function<size_t()>& next_size,
    uint32_t max_frame = kMaxFrame) {
  FrameDecoder decoder(max_frame, 4096);
  std::vector<PeerMessage> out;
  while (!bytes.empty()) {
    ByteSpan slice = bytes.first(std::min(bytes.size(), next_size()));
    bytes = bytes.subspan(slice.size());
    while (!slice.empty()) {
      auto step = decoder.Decode(slice);
      if (!step) return std::unexpected(step.error());
      slice = slice.subspan(step->consumed);
      if (step->message) out.push_back(std::move(*step->message));
    }
  }
  if (!decoder.at_frame_boundary()) {
    return MakeError(ErrorCode::kPeerProtocol, "", "truncated");
  }
  return out;
}

Result<std::vector<PeerMessage>> DecodeWhole(ByteSpan bytes,
                                             uint32_t max_frame = kMaxFrame) {
  return DecodeSlices(
      bytes, [&] { return bytes.size(); }, max_frame);
}

// One frame with a hand-made body.
std::vector<uint8_t> Frame(uint8_t type, std::vector<uint8_t> body) {
  std::vector<uint8_t> f;
  uint32_t len = static_cast<uint32_t>(body.size() + 1);
  for (int i = 0; i < 4; ++i) f.push_back(uint8_t(len >> 8 * i));
  f.push_back(type);
  f.insert(f.end(), body.begin(), body.end());
  return f;
}

std::vector<uint8_t> U32(uint32_t v) {
  return {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
}

std::vector<uint8_t> Cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string DecodeError(const std::vector<uint8_t>& bytes) {
  auto r = DecodeWhole(bytes);
  if (r) return "decoded";
  EXPECT_EQ(r.error().code, ErrorCode::kPeerProtocol);
  return r.error().message;
}

// --------------------------------------------------------------------------

TEST(PeerWirePreface, MatchesPrefixesAndRejectsHttp) {
  EXPECT_EQ(MatchPeerPreface({}), PrefaceMatch::kNeedMore);
  EXPECT_EQ(MatchPeerPreface(ByteSpan(kPeerPreface).first(3)),
            PrefaceMatch::kNeedMore);
  EXPECT_EQ(MatchPeerPreface(kPeerPreface), PrefaceMatch::kPeer);
  EXPECT_EQ(MatchPeerPreface(AsBytes("GET / HTTP/1.1\r\n")),
            PrefaceMatch::kNotPeer);
  std::vector<uint8_t> wrong(kPeerPreface.begin(), kPeerPreface.end());
  wrong[7] = '2';
  EXPECT_EQ(MatchPeerPreface(wrong), PrefaceMatch::kNotPeer);
}

TEST(PeerWireBitfield, MsbFirstAndSpareBits) {
  Bitfield b(10);
  b.Set(0);
  b.Set(9);
  EXPECT_EQ(b.bytes().size(), 2u);
  EXPECT_EQ(b.bytes()[0], 0x80);
  EXPECT_EQ(b.bytes()[1], 0x40);
  EXPECT_TRUE(b.Test(9));
  EXPECT_FALSE(b.Test(8));
  EXPECT_FALSE(b.Test(10));
  EXPECT_EQ(b.Count(), 2u);
  std::vector<uint8_t> spare = {0x80, 0x60};
  auto bad = Bitfield::FromBytes(10, spare);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("spare bits"));
  EXPECT_FALSE(Bitfield::FromBytes(10, std::vector<uint8_t>{0x80}));
}

TEST(PeerWireCodec, RoundTripsEveryMessage) {
  auto messages = AllMessages();
  auto bytes = EncodeAll(messages);
  auto decoded = DecodeWhole(bytes);
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(*decoded, messages);
}

TEST(PeerWireCodec, DataHeaderThenPayloadEqualsData) {
  std::vector<uint8_t> chunk = {1, 2, 3, 4, 5};
  std::vector<uint8_t> whole, split;
  EncodeData(77, chunk, whole);
  EncodeDataHeader(77, 5, split);
  EXPECT_EQ(split.size(), kDataHeaderBytes);
  split.insert(split.end(), chunk.begin(), chunk.end());
  EXPECT_EQ(whole, split);
  // Byte layout: length 10 (type + index + 5), type 5, index 77.
  EXPECT_EQ(std::vector<uint8_t>(whole.begin(), whole.begin() + 9),
            (std::vector<uint8_t>{10, 0, 0, 0, 5, 77, 0, 0, 0}));
}

TEST(PeerWireCodec, DataIsHandedOutInTheFrameBuffer) {
  std::vector<uint8_t> bytes;
  EncodeData(1, std::vector<uint8_t>(100, 0xAB), bytes);
  auto decoded = DecodeWhole(bytes);
  ASSERT_TRUE(decoded);
  auto& data = std::get<DataMsg>((*decoded)[0]);
  EXPECT_EQ(data.offset, 4u);
  EXPECT_EQ(data.frame.size(), 104u);
  EXPECT_EQ(data.bytes().data(), data.frame.data() + 4);
}

TEST(PeerWireFrameDecoder, OneByteAtATime) {
  auto messages = AllMessages();
  auto bytes = EncodeAll(messages);
  auto decoded = DecodeSlices(bytes, [] { return size_t{1}; });
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(*decoded, messages);
}

TEST(PeerWireFrameDecoder, RandomSplits) {
  auto messages = AllMessages();
  auto bytes = EncodeAll(messages);
  std::mt19937_64 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::uniform_int_distribution<size_t> size(1, 1 + round * 20);
    auto decoded = DecodeSlices(bytes, [&] { return size(rng); });
    ASSERT_TRUE(decoded) << decoded.error().ToString();
    ASSERT_EQ(*decoded, messages) << "round " << round;
  }
}

TEST(PeerWireFrameDecoder, OversizedLengthRejectedBeforeAllocation) {
  // Only the 5 header bytes: the error comes before any payload arrives.
  std::vector<uint8_t> header = Cat({U32(0xFFFFFFF0u), {5}});
  FrameDecoder decoder(kMaxFrame, 4096);
  auto step = decoder.Decode(header);
  ASSERT_FALSE(step);
  EXPECT_THAT(step.error().message, HasSubstr("exceeds the limit"));
  // Sticky.
  EXPECT_FALSE(decoder.Decode(std::vector<uint8_t>{0}));
  // A control type is held to its own maximum even under the frame limit.
  EXPECT_THAT(DecodeError(Cat({U32(100000), {8}})),
              HasSubstr("KEEPALIVE frame length 100000 exceeds"));
  EXPECT_THAT(DecodeError(Cat({U32(0), {8}})), HasSubstr("frame length 0"));
}

TEST(PeerWireFrameDecoder, RejectsMalformedFrames) {
  struct Case {
    std::vector<uint8_t> bytes;
    std::string want;
  };
  std::vector<uint8_t> hello;
  ASSERT_TRUE(EncodeHello(SampleHello(), hello));
  std::vector<uint8_t> hello_trailing = hello;
  hello_trailing.push_back(0);
  hello_trailing[0] += 1;
  std::vector<uint8_t> hello_short(hello.begin(), hello.end() - 3);
  hello_short[0] -= 3;
  std::vector<uint8_t> hello_zone_overrun = hello;
  // The zone length byte sits right after the listen port.
  size_t zone_len_at = 5 + 2 + 16 + 32 + 2 + 13 + 2;
  hello_zone_overrun[zone_len_at] = 200;
  std::vector<Case> cases = {
      {Frame(42, {}), "unknown message type 42"},
      {Frame(3, Cat({U32(2), U32(1)})), "count 2 does not match"},
      {Frame(4, Cat({U32(0)})), "count is 0"},
      {Frame(6, Cat({U32(1), U32(1), {0}})), "count 1 does not match"},
      {Frame(4, Cat({U32(5000)})), "5000 indices, limit 4096"},
      {Frame(3, {1, 0}), "HAVE: count needs 4 bytes"},
      {Frame(2, Cat({U32(10), {0xFF}})), "10 bits need 2 bytes, got 1"},
      {Frame(2, Cat({U32(10), {0xFF, 0xE0}})), "spare bits"},
      {Frame(5, Cat({U32(1)})), "DATA: empty chunk"},
      {Frame(5, {1, 2}), "DATA: index needs 4 bytes"},
      {Frame(7, Cat({U32(1), {9}})), "REJECT: unknown reason 9"},
      {Frame(7, Cat({U32(1), {1, 0}})),
       "REJECT frame length 7 exceeds its maximum 6"},
      {Frame(8, {0}), "KEEPALIVE frame length 2 exceeds its maximum 1"},
      {Frame(9, {0, 5, 0, 'a'}), "GOODBYE: message needs 5 bytes"},
      {Frame(9, {0, 1, 0, 'a', 'b'}), "GOODBYE: 1 trailing bytes"},
      {hello_trailing, "HELLO: 1 trailing bytes"},
      {hello_short, "HELLO: flags and limits needs"},
      {hello_zone_overrun, "HELLO: zone needs 200 bytes"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(DecodeError(c.bytes), HasSubstr(c.want));
  }
}

TEST(PeerWireCodec, HelloOfAnotherVersionParsesOnlyTheVersion) {
  auto decoded = DecodeWhole(Frame(1, {2, 0, 0xEE, 0xEE}));
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(std::get<HelloMsg>((*decoded)[0]).protocol_version, 2);
}

TEST(PeerWireCodec, HelloRefusesOverlongStrings) {
  HelloMsg h = SampleHello();
  h.zone.assign(256, 'z');
  std::vector<uint8_t> out;
  EXPECT_FALSE(EncodeHello(h, out));
  EXPECT_TRUE(out.empty());
}

TEST(PeerWireLimits, DefaultsValidate) {
  EXPECT_TRUE(PeerLimits{}.Validate());
  PeerLimits l;
  l.keepalive_interval = l.idle_timeout;
  EXPECT_FALSE(l.Validate());
}

}  // namespace
}  // namespace fleetcast
