// Deterministic choice of training and evaluation windows in a token file.
//
// A training window depends only on (seed, step, index within the step), never on what ran
// before, so a resumed run reads exactly the sequences an uninterrupted run would have.
#ifndef SGT_CORE_SAMPLER_H_
#define SGT_CORE_SAMPLER_H_

#include <cstdint>
#include <vector>

namespace sgt {

// Start offsets of `count` training windows of `window` tokens for sequences
// [first, first + count) of optimizer step `step`, uniform over [0, num_tokens - window].
std::vector<int64_t> TrainWindowStarts(uint64_t seed, int64_t step, int64_t first, int64_t count,
                                       int64_t num_tokens, int64_t window);

// Start offsets of `count` evaluation windows of `window` tokens, evenly spaced over the file
// (the same for every step and run, so losses are comparable). Windows may overlap when the file
// is short; requires num_tokens >= window.
std::vector<int64_t> EvalWindowStarts(int64_t count, int64_t num_tokens, int64_t window);

// splitmix64: the hash behind the samplers, exposed for other seeded choices (random heads).
uint64_t SplitMix64(uint64_t x);

}  // namespace sgt

#endif  // SGT_CORE_SAMPLER_H_
