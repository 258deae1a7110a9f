// ParallelFor: the one way the store layer spreads file work over cores.
//
// Runs work(i) for every i in [0, count) on `threads` threads (0: one per
// core) while the calling thread calls `tick` about every 100 ms (for
// progress display) until all work is done. After the first error no new
// items are started; that error is returned.
//
// Thread-safety: `work` is called concurrently from several threads;
// `tick` only on the calling thread.
#ifndef FLEETCAST_STORE_PARALLEL_FOR_H_
#define FLEETCAST_STORE_PARALLEL_FOR_H_

#include <cstddef>
#include <functional>

#include "core/error.h"

namespace fleetcast {

unsigned ResolveThreads(unsigned threads);

Status ParallelFor(size_t count, unsigned threads,
                   const std::function<Status(size_t)>& work,
                   const std::function<void()>& tick = {});

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_PARALLEL_FOR_H_
