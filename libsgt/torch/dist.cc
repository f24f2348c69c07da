// c10d behind the Communicator interface, and the bucketed gradient averager (dist.h).
//
// LibTorch 1.13 (Debian, CPU) and 2.x (CUDA) differ here: in 1.13 ProcessGroupGloo derives from
// ProcessGroup, in 2.x the backends derive from Backend and ProcessGroup dispatches to them. Both
// have the backends' own broadcast/allreduce/barrier with the same signatures, and both have
// c10d::Work (Work.hpp), so this file holds the backend object itself and needs no version
// switch except for NCCL, which only LibTorch 2.x CUDA builds ship (USE_C10D_NCCL).
#include "libsgt/torch/dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/version.h>

#if defined(USE_C10D_NCCL) && TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define SGT_HAVE_NCCL 1
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"

namespace sgt {
namespace {

using Clock = std::chrono::steady_clock;

std::string What(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

absl::Status CollectiveError(const char* op, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(
      "data-parallel ", op, " failed: ", what,
      "; another rank has probably died or stalled past SGT_DIST_TIMEOUT_S (its own log says "
      "why)"));
}

class WorkWait : public PendingCollective {
 public:
  WorkWait(c10::intrusive_ptr<c10d::Work> work, const char* op) : work_(std::move(work)), op_(op) {}
  absl::Status Wait() override {
    try {
      work_->wait();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return CollectiveError(op_, What(e));
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  const char* op_;
};

// One class for both backends: they share the calls this needs.
template <typename Backend>
class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Backend> pg,
                   int rank, int size, const char* name, torch::Device device)
      : store_(std::move(store)), pg_(std::move(pg)), rank_(rank), size_(size), name_(name),
        device_(device) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return name_; }

  absl::StatusOr<std::unique_ptr<PendingCollective>> AllReduceSumAsync(
      std::vector<torch::Tensor>& tensors) override {
    try {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      return std::unique_ptr<PendingCollective>(
          std::make_unique<WorkWait>(pg_->allreduce(tensors, o), "allreduce"));
    } catch (const std::exception& e) {
      return CollectiveError("allreduce", What(e));
    }
  }

  absl::Status AllReduceMax(std::vector<torch::Tensor>& tensors) override {
    return Run("allreduce", [&] {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::MAX;
      return pg_->allreduce(tensors, o);
    });
  }

  absl::Status Broadcast(std::vector<torch::Tensor>& tensors, int root) override {
    return Run("broadcast", [&] {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return pg_->broadcast(tensors, o);
    });
  }

  absl::Status Barrier() override {
    return Run("barrier", [&] { return pg_->barrier(c10d::BarrierOptions()); });
  }

 protected:
  torch::Device device() const override { return device_; }

 private:
  template <typename Start>
  absl::Status Run(const char* op, Start start) {
    try {
      start()->wait();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return CollectiveError(op, What(e));
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;  // kept alive: rank 0's serves the others
  c10::intrusive_ptr<Backend> pg_;
  int rank_, size_;
  const char* name_;
  torch::Device device_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Connect(const DistEnv& env,
                                                                    const torch::Device& device) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(env.timeout_s * 1000));
  const std::string where = absl::StrCat(env.master_addr, ":", env.master_port);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env.master_port);
    o.isServer = env.rank == 0;
    o.numWorkers = static_cast<size_t>(env.world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "rank ", env.rank, " of ", env.world_size, ": rendezvous at ", where, " failed within ",
        env.timeout_s, " s (", What(e), "); ",
        env.rank == 0 ? "the other ranks did not all arrive, or the port is taken: check that "
                        "every rank was started with the same MASTER_ADDR, MASTER_PORT and "
                        "WORLD_SIZE, or choose a free MASTER_PORT"
                      : "check that rank 0 is running and that MASTER_ADDR and MASTER_PORT "
                        "name its node and port"));
  }
  try {
    if (device.is_cuda()) {
#ifdef SGT_HAVE_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, o);
      return std::unique_ptr<Communicator>(std::make_unique<C10dCommunicator<c10d::ProcessGroupNCCL>>(
          store, pg, env.rank, env.world_size, "nccl", device));
#else
      return absl::FailedPreconditionError(
          "train.device is cuda with WORLD_SIZE > 1, but this sgt-train was built against a "
          "LibTorch without NCCL (USE_C10D_NCCL); build it against LibTorch 2.x with CUDA");
#endif
    }
    auto o = c10d::ProcessGroupGloo::Options::create(timeout);
    // Like torch.distributed: GLOO_SOCKET_IFNAME picks the interface, else the host name's
    // address (loopback when it does not resolve).
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    o->devices.push_back(ifname != nullptr && *ifname != '\0'
                             ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                             : c10d::ProcessGroupGloo::createDefaultDevice());
    o->threads = 2;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, o);
    return std::unique_ptr<Communicator>(std::make_unique<C10dCommunicator<c10d::ProcessGroupGloo>>(
        store, pg, env.rank, env.world_size, "gloo", device));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "rank ", env.rank, " of ", env.world_size, ": connecting to the other ranks through ",
        where, " failed within ", env.timeout_s, " s (", What(e),
        "); the other ranks did not all arrive: one died during rendezvous or was never started, "
        "or the nodes cannot reach each other (set GLOO_SOCKET_IFNAME to the interface they "
        "share)"));
  }
}

absl::Status Communicator::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  absl::StatusOr<std::unique_ptr<PendingCollective>> p = AllReduceSumAsync(tensors);
  if (!p.ok()) return p.status();
  return (*p)->Wait();
}

