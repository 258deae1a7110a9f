// libFuzzer target for the peer protocol: FrameDecoder and PeerSession take
// bytes straight from the network.
//
// Input: byte 0 picks slice sizes, the rest is the stream. Checks, beyond
// "no crash, no sanitizer report":
//  - the decoder gives the same result however the stream is split, and
//    every frame it accepts re-encodes to exactly the bytes it consumed;
//  - sessions (an acceptor from the preface on; an acceptor and an initiator
//    past a valid handshake, with requests open) never produce output that
//    their own decoder rejects, and produce exactly one Closed event at most,
//    after which they are quiet.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/peer_session.h"
#include "core/peer_wire.h"

namespace {

using namespace fleetcast;

void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kChunks = 16;
const TimePoint kT0 = TimePoint() + std::chrono::hours(1);

struct Decoded {
  bool ok = true;
  std::vector<std::vector<uint8_t>> frames;  // re-encoded
};

Decoded DecodeAll(ByteSpan in, size_t slice) {
  FrameDecoder d(4096 + PeerLimits::kFrameSlack, 64);
  Decoded out;
  std::vector<uint8_t> consumed;
  while (!in.empty()) {
    ByteSpan s = in.first(std::min(slice, in.size()));
    in = in.subspan(s.size());
    while (!s.empty()) {
      auto step = d.Decode(s);
      if (!step) {
        out.ok = false;
        return out;
      }
      consumed.insert(consumed.end(), s.begin(), s.begin() + step->consumed);
      s = s.subspan(step->consumed);
      if (!step->message) continue;
      std::vector<uint8_t> again;
      const auto* hello = std::get_if<HelloMsg>(&*step->message);
      if (hello == nullptr || hello->protocol_version == kPeerProtocolVersion) {
        Check(EncodeMessage(*step->message, again).has_value());
        Check(again == consumed);
      }
      out.frames.push_back(std::move(consumed));
      consumed.clear();
    }
  }
  return out;
}

PeerVersionInfo Version() {
  PeerVersionInfo v;
  v.chunk_count = kChunks;
  v.max_chunk_size = 4096;
  return v;
}

HelloMsg Hello(uint8_t id) {
  HelloMsg h;
  h.node_id.fill(id);
  h.root = Sha256(AsBytes("fuzz"));
  h.dataset = "d";
  h.max_requests = 64;
  h.max_request_bytes = 1 << 20;
  h.max_indices = 64;
  return h;
}

// Drives `s` with `input` in slices, answering requests, and checks it.
void Drive(PeerSession& s, ByteSpan input, size_t slice) {
  FrameDecoder own(UINT32_MAX, 1u << 20);
  const std::vector<uint8_t> data_copy(input.begin(), input.end());
  bool checked_preface = false;
  int closed_events = 0;
  TimePoint now = kT0;
  // Everything the session sends must decode.
  auto check_output = [&](ByteSpan o) {
    if (!checked_preface && o.size() >= 8 &&
        MatchPeerPreface(o) == PrefaceMatch::kPeer) {
      o = o.subspan(8);
    }
    checked_preface = checked_preface || !o.empty();
    while (!o.empty()) {
      auto step = own.Decode(o);
      Check(step.has_value());
      o = o.subspan(step->consumed);
    }
  };
  auto drain = [&] {
    while (auto e = s.PollEvent()) {
      if (std::holds_alternative<Closed>(*e)) ++closed_events;
      auto* r = std::get_if<RequestReceived>(&*e);
      if (r == nullptr) continue;
      for (uint32_t i : r->indices) {
        std::vector<uint8_t> chunk(i + 1, uint8_t(i));
        if (i % 3 == 0) {
          (void)s.SendReject(i, RejectReason::kNotHave, now);
        } else if (i % 3 == 1) {
          (void)s.SendData(i, chunk, now);
        } else if (s.SendDataHeader(i, i + 1, now)) {
          (void)s.SendHave(std::vector<uint32_t>{i}, now);  // held back
          check_output(s.TakeBytesToSend());
          check_output(chunk);  // the "sendfile"
          s.DataPayloadSent(now);
        }
      }
    }
    check_output(s.TakeBytesToSend());
  };
  drain();
  while (!input.empty()) {
    ByteSpan part = input.first(std::min(slice, input.size()));
    input = input.subspan(part.size());
    now += std::chrono::seconds(part[0] % 8);
    s.OnBytesReceived(part, now);
    if (part[0] % 5 == 0) s.OnTimer(now);
    drain();
  }
  s.OnTimer(now + std::chrono::seconds(61));
  drain();
  Check(s.closed());  // by the idle timeout at the latest
  Check(closed_events == 1);
  s.OnBytesReceived(ByteSpan(data_copy), now);
  Check(s.TakeBytesToSend().empty() && !s.PollEvent());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t slice = 1 + data[0] % 64;
  ByteSpan input(data + 1, size - 1);

  Decoded whole = DecodeAll(input, input.size() + 1);
  Decoded split = DecodeAll(input, slice);
  Check(whole.ok == split.ok && whole.frames == split.frames);

  // An acceptor from the first byte.
  {
    PeerSessionOptions o;
    o.role = PeerRole::kAcceptor;
    o.hello = Hello(0xB0);
    o.expected_root = Hello(0).root;
    o.version = Version();
    o.limits.max_indices = 64;
    auto s = PeerSession::Create(o, kT0);
    Check(s.has_value());
    Drive(*s, input, slice);
  }
  // Both roles after a valid handshake, so the fuzzer starts deep.
  for (PeerRole role : {PeerRole::kAcceptor, PeerRole::kInitiator}) {
    PeerSessionOptions o;
    o.role = role;
    o.hello = Hello(0xB0);
    o.expected_root = Hello(0).root;
    o.version = Version();
    o.limits.max_indices = 64;
    auto s = PeerSession::Create(o, kT0);
    Check(s.has_value());
    std::vector<uint8_t> prologue;
    if (role == PeerRole::kAcceptor) {
      prologue.assign(kPeerPreface.begin(), kPeerPreface.end());
    }
    Check(EncodeHello(Hello(0xA0), prologue).has_value());
    s->OnBytesReceived(prologue, kT0);
    Check(s->established());
    std::vector<uint32_t> want = {0, 1, 2, 3, 4, 5, 6, 7};
    Check(s->SendRequest(want, kT0).has_value());
    Check(s->SendCancel(std::vector<uint32_t>{6, 7}, kT0).has_value());
    Drive(*s, input, slice);
  }
  return 0;
}
