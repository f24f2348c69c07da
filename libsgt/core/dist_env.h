// Where this process stands in a data-parallel run: torchrun's environment, read and checked.
//
// sgt-train runs under torchrun-style launchers, `srun` (with the variables exported) and
// sgt-worker, which all describe a process by the same variables:
//   MASTER_ADDR, MASTER_PORT   where every rank meets (rank 0 serves a TCPStore there)
//   RANK, WORLD_SIZE           this process's rank among all of them, and their count
//   LOCAL_RANK, LOCAL_WORLD_SIZE  the same on this node (LOCAL_RANK picks the GPU)
//   SGT_DIST_TIMEOUT_S         rendezvous and every collective give up after this long (300)
//   SGT_DIST_BUCKET_MB         gradient averaging bucket size (docs/benchmarks.md)
// None of them set, or WORLD_SIZE=1: a single process, exactly as without them.
//
// Torch-free, so its checks are tested without LibTorch.
#ifndef SGT_CORE_DIST_ENV_H_
#define SGT_CORE_DIST_ENV_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace sgt {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  double timeout_s = 300;
  double bucket_mb = 4;

  bool distributed() const { return world_size > 1; }
  bool is_rank0() const { return rank == 0; }
};

// Reads the variables through `getenv` (std::getenv in sgt-train; a map in tests). Errors name
// the variable, its value and the fix; a partial set (RANK without MASTER_ADDR, say) is one.
absl::StatusOr<DistEnv> DistEnvFromEnvironment(
    const std::function<const char*(const char*)>& getenv);

// How the ranks split one optimizer step of `batch_size` sequences: rank r trains on the
// sequences [first, first + count) of the global batch, in micro-batches of `micro`.
struct RankShare {
  int64_t first = 0;
  int64_t count = 0;
  int64_t micro = 0;
};

// The share of `rank` of `world_size`; an error (naming train.batch_size and
// train.micro_batch_size) when the ranks cannot split the batch evenly: world_size must divide
// batch_size, and the per-rank micro-batch, min(micro_batch_size, batch_size / world_size), must
// divide the rank's share.
absl::StatusOr<RankShare> ShareOfBatch(int64_t batch_size, int64_t micro_batch_size, int rank,
                                       int world_size);

}  // namespace sgt

#endif  // SGT_CORE_DIST_ENV_H_
