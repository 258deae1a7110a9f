// Piece picking: which chunks of a version to request next from a peer.
//
// The swarm identifies a remote peer by an opaque PeerId and a chunk by its
// distinct-chunk index (docs/manifest-format.md, "Distinct-chunk index").
// PiecePicker is the pluggable policy (an abstract interface, as in Kraken);
// RarestFirstPicker is the default: among the chunks the peer has and we
// neither have nor have in flight, the ones held by the fewest connected
// peers come first, ties broken at random (the injected generator), so that
// a swarm spreads rare chunks fast and never converges on the same few.
//
// The picker owns the per-chunk bookkeeping of one download: availability
// (how many connected peers hold each chunk: add a peer's bitfield when it
// arrives, one index per HAVE, remove the bitfield when the peer leaves),
// our have-set, and which chunks are in flight to which peers. Pick() marks
// what it returns as in flight to that peer; the caller ends each request
// with MarkHave() (delivered and verified) or Release() (timed out,
// rejected, cancelled, corrupt). It does not know zones, origins or rates:
// which peer to ask is the scheduler's business (swarm_scheduler.h); the
// scheduler passes a ChunkFilter to keep a chunk away from a less preferred
// peer.
//
// End-game: once every missing chunk that some peer holds is in flight,
// Pick() returns chunks already in flight to other peers (never twice to the
// same peer, at most Options::max_endgame_requesters requests per chunk,
// fewest requesters first), and MarkHave() reports the other peers whose
// duplicate requests should be cancelled.
//
// Cost: chunks we can still pick live in buckets by availability, in an
// order that is shuffled as they move between buckets. Pick() walks the
// rarest buckets from a random offset: O(max_count) when the peer holds the
// rarest chunks (a seed, the origin's offers), bounded by
// Options::scan_budget candidates otherwise; past the budget it falls back to
// a word-wise scan of (peer has & pickable) from a random word, taking the
// rarest of a bounded candidate set (approximately rarest-first). HAVE,
// MarkHave, Release: O(1) amortized; a bitfield: O(chunks).
// Memory: about 9 bytes per chunk plus the in-flight map.
//
// Thread-safety: none; owned by one event loop (one download).
#ifndef FLEETCAST_CORE_PIECE_PICKER_H_
#define FLEETCAST_CORE_PIECE_PICKER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace fleetcast {

// Opaque handle of a remote peer. Stable for a remote node across
// reconnections (the event loop derives it from the node id), so that bans
// and statistics follow the node rather than the connection.
using PeerId = uint64_t;
// Index into a version's distinct-chunk index, 0 .. chunk_count - 1.
using ChunkIndex = uint32_t;
// The injected source of randomness of the swarm components. A fixed seed
// makes every decision reproducible (tests, the simulator).
using Rng = std::mt19937_64;

// Uniform integer in [0, n); n > 0. Portable and deterministic (Lemire's
// multiply-shift, bias below 2^-32 for the sizes used here), unlike
// std::uniform_int_distribution whose output differs between libraries.
inline uint64_t UniformBelow(Rng& rng, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(rng()) * n) >>
                               64);
}

// A fixed-size set of chunk indices (in memory; the wire bit order is
// docs/protocol.md's business).
class ChunkBitset {
 public:
  ChunkBitset() = default;
  explicit ChunkBitset(uint32_t size, bool value = false);

  uint32_t size() const { return size_; }
  bool Test(ChunkIndex i) const { return (words_[i >> 6] >> (i & 63)) & 1; }
  void Set(ChunkIndex i) { words_[i >> 6] |= uint64_t{1} << (i & 63); }
  void Reset(ChunkIndex i) { words_[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
  // Number of set bits. O(size / 64).
  uint32_t Count() const;
  bool All() const { return Count() == size_; }
  std::span<const uint64_t> words() const { return words_; }
  // Calls f(index) for every set bit, in increasing order.
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t w = 0; w < words_.size(); ++w) {
      uint64_t bits = words_[w];
      while (bits != 0) {
        f(static_cast<ChunkIndex>(w * 64 + __builtin_ctzll(bits)));
        bits &= bits - 1;
      }
    }
  }
  bool operator==(const ChunkBitset&) const = default;

 private:
  uint32_t size_ = 0;
  std::vector<uint64_t> words_;  // bits past size_ are always 0
};

// Returns true when the chunk may be requested from the peer being picked
// for. An empty filter allows everything.
using ChunkFilter = std::function<bool(ChunkIndex)>;

class PiecePicker {
 public:
  virtual ~PiecePicker() = default;

  virtual uint32_t chunk_count() const = 0;

  // Availability. A peer's bitfield (size chunk_count) when it arrives, one
  // index per HAVE; RemoveAvailability when the peer leaves (with everything
  // it had announced) or turns out not to hold a chunk (REJECT unknown).
  // Precondition: a removal matches an earlier addition.
  virtual void AddAvailability(const ChunkBitset& peer_has) = 0;
  virtual void AddAvailability(ChunkIndex index) = 0;
  virtual void RemoveAvailability(const ChunkBitset& peer_has) = 0;
  virtual void RemoveAvailability(ChunkIndex index) = 0;