absl::Status Communicator::BroadcastString(std::string& text, int root) {
  std::vector<torch::Tensor> n = {torch::full({1}, static_cast<int64_t>(text.size()),
                                              torch::TensorOptions(torch::kLong).device(device()))};
  if (absl::Status s = Broadcast(n, root); !s.ok()) return s;
  const int64_t size = n[0].item<int64_t>();
  torch::Tensor bytes = torch::empty({size}, torch::kUInt8);
  if (rank() == root && size > 0) std::memcpy(bytes.data_ptr(), text.data(), text.size());
  std::vector<torch::Tensor> b = {bytes.to(device())};
  if (size > 0) {
    if (absl::Status s = Broadcast(b, root); !s.ok()) return s;
  }
  if (rank() != root) {
    torch::Tensor host = b[0].cpu().contiguous();
    text.assign(static_cast<const char*>(host.data_ptr()), static_cast<size_t>(size));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Communicator::AllOk(bool ok) {
  std::vector<torch::Tensor> t = {
      torch::full({1}, ok ? 0 : 1, torch::TensorOptions(torch::kInt).device(device()))};
  if (absl::Status s = AllReduceMax(t); !s.ok()) return s;
  return t[0].item<int>() == 0;
}

// ---- gradient averaging ----

struct GradientAverager::Bucket {
  std::vector<size_t> params;
  torch::Tensor buffer;   // flat: the params' gradients back to back
  size_t filled = 0;      // params whose gradient is in the buffer this step
  std::unique_ptr<PendingCollective> pending;
};

GradientAverager::GradientAverager(Communicator* comm, std::vector<torch::Tensor> params,
                                   int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)) {
  bucket_of_.resize(params_.size());
  offset_of_.resize(params_.size());
  // Reverse order: the last layers' gradients come first in the backward pass.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    const int64_t b = p.numel() * static_cast<int64_t>(p.element_size());
    if (buckets_.empty() || bytes + b > bucket_bytes ||
        params_[buckets_.back()->params.front()].scalar_type() != p.scalar_type()) {
      buckets_.push_back(std::make_unique<Bucket>());
      bytes = 0;
    }
    Bucket& bk = *buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_of_[k] = bytes / static_cast<int64_t>(p.element_size());
    bk.params.push_back(k);
    bytes += b;
  }
  for (auto& bk : buckets_) {
    int64_t n = 0;
    for (size_t k : bk->params) n += params_[k].numel();
    bk->buffer = torch::zeros({n}, params_[bk->params.front()].options().requires_grad(false));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    hooks_.push_back(
        params_[k].register_hook([this, k](const torch::Tensor& g) { OnGrad(k, g); }));
  }
}

GradientAverager::~GradientAverager() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientAverager::Arm() {
  armed_ = true;
  next_to_start_ = 0;
  error_ = absl::OkStatus();
  wait_s_ = 0;
  for (auto& bk : buckets_) {
    bk->filled = 0;
    bk->pending.reset();
  }
}

void GradientAverager::OnGrad(size_t k, const torch::Tensor& incoming) {
  if (!armed_) return;
  Bucket& bk = *buckets_[bucket_of_[k]];
  torch::NoGradGuard no_grad;
  torch::Tensor slot = bk.buffer.narrow(0, offset_of_[k], params_[k].numel());
  // What .grad will hold once this backward has accumulated `incoming` into it.
  slot.copy_(incoming.reshape({-1}));
  const torch::Tensor& acc = params_[k].grad();
  if (acc.defined()) slot.add_(acc.reshape({-1}));
  if (++bk.filled == bk.params.size()) StartReady();
}

void GradientAverager::StartReady() {
  while (error_.ok() && next_to_start_ < buckets_.size() &&
         buckets_[next_to_start_]->filled == buckets_[next_to_start_]->params.size()) {
    Bucket& bk = *buckets_[next_to_start_++];
    std::vector<torch::Tensor> t = {bk.buffer};
    absl::StatusOr<std::unique_ptr<PendingCollective>> p = comm_->AllReduceSumAsync(t);
    if (!p.ok()) {
      error_ = p.status();
      return;
    }
    bk.pending = std::move(*p);
  }
}

absl::Status GradientAverager::Finish() {
  const Clock::time_point t0 = Clock::now();
  if (!armed_) Arm();
  armed_ = false;
  torch::NoGradGuard no_grad;
  // Gradients the backward never produced (a parameter this step did not use): .grad as it is,
  // or zeros.
  for (size_t b = next_to_start_; b < buckets_.size(); ++b) {
    Bucket& bk = *buckets_[b];
    if (bk.filled == bk.params.size()) continue;
    for (size_t k : bk.params) {
      torch::Tensor slot = bk.buffer.narrow(0, offset_of_[k], params_[k].numel());
      const torch::Tensor& g = params_[k].grad();
      if (g.defined()) {
        slot.copy_(g.reshape({-1}));
      } else {
        slot.zero_();
      }
    }
    bk.filled = bk.params.size();
  }
  StartReady();
  absl::Status status = error_;
  for (auto& bk : buckets_) {
    if (bk->pending) {
      absl::Status s = bk->pending->Wait();
      if (status.ok()) status = s;
      bk->pending.reset();
    }
  }
  if (status.ok()) {
    for (size_t k = 0; k < params_.size(); ++k) {
      const Bucket& bk = *buckets_[bucket_of_[k]];
      torch::Tensor sum = bk.buffer.narrow(0, offset_of_[k], params_[k].numel()).view_as(params_[k]);
      torch::Tensor& g = params_[k].mutable_grad();
      if (g.defined()) {
        g.copy_(sum);
      } else {
        g = sum.clone();
      }
    }
  }
  wait_s_ = std::chrono::duration<double>(Clock::now() - t0).count();
  return status;
}

}  // namespace sgt
