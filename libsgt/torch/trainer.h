// Training runs of vanilla, Block Loop and SGT: the loop behind `sgt-train`.
//
// Torch-free interface (the implementation hides LibTorch) so that tools including it compile
// fast. A run writes to its output directory:
//   events.jsonl   one JSON object per line: scalars, entropies, evals, growth decisions,
//                  checkpoints (docs/events.md); appended to on resume
//   checkpoints/   step-NNNNNNN.sgtckpt files (checkpoint.h)
//   summary.json   final metrics, written last
//
//   TrainOptions opt{.out_dir = "runs/a"};
//   absl::Status s = RunTraining(cfg, opt);
#ifndef SGT_TORCH_TRAINER_H_
#define SGT_TORCH_TRAINER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"
#include "libsgt/core/dist_env.h"

namespace sgt {

struct TrainOptions {
  std::string out_dir;
  std::string resume;      // checkpoint to continue from ("" for a fresh run)
  std::string checkpoint_dir;  // where checkpoints go ("": out_dir/checkpoints)
  int events_fd = -1;      // also write every event line to this descriptor (a worker's pipe)
  int64_t stop_after = 0;  // stop after this step as if interrupted (0: run to the end)
  bool progress = false;   // redraw a progress line on stderr
  // This process's place in a data-parallel run (dist_env.h; one process by default). Rank 0
  // alone writes events, checkpoints and summary.json and reads `resume`; the others write
  // nothing and need no `resume` (rank 0 broadcasts the checkpoint).
  DistEnv dist;
};

// What a finished (or paused) run reports; also written as summary.json.
struct TrainResult {
  std::string status;  // "succeeded" or "paused"
  int64_t step = 0;
  double final_loss = 0;
  std::string summary_json;
};

// Trains `cfg` from scratch or from opt.resume. Data files are validated first. SIGUSR1 asks for
// a snapshot and SIGUSR2 for a pause, both honoured at the next growth boundary (by every rank of
// a data-parallel run when any rank got it). In a data-parallel run, the ranks return alike
// ("succeeded", "paused") with the global loss; only rank 0's summary_json is set.
absl::StatusOr<TrainResult> RunTraining(const RunConfig& cfg, const TrainOptions& opt);

// One configuration of a benchmark.
struct BenchArm {
  std::string name;  // reported as "arm" (omitted when empty)
  RunConfig cfg;
  bool train_entropy = true;  // capture the training entropy signal (its cost is measured)
  bool probe = false;         // also run the probe after every timed step, timed apart
  // Parts of the forward run in their textbook form (model.h, ModelPaths): norm, slot,
  // residual, rope, attention, or all: the before arms of the fused paths' benchmark.
  std::vector<std::string> textbook;
};

// `dist` makes the benchmark data-parallel: each rank trains its share of the global batch and
// rank 0's object also gives ranks, backend, buckets and allreduce_ms (the mean time per step
// spent waiting for gradient averaging after the backward pass) and allreduce_share.

// Trains every arm on random tokens (no data files) for warmup + steps steps and returns one
// JSON object per arm with step_ms (mean; step_ms_median and step_ms_min beside it),
// tokens_per_second, achieved_gflops (sgt-method §6 FLOPs / time), flops_per_step, peak_rss_mb.
// With several arms the steps are interleaved (step 1 of every arm, then step 2, ...), so that a
// slow spell on a shared machine, or a slow process, hits every arm alike and their ratios stay
// meaningful; the arms must share train.threads and train.device, and peak_rss_mb is the whole
// process's.
absl::StatusOr<std::vector<std::string>> RunBenchmark(const std::vector<BenchArm>& arms,
                                                      int64_t steps, int64_t warmup,
                                                      const DistEnv& dist = {});

}  // namespace sgt

#endif  // SGT_TORCH_TRAINER_H_