  // We hold `index` now (verified, or found on disk). Ends every request for
  // it; returns the peers other than `from` to which it was still in flight
  // (end-game duplicates: send them a CANCEL). Idempotent.
  virtual std::vector<PeerId> MarkHave(ChunkIndex index, PeerId from) = 0;
  virtual bool Have(ChunkIndex index) const = 0;
  // Our have-set (what a BITFIELD of ours announces).
  virtual const ChunkBitset& HaveSet() const = 0;

  // Up to max_count chunks `peer_has` holds that we lack and that are not in
  // flight, rarest first, random tie-break; in end-game, duplicates as
  // described above. Every returned chunk is marked in flight to `peer`.
  // Chunks the filter refuses are skipped. Precondition: peer_has.size() ==
  // chunk_count().
  virtual std::vector<ChunkIndex> Pick(PeerId peer, const ChunkBitset& peer_has,
                                       size_t max_count, Rng& rng,
                                       const ChunkFilter& filter = {}) = 0;

  // The request of `index` to `peer` ended without the chunk; the chunk can
  // be picked again. No-op when it was not in flight to that peer.
  virtual void Release(PeerId peer, ChunkIndex index) = 0;
  // Releases every request in flight to `peer`; returns those chunks.
  virtual std::vector<ChunkIndex> ReleasePeer(PeerId peer) = 0;

  virtual uint32_t have_count() const = 0;
  bool Complete() const { return have_count() == chunk_count(); }
  // Number of peers `index` is in flight to (0 when not in flight).
  virtual size_t RequestersOf(ChunkIndex index) const = 0;
  virtual uint32_t Availability(ChunkIndex index) const = 0;
  // True when chunks are missing and every missing chunk some peer holds is
  // already in flight.
  virtual bool InEndGame() const = 0;
};

class RarestFirstPicker final : public PiecePicker {
 public:
  struct Options {
    // End-game: most requests of one chunk in flight at once (>= 1; 1
    // disables duplicates).
    size_t max_endgame_requesters = 2;
    // Bucket candidates Pick() examines before falling back to the
    // word-wise scan.
    size_t scan_budget = 4096;
  };

  // Every chunk missing, nothing available, nothing in flight.
  explicit RarestFirstPicker(uint32_t chunk_count);
  RarestFirstPicker(uint32_t chunk_count, Options options);

  uint32_t chunk_count() const override { return chunk_count_; }
  void AddAvailability(const ChunkBitset& peer_has) override;
  void AddAvailability(ChunkIndex index) override;
  void RemoveAvailability(const ChunkBitset& peer_has) override;
  void RemoveAvailability(ChunkIndex index) override;
  std::vector<PeerId> MarkHave(ChunkIndex index, PeerId from) override;
  bool Have(ChunkIndex index) const override { return have_.Test(index); }
  const ChunkBitset& HaveSet() const override { return have_; }
  std::vector<ChunkIndex> Pick(PeerId peer, const ChunkBitset& peer_has,
                               size_t max_count, Rng& rng,
                               const ChunkFilter& filter = {}) override;
  void Release(PeerId peer, ChunkIndex index) override;
  std::vector<ChunkIndex> ReleasePeer(PeerId peer) override;
  uint32_t have_count() const override { return have_count_; }
  size_t RequestersOf(ChunkIndex index) const override;
  uint32_t Availability(ChunkIndex index) const override {
    return avail_[index];
  }
  bool InEndGame() const override;

 private:
  bool Pickable(ChunkIndex i) const { return pickable_.Test(i); }
  void InsertPickable(ChunkIndex i);
  void ErasePickable(ChunkIndex i);
  void MoveBucket(ChunkIndex i, uint32_t from, uint32_t to);
  void SetAvailability(ChunkIndex i, uint32_t to);
  void MarkInFlight(PeerId peer, ChunkIndex i);
  std::vector<ChunkIndex> PickEndGame(PeerId peer, const ChunkBitset& peer_has,
                                      size_t max_count, Rng& rng,
                                      const ChunkFilter& filter);

  uint32_t chunk_count_;
  Options options_;
  uint32_t have_count_ = 0;
  std::vector<uint32_t> avail_;
  std::vector<uint32_t> pos_;  // position in buckets_[avail_] when pickable
  ChunkBitset have_;
  ChunkBitset pickable_;  // missing and not in flight
  uint32_t pickable_count_ = 0;
  std::vector<std::vector<ChunkIndex>> buckets_;  // by availability
  // Chunk -> peers it is in flight to (small: bounded by the pipelines).
  std::unordered_map<ChunkIndex, std::vector<PeerId>> in_flight_;
  uint64_t shuffle_state_ = 0x9e3779b97f4a7c15;  // see InsertPickable
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_PIECE_PICKER_H_
