// SuperSeeder: the origin's offer policy for one version (super-seeding),
// sans-I/O. Goal: the origin's egress for a version stays near 1x the data
// however many agents join (DESIGN.md, Performance model: the origin's
// upload U should carry each byte once; the agents' aggregate N x B carries
// the copies).
//
// Instead of a full BITFIELD, the origin sends each connected peer an empty
// one and then HAVE offers: a window of `window` chunks that peer lacks.
// Offers are chosen in this order:
//  1. recovery chunks — sent before, but every known holder left the swarm,
//     or the fleet reported them still missing (ReportMissing), or offered to
//     a peer that left before fetching them;
//  2. fresh chunks — never offered to anyone, in a seeded random order
//     (nobody else can serve them, and random order spreads the swarm);
//     a fresh chunk some peer already holds (dedup from an older version)
//     is skipped for good;
//  3. once every chunk was offered: the least-replicated chunk the peer
//     lacks (fewest connected holders) that is not on offer to another peer
//     and was not among our last peers x window sends (its receiver's HAVE
//     may still be on its way to the others: a logical clock, no timer).
// While fresh chunks remain, no chunk is offered twice, except to recover.
// A peer's window refills as it downloads (OnSent) or gets an offered chunk
// elsewhere (OnPeerHave). The origin still serves any REQUEST it receives:
// offers shape what agents ask, they do not restrict it.
//
// Failure modes (and what bounds them):
// - A peer that takes offers and never fetches them holds up to `window`
//   chunks nobody else is offered. Bounded by window x peers; the event
//   loop calls RevokeOffers for a peer that sat on its offers too long (the
//   policy has no clock) and they are re-offered to others.
// - A peer that fetches from the origin and leaves before passing chunks on:
//   the chunks whose every holder left are re-offered (recovery), at the
//   cost of a second origin copy.
// - The origin sees only HAVEs of peers connected to it: a chunk held only by
//   agents not connected to the origin looks lost when its origin-connected
//   holders leave, and is re-sent (a few extra copies, never a stall).
// - Too small a window starves fast agents early in a version (they wait
//   for offers); too large gives one agent many exclusive chunks. Default 4.
// - Phase 3 scans for the least-replicated chunk: O(chunks) per offer in
//   the worst case; it runs only after the first copy of everything is out.
//
// Memory: 17 bytes per chunk plus one bitset per connected peer (the origin
// bounds its connections).
//
// Thread-safety: none; owned by the origin's event loop for the version.
#ifndef FLEETCAST_CORE_SUPER_SEED_H_
#define FLEETCAST_CORE_SUPER_SEED_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "core/piece_picker.h"  // PeerId, ChunkIndex, ChunkBitset, Rng

namespace fleetcast {

// Send HAVE(index) to `peer`.
struct Offer {
  PeerId peer = 0;
  ChunkIndex index = 0;
  bool operator==(const Offer&) const = default;
};

struct SuperSeedOptions {
  size_t window = 4;  // outstanding offers per peer (>= 1)
};

class SuperSeeder {
 public:
  // `rng` shuffles the fresh order once (seeded: reproducible).
  SuperSeeder(uint32_t chunk_count, Rng& rng, SuperSeedOptions options = {});

  // A peer connected; `has` its bitfield (size chunk_count, may be all 0).
  std::vector<Offer> AddPeer(PeerId peer, const ChunkBitset& has);
  // The peer left. Chunks it held (from us or announced) that no other
  // connected peer holds become recovery chunks; its unfetched offers too.
  std::vector<Offer> RemovePeer(PeerId peer);
  // The peer announced a chunk (HAVE, wherever it got it).
  std::vector<Offer> OnPeerHave(PeerId peer, ChunkIndex index);
  // We finished sending `index` to `peer` (it now holds it once verified).
  std::vector<Offer> OnSent(PeerId peer, ChunkIndex index);
  // The peer's outstanding offers go to others (it may still fetch them).
  std::vector<Offer> RevokeOffers(PeerId peer);
  // The fleet reports `index` still missing: offer it again.
  std::vector<Offer> ReportMissing(ChunkIndex index);

  uint32_t chunk_count() const { return static_cast<uint32_t>(sent_.size()); }
  uint32_t SentCount(ChunkIndex i) const { return sent_[i]; }
  uint64_t total_sent() const { return total_sent_; }
  uint64_t total_offers() const { return total_offers_; }
  // True once every chunk was offered (or found in the swarm) at least once.
  bool FreshExhausted() const { return fresh_.empty(); }
  size_t OffersOutstanding(PeerId peer) const;

 private:
  struct PeerState {
    ChunkBitset has;
    std::vector<ChunkIndex> window;  // offered, not yet held
  };
  void Gain(PeerState& p, ChunkIndex i);
  void Unoffer(PeerState& p, ChunkIndex i);
  bool Candidate(const PeerState& p, ChunkIndex i) const;
  bool NextFor(const PeerState& p, ChunkIndex& out);
  void Refill(PeerId id, PeerState& p, std::vector<Offer>& out);
  void RefillAll(std::vector<Offer>& out);
  void Recover(ChunkIndex i);

  SuperSeedOptions options_;
  std::vector<uint32_t> sent_;         // times sent by us
  std::vector<uint64_t> last_sent_;    // total_sent_ after its last send
  std::vector<uint32_t> holders_;      // connected peers holding it
  std::vector<uint8_t> offered_;       // ever offered (or found held)
  std::vector<uint16_t> outstanding_;  // windows it is in
  std::deque<ChunkIndex> fresh_;       // never offered, shuffled
  std::deque<ChunkIndex> recover_;     // to offer again first
  ChunkBitset in_recover_;
  ChunkBitset forced_;  // reported missing: recover even if held
  std::map<PeerId, PeerState> peers_;
  size_t cursor_ = 0;
  uint64_t total_sent_ = 0;
  uint64_t total_offers_ = 0;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_SUPER_SEED_H_
