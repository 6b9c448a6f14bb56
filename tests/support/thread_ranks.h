#pragma once
/// Test aid: the ranks of a distributed launch as threads of one process. run_thread_ranks(W, fn) installs a
/// communicator whose rank() is the calling thread's, runs fn(r) on W threads and restores the single-process
/// communicator. The collectives exchange tensors through shared memory and combine them in rank order (so every
/// rank gets bitwise the same sums, as a real all-reduce does). A rank that throws ends the others' waits (they
/// throw "peer failed"), as does a collective that is not joined within `timeout_s`: a broken test fails, it
/// never hangs. fn's first exception is rethrown.
///
/// The torch default generators are shared by the threads: fn must not draw random numbers concurrently (build
/// models before, or run draws under a lock).
#include <functional>

namespace daug::testing {

void run_thread_ranks(int world, const std::function<void(int rank)>& fn, double timeout_s = 60.0);

}  // namespace daug::testing
