// Deterministic training and evaluation windows. Training windows are a pure function of
// (seed, step, sequence index), so a run resumed from a checkpoint at step s reads exactly the
// sequences the uninterrupted run would have read, on any number of workers.
#include "libsgt/core/sampler.h"

#include <cstdio>
#include <cstdlib>

namespace sgt {
namespace {

// Contract violations here are bugs in the caller (the trainer checks file sizes at startup), and
// returning fewer windows than asked for would silently skew training, so they abort.
void Require(bool ok, const char* what, int64_t a, int64_t b) {
  if (!ok) {
    std::fprintf(stderr, "sgt sampler: %s (%lld, %lld)\n", what, static_cast<long long>(a),
                 static_cast<long long>(b));
    std::abort();
  }
}

}  // namespace

// The standard splitmix64 step (Steele, Lea, Flood 2014; the seeding generator of xoshiro):
// advance by the golden-ratio increment, then apply the variant-13 finalizer.
uint64_t SplitMix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// FROZEN FORMULA. Checkpoints record (seed, step) and rely on this reproducing the data order, so
// changing anything below silently changes which tokens a resumed run trains on. For sequence j of
// step `step` (two's-complement casts of the int64 arguments to uint64):
//
//   h     = SplitMix64(SplitMix64(SplitMix64(seed) ^ uint64(step)) ^ uint64(j))
//   start = h % uint64(num_tokens - window + 1)
//
// Chaining (instead of e.g. hashing seed + step + j) keeps (step, j) and (step + 1, j - 1) from
// colliding. The modulo bias is below range / 2^64, negligible for any real file.
std::vector<int64_t> TrainWindowStarts(uint64_t seed, int64_t step, int64_t first, int64_t count,
                                       int64_t num_tokens, int64_t window) {
  Require(window >= 1 && window <= num_tokens, "TrainWindowStarts needs 1 <= window <= num_tokens",
          window, num_tokens);
  Require(first >= 0 && count >= 0, "TrainWindowStarts needs first >= 0 and count >= 0", first,
          count);
  const uint64_t range = static_cast<uint64_t>(num_tokens - window) + 1;
  const uint64_t step_key = SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(step));
  std::vector<int64_t> starts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t h = SplitMix64(step_key ^ static_cast<uint64_t>(first + i));
    starts[static_cast<size_t>(i)] = static_cast<int64_t>(h % range);
  }
  return starts;
}

// start_i = floor(i * (num_tokens - window) / max(1, count - 1)): the first window at 0 and, for
// count > 1, the last ending exactly at the end of the file.
std::vector<int64_t> EvalWindowStarts(int64_t count, int64_t num_tokens, int64_t window) {
  Require(window >= 1 && window <= num_tokens, "EvalWindowStarts needs 1 <= window <= num_tokens",
          window, num_tokens);
  Require(count >= 0, "EvalWindowStarts needs count >= 0", count, 0);
  const unsigned __int128 span = static_cast<unsigned __int128>(num_tokens - window);
  const unsigned __int128 denom = static_cast<unsigned __int128>(count > 1 ? count - 1 : 1);
  std::vector<int64_t> starts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    // 128-bit so that i * span cannot overflow for any int64 file size and count.
    starts[static_cast<size_t>(i)] =
        count == 1 ? 0 : static_cast<int64_t>(static_cast<unsigned __int128>(i) * span / denom);
  }
  return starts;
}

}  // namespace sgt
