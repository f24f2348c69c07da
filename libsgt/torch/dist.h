// The communicator of a data-parallel run: a thin layer over LibTorch's c10d (no home-made
// collectives). Gloo on CPU; NCCL on CUDA where LibTorch was built with it (LibTorch 2.x CUDA).
//
// Rendezvous: rank 0 serves a TCPStore at MASTER_ADDR:MASTER_PORT and every rank joins it
// (dist_env.h). Every call is bounded by DistEnv::timeout_s: a rank that dies, or a master that
// cannot be reached, turns into an error here instead of a hang. Errors come back as statuses;
// nothing throws through this interface.
//
//   absl::StatusOr<std::unique_ptr<Communicator>> comm = Communicator::Connect(env, device);
//   std::vector<torch::Tensor> t = {x};
//   (*comm)->AllReduceSum(t);
#ifndef SGT_TORCH_DIST_H_
#define SGT_TORCH_DIST_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/dist_env.h"

namespace sgt {

// A collective started and not yet waited for.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual absl::Status Wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  // Joins the run `env` describes (env.distributed() must hold): Gloo when `device` is a CPU,
  // NCCL when it is a GPU. Fails with the address, the timeout and the fix when the store or a
  // peer cannot be reached within env.timeout_s.
  static absl::StatusOr<std::unique_ptr<Communicator>> Connect(const DistEnv& env,
                                                               const torch::Device& device);

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* backend() const = 0;  // "gloo" or "nccl"

  // In-place sum over all ranks; `Async` returns at once (Gloo runs it on its own threads, NCCL
  // on its stream), the others wait.
  virtual absl::StatusOr<std::unique_ptr<PendingCollective>> AllReduceSumAsync(
      std::vector<torch::Tensor>& tensors) = 0;
  absl::Status AllReduceSum(std::vector<torch::Tensor>& tensors);
  virtual absl::Status AllReduceMax(std::vector<torch::Tensor>& tensors) = 0;
  // Every rank's tensors become rank `root`'s.
  virtual absl::Status Broadcast(std::vector<torch::Tensor>& tensors, int root) = 0;
  virtual absl::Status Barrier() = 0;

  // Built on the above. `text` becomes rank `root`'s everywhere.
  absl::Status BroadcastString(std::string& text, int root);
  // True on every rank when `ok` held on every rank: how ranks fail together instead of leaving
  // the others waiting for a collective until the timeout.
  absl::StatusOr<bool> AllOk(bool ok);

 protected:
  // Collectives on a GPU need device tensors; small host values travel through this device.
  virtual torch::Device device() const = 0;
};

// Averages gradients across ranks in buckets of about `bucket_bytes`, each bucket one flat
// buffer and one allreduce. With Arm() before the last micro-batch's backward, a bucket's
// allreduce starts as soon as the backward pass has produced all of its gradients (hooks on the
// parameters), so communication overlaps the rest of the backward; Finish() waits for them all,
// starts the buckets whose gradients never arrived, and writes the sums back into .grad.
// Buckets follow the parameters in reverse order (the order backward produces them) and start
// in bucket order on every rank, as collectives must.
class GradientAverager {
 public:
  GradientAverager(Communicator* comm, std::vector<torch::Tensor> params, int64_t bucket_bytes);
  ~GradientAverager();

  void Arm();             // the next backward is the step's last: start buckets as they fill
  absl::Status Finish();  // sum over ranks of every gradient, in place
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  double last_wait_seconds() const { return wait_s_; }  // time Finish() spent waiting

 private:
  struct Bucket;
  void OnGrad(size_t param, const torch::Tensor& incoming);
  void StartReady();

  Communicator* comm_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;     // param index -> bucket
  std::vector<int64_t> offset_of_;    // param index -> offset in its bucket's buffer
  std::vector<unsigned> hooks_;       // param index -> its hook
  size_t next_to_start_ = 0;
  bool armed_ = false;
  absl::Status error_;
  double wait_s_ = 0;
};

}  // namespace sgt

#endif  // SGT_TORCH_DIST_H_
