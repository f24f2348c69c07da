// The training loop: read top to bottom, one step at a time (see trainer.h for the outputs).
#include "libsgt/torch/trainer.h"

#include <ATen/autocast_mode.h>
#include <pthread.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/core/event_log.h"
#include "libsgt/core/flops.h"
#include "libsgt/core/growth.h"
#include "libsgt/core/sampler.h"
#include "libsgt/core/token_file.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/checkpoint.h"
#include "libsgt/torch/dist.h"
#include "libsgt/torch/entropy.h"
#include "libsgt/torch/eval.h"
#include "libsgt/torch/model.h"
#include "libsgt/torch/threads.h"

namespace sgt {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Requests from the supervising worker, honoured at the next growth boundary (§8).
std::atomic<int> g_snapshot_requested{0};
std::atomic<int> g_pause_requested{0};
void OnSnapshotSignal(int) { g_snapshot_requested.store(1); }
void OnPauseSignal(int) { g_pause_requested.store(1); }

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The median of `v` (not empty).
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size();
  return m % 2 == 1 ? v[m / 2] : (v[m / 2 - 1] + v[m / 2]) / 2;
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double PeakRssMb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Linear warm-up to lr, then cosine down to min_lr_ratio * lr at the last step.
double LearningRate(const TrainConfig& t, int64_t step) {
  if (t.warmup_steps > 0 && step <= t.warmup_steps) {
    return t.lr * static_cast<double>(step) / static_cast<double>(t.warmup_steps);
  }
  const double span = std::max<int64_t>(1, t.steps - t.warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - t.warmup_steps) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return t.lr * (t.min_lr_ratio + (1.0 - t.min_lr_ratio) * cosine);
}

// bf16 autocast for CUDA training (fp32 master weights); a no-op on CPU. LibTorch 2.4 replaced
// the GPU-specific autocast calls with device-typed ones.
class AutocastScope {
 public:
  explicit AutocastScope(bool enable) : enabled_(enable) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
#endif
  }
  ~AutocastScope() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
    at::autocast::clear_cache();
  }

 private:
  bool enabled_;
};

// events.jsonl, and the same lines on `fd` when a worker reads them from a pipe. A write to a
// pipe whose reader is gone raises SIGPIPE: the run dies with its worker. The lines themselves
// are libsgt/core/event_log's.
class EventLog {
 public:
  absl::Status Open(const std::string& path, int fd) {
    out_.open(path, std::ios::app);
    if (!out_) return absl::InternalError(absl::StrCat("cannot append to ", path));
    fd_ = fd;
    return absl::OkStatus();
  }
  // Writes nothing until opened: only rank 0 of a data-parallel run opens its log.
  void Write(const events::Event& e) {
    if (!out_.is_open()) return;
    std::string line = events::EventLine(e);
    line += '\n';
    out_ << line;
    out_.flush();
    for (size_t done = 0; fd_ >= 0 && done < line.size();) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fd_ = -1;  // the reader is gone (SIGPIPE ignored): events.jsonl still has everything
        break;
      }
      done += static_cast<size_t>(n);
    }
  }

 private:
  std::ofstream out_;
  int fd_ = -1;
};

events::EntropyEvent ReadingEvent(int64_t step, EntropySignal signal, const EntropyReading& r,
                                  const GrowthState& s) {
  events::EntropyEvent e;
  e.step = step;
  e.signal = signal;
  for (size_t l = 0; l < r.passes.size(); ++l) {
    EntropySnapshot one;
    one.head = {r.passes[l][0]};
    e.layers.push_back({static_cast<int64_t>(l), one.LayerMean(0), one.LayerVariance(0),
                        s.LoopDepth(static_cast<int64_t>(l)), r.passes[l], r.pass_heads[l]});
  }
  return e;
}

// The entropies of a reading, flattened in a fixed order (layer, pass, head), and back: how a
// reading crosses ranks in one collective.
std::vector<double> Flatten(const EntropyReading& r) {
  std::vector<double> out;
  for (const auto& layer : r.passes)
    for (const auto& pass : layer) out.insert(out.end(), pass.begin(), pass.end());
  return out;
}
void Unflatten(const double* v, EntropyReading& r) {
  for (auto& layer : r.passes)
    for (auto& pass : layer)
      for (double& x : pass) x = *v++;
}

// Everything a run holds between steps. The same object serves training and benchmarks. In a
// data-parallel run (dist.distributed()) every rank holds one: each trains on its share of every
// global batch, gradients are summed across ranks before the optimizer step, and the loss and
// entropy reading are the global batch's on every rank.
class Session {
 public:
  Session(const RunConfig& cfg, const DistEnv& dist)
      : cfg_(cfg),
        dist_(dist),
        device_(cfg.train.device == Device::kCuda ? torch::kCUDA : torch::kCPU),
        state_(GrowthState::Initial(cfg.model.layers)),
        ema_(cfg.entropy.ema_decay) {}

  // Joins the other ranks (a no-op for one process). Before Init: the ranks then fail together.
  absl::Status Connect() {
    absl::StatusOr<RankShare> share = ShareOfBatch(
        cfg_.train.batch_size, cfg_.train.micro_batch_size, dist_.rank, dist_.world_size);
    if (!share.ok()) return share.status();
    share_ = *share;
    if (cfg_.train.device == Device::kCuda) {
      if (!torch::cuda::is_available()) {
        return absl::FailedPreconditionError(
            "train.device is cuda but no CUDA device is usable (or this sgt-train was built "
            "against a CPU-only LibTorch); set train.device: cpu or run on a GPU node");
      }
      // torchrun's convention: every process of a node sees its GPUs, LOCAL_RANK picks one.
      device_ = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(
                                                dist_.local_rank % torch::cuda::device_count()));
    }
    if (!dist_.distributed()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<Communicator>> comm = Communicator::Connect(dist_, device_);
    if (!comm.ok()) return comm.status();
    comm_ = std::move(*comm);
    return absl::OkStatus();
  }

  absl::Status Init() {
    runtime_ = SetComputeThreads(static_cast<int>(cfg_.train.threads));
    torch::manual_seed(cfg_.train.seed);
    model_ = Transformer(cfg_.model);
    model_->to(device_);
    optimizer_ = MakeOptimizer(cfg_.train, *model_);
    if (comm_) {
      averager_ = std::make_unique<GradientAverager>(
          comm_.get(), model_->parameters(), static_cast<int64_t>(dist_.bucket_mb * 1024 * 1024));
    }
    return absl::OkStatus();
  }

  // Every rank's `state` becomes rank 0's (a no-op for one process): growth stays one decision.
  absl::Status AdoptRank0State(GrowthState& state) {
    if (!comm_) return absl::OkStatus();
    std::string json = dist_.is_rank0() ? GrowthStateToJson(state) : "";
    if (absl::Status s = comm_->BroadcastString(json, 0); !s.ok()) return s;
    if (dist_.is_rank0()) return absl::OkStatus();
    absl::StatusOr<GrowthState> gs = GrowthStateFromJson(json);
    if (!gs.ok()) return gs.status();
    state = *gs;
    return absl::OkStatus();
  }

  // Every rank's parameters and buffers become rank 0's (after Init, and after a resume).
  absl::Status BroadcastModel() {
    if (!comm_) return absl::OkStatus();
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> all;
    for (const torch::Tensor& p : model_->parameters()) all.push_back(p);
    for (const torch::Tensor& b : model_->buffers()) all.push_back(b);
    for (torch::Tensor& t : all) {
      std::vector<torch::Tensor> one = {t};
      if (absl::Status s = comm_->Broadcast(one, 0); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // One optimizer step over the global batch: this rank's share of it, from
  // `next_micro(first, count)` (sequences [first, first + count) of the step's batch_size).
  // Returns the global batch's mean loss, the same on every rank.
  template <typename MicroBatchFn>
  absl::StatusOr<double> TrainStep(int64_t step, MicroBatchFn next_micro, bool capture_entropy) {
    Plan(step);
    const double lr = LearningRate(cfg_.train, step);
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    lr_ = lr;
    optimizer_->zero_grad();
    // Each micro-batch's mean loss weighs micro / batch_size in the global mean, whichever rank
    // trains it; the ranks' gradients are then summed. With one process this is exactly the
    // loss / n_micro of plain gradient accumulation.
    const int64_t micro = share_.micro;
    const int64_t local_micros = share_.count / micro;
    const double global_micros = static_cast<double>(cfg_.train.batch_size / micro);
    EntropyAccumulator acc;
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(device_));
    for (int64_t m = 0; m < local_micros; ++m) {
      torch::Tensor window = next_micro(share_.first + m * micro, micro).to(device_);
      EntropyCapture capture;
      torch::Tensor loss;
      {
        AutocastScope autocast(device_.is_cuda());
        loss = model_->Loss(window, plan_, capture_entropy ? &capture : nullptr);
      }
      if (averager_ && m + 1 == local_micros) averager_->Arm();
      (loss / global_micros).backward();
      loss_sum += loss.detach().to(torch::kFloat);
      if (capture_entropy) acc.Add(capture);
    }
    if (!acc.empty()) reading_ = acc.Mean(plan_);
    double loss_total = 0;  // this step's micro-batch losses, summed (over every rank)
    comm_wait_s_ = 0;
    if (averager_) {
      if (absl::Status s = averager_->Finish(); !s.ok()) return s;
      comm_wait_s_ = averager_->last_wait_seconds();
      // The global loss and entropies: one sum over ranks of [loss sum, entropies...].
      std::vector<double> local = {0.0};
      if (!acc.empty()) {
        std::vector<double> e = Flatten(reading_);
        local.insert(local.end(), e.begin(), e.end());
      }
      std::vector<torch::Tensor> t = {torch::tensor(local, torch::kDouble).to(device_)};
      t[0][0].copy_(loss_sum);
      if (absl::Status s = comm_->AllReduceSum(t); !s.ok()) return s;
      torch::Tensor host = t[0].cpu();
      const double* v = host.data_ptr<double>();
      loss_total = v[0];
      for (size_t i = 1; i < local.size(); ++i) local[i] = v[i] / dist_.world_size;
      if (!acc.empty()) Unflatten(local.data() + 1, reading_);
    } else {
      loss_total = loss_sum.item<double>();
    }
    grad_norm_ = 0.0;
    if (cfg_.train.grad_clip > 0) {
      grad_norm_ = torch::nn::utils::clip_grad_norm_(model_->parameters(), cfg_.train.grad_clip);
    }
    optimizer_->step();
    flops_.AddTrainStep(cfg_, state_, step);
    if (!acc.empty()) ema_.Update(GrowthSignal(reading_, state_, cfg_.entropy.looped_heads));
    return loss_total / global_micros;
  }

  // Mean loss over `windows` without gradients, in chunks of micro_batch_size / divisor.
  double EvalLoss(const torch::Tensor& windows, int64_t divisor) {
    torch::NoGradGuard no_grad;
    const int64_t chunk = std::max<int64_t>(1, cfg_.train.micro_batch_size / divisor);
    const int64_t n = windows.size(0);
    double total = 0;
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t c = std::min(chunk, n - b);
      AutocastScope autocast(device_.is_cuda());
      total += model_->Loss(windows.narrow(0, b, c).to(device_), plan_).item<double>() *
               static_cast<double>(c);
    }
    const int64_t seq = windows.size(1) - 1;
    flops_.eval += static_cast<double>(n * seq) * ForwardFlopsPerToken(cfg_, state_, step_, seq);
    return total / static_cast<double>(n);
  }

  // Scores `task` under the structure of the last trained step (eval.h).
  absl::StatusOr<std::vector<eval::TaskScore>> ScoreTask(const eval::Task& task,
                                                         const Tokenizer& tokenizer) {
    AutocastScope autocast(device_.is_cuda());
    if (static_cast<int64_t>(plan_.size()) != cfg_.model.layers) Plan(step_);
    const ScoreOptions o{cfg_.eval.batch_size, cfg_.eval.limit, /*share_context=*/true};
    return sgt::ScoreTask(*model_, plan_, tokenizer, task, o);
  }

  // The loop plan of `step`, from the structure now in force.
  void Plan(int64_t step) {
    step_ = step;
    plan_state_ = state_;
    plan_ = MakeLoopPlan(cfg_, state_, step, device_);
  }

  EntropyReading Probe(const torch::Tensor& windows) {
    AutocastScope autocast(device_.is_cuda());
    if (static_cast<int64_t>(plan_.size()) != cfg_.model.layers) Plan(step_);
    flops_.probe += static_cast<double>(windows.numel()) *
                    ProbeForwardFlopsPerToken(cfg_, state_, step_, windows.size(1));
    return MeasureProbe(model_, windows.to(device_), plan_, cfg_.train.micro_batch_size);
  }

  std::string TrainerJson() const {
    json j;
    j["ema"] = json::parse(ema_.ToJson());
    j["flops"] = {{"train", flops_.train},
                  {"vanilla", flops_.vanilla},
                  {"probe", flops_.probe},
                  {"eval", flops_.eval},
                  {"tokens", flops_.tokens}};
    j["train_seconds"] = train_seconds_;
    // The structure the last trained step ran with: at a growth boundary the growth state already
    // holds the decision for the steps to come, and evaluating a checkpoint (inference.h) wants
    // the structure the weights were trained under, as this run's own final evaluations use.
    j["structure"] = {{"step", step_}, {"growth", json::parse(GrowthStateToJson(plan_state_))}};
    // The global data cursor: the next step's batch is TrainWindowStarts(seed, step + 1, ...)
    // over its batch_size sequences, whatever the number of ranks that reads it (sampler.h).
    j["data"] = {{"seed", cfg_.train.seed},
                 {"next_step", step_ + 1},
                 {"sequences_per_step", cfg_.train.batch_size}};
    return j.dump();
  }

  absl::Status RestoreTrainerJson(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("ema") || !j.contains("flops") ||
        !ema_.FromJson(j["ema"].dump())) {
      return absl::DataLossError("checkpoint trainer state is malformed");
    }
    const json& f = j["flops"];
    flops_.train = f.value("train", 0.0);
    flops_.vanilla = f.value("vanilla", 0.0);
    flops_.probe = f.value("probe", 0.0);
    flops_.eval = f.value("eval", 0.0);
    flops_.tokens = f.value("tokens", int64_t{0});
    train_seconds_ = j.value("train_seconds", 0.0);
    return absl::OkStatus();
  }

  const RunConfig& cfg() const { return cfg_; }
  const DistEnv& dist() const { return dist_; }
  Communicator* comm() { return comm_.get(); }  // null for one process
  double comm_wait_seconds() const { return comm_wait_s_; }
  int64_t buckets() const { return averager_ ? averager_->buckets() : 0; }
  Transformer& model() { return model_; }
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  GrowthState& state() { return state_; }
  EntropyEma& ema() { return ema_; }
  FlopsTally& flops() { return flops_; }
  const ComputeRuntime& runtime() const { return runtime_; }
  const EntropyReading& reading() const { return reading_; }
  double lr() const { return lr_; }
  double grad_norm() const { return grad_norm_; }
  double& train_seconds() { return train_seconds_; }
  torch::Device device() const { return device_; }

 private:
  RunConfig cfg_;
  DistEnv dist_;
  RankShare share_{0, 0, 0};
  torch::Device device_;
  std::unique_ptr<Communicator> comm_;
  Transformer model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<GradientAverager> averager_;  // destroyed first: it holds hooks on model_
  double comm_wait_s_ = 0;
  GrowthState state_;
  EntropyEma ema_;
  FlopsTally flops_;
  LoopPlan plan_;  // the structure of the last trained step; eval and probe use it too
  GrowthState plan_state_;  // the growth state plan_ was made from
  int64_t step_ = 0;
  ComputeRuntime runtime_;
  EntropyReading reading_;
  double lr_ = 0, grad_norm_ = 0, train_seconds_ = 0;
};

// The run itself: data, events, growth at boundaries, checkpoints, evaluation.
class Run {
 public:
  Run(const RunConfig& cfg, const TrainOptions& opt)
      : session_(cfg, opt.dist), cfg_(cfg), opt_(opt), rank0_(opt.dist.is_rank0()) {}

  absl::StatusOr<TrainResult> Go() {
    if (absl::Status s = session_.Connect(); !s.ok()) return s;
    // The ranks set up apart (data, directories, the checkpoint) and then agree, so that one
    // rank's bad input ends every rank at once instead of leaving them waiting in a collective.
    absl::Status setup = Setup();
    if (Communicator* comm = session_.comm()) {
      absl::StatusOr<bool> all_ok = comm->AllOk(setup.ok());
      if (!all_ok.ok()) return all_ok.status();
      if (setup.ok() && !*all_ok) {
        return absl::FailedPreconditionError(
            "another rank of this data-parallel run failed to set up (its log says why)");
      }
    }
    if (!setup.ok()) return setup;
    if (absl::Status s = Join(); !s.ok()) return s;
    const int64_t T = cfg_.model.context;
    int64_t step = start_step_;
    double last_loss = 0;
    if (step == 0 && IsGrowthBoundary(cfg_, 0)) {
      if (absl::Status s = BoundaryBeforeFirstStep(); !s.ok()) return s;
    }
    while (step < cfg_.train.steps) {
      ++step;
      const Clock::time_point t0 = Clock::now();
      absl::StatusOr<double> loss = session_.TrainStep(
          step,
          [&](int64_t first, int64_t count) {
            // Sequences [first, first + count) of the step's global batch: the same windows
            // whatever the number of ranks (sampler.h).
            return LoadWindows(
                *train_,
                TrainWindowStarts(cfg_.train.seed, step, first, count, train_->size(), T + 1),
                T + 1);
          },
          /*capture_entropy=*/true);
      if (!loss.ok()) return loss.status();
      last_loss = *loss;
      const double dt = Seconds(t0, Clock::now());
      session_.train_seconds() += dt;
      if (!std::isfinite(last_loss)) {
        events_.Write(events::ErrorEvent{step, "non-finite loss"});
        return absl::InternalError(absl::StrFormat(
            "training loss became %f at step %d; lower train.lr or raise train.warmup_steps",
            last_loss, step));
      }
      const double tokens_per_s =
          static_cast<double>(cfg_.train.batch_size * T) / std::max(dt, 1e-9);
      if (step % cfg_.train.log_interval == 0 || step == cfg_.train.steps) {
        const FlopsTally& f = session_.flops();
        events::TrainingScalars s;
        s.loss = last_loss;
        s.lr = session_.lr();
        s.grad_norm = session_.grad_norm();
        s.tokens = f.tokens;
        s.tokens_per_s = tokens_per_s;
        s.flops = f.train;
        s.vanilla_flops = f.vanilla;
        s.overhead = f.Overhead();
        s.step_s = dt;
        events_.Write(events::ScalarsEventOf(step, s));
      }
      if (absl::Status s = AfterStep(step); !s.ok()) return s;
      if (paused_) return Finish(step, events::kStatusPaused, last_loss);
      if (opt_.progress) Progress(step, last_loss, tokens_per_s);
      if (opt_.stop_after > 0 && step >= opt_.stop_after && step < cfg_.train.steps) {
        if (opt_.progress) std::fprintf(stderr, "\n");
        return TrainResult{"stopped", step, last_loss, ""};
      }
    }
    if (opt_.progress) std::fprintf(stderr, "\n");
    return Finish(step, events::kStatusSucceeded, last_loss);
  }

 private:
  absl::Status Setup() {
    if (absl::Status s = ValidateDataFiles(cfg_); !s.ok()) return s;
    auto train = TokenFile::Open(cfg_.data.train, /*verify_contents=*/true);
    if (!train.ok()) return train.status();
    auto val = TokenFile::Open(cfg_.data.validation, /*verify_contents=*/true);
    if (!val.ok()) return val.status();
    train_ = std::move(*train);
    val_ = std::move(*val);
    const int64_t T = cfg_.model.context;
    for (const TokenFile* f : {train_.get(), val_.get()}) {
      if (f->size() < T + 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("token file ", f->path(), " has ", f->size(),
                         " tokens, fewer than model.context + 1 = ", T + 1,
                         "; use a larger corpus or a smaller model.context"));
      }
    }
    if (absl::Status s = session_.Init(); !s.ok()) return s;
    if (!rank0_) return absl::OkStatus();  // only rank 0 writes files and reads the checkpoint

    std::error_code ec;
    fs::create_directories(opt_.out_dir, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create output directory ", opt_.out_dir, ": ", ec.message()));
    }
    fs::create_directories(CheckpointDir(), ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create checkpoint directory ", CheckpointDir().string(), ": ",
                       ec.message(), "; make it writable or choose another place for checkpoints"));
    }
    if (absl::Status s = LoadEvalTasks(); !s.ok()) return s;
    if (!opt_.resume.empty()) {
      absl::StatusOr<std::string> bytes = ReadCheckpointFile(opt_.resume);
      if (!bytes.ok()) return bytes.status();
      resume_bytes_ = std::move(*bytes);
    }
    return absl::OkStatus();
  }

  // After every rank has set up: rank 0's checkpoint (if resuming) and parameters reach every
  // rank, and rank 0 opens the event log.
  absl::Status Join() {
    const int64_t T = cfg_.model.context;
    Communicator* comm = session_.comm();
    std::string resume_name = opt_.resume;
    if (comm != nullptr) {
      if (absl::Status s = comm->BroadcastString(resume_bytes_, 0); !s.ok()) return s;
      if (absl::Status s = comm->BroadcastString(resume_name, 0); !s.ok()) return s;
    }
    if (!resume_bytes_.empty()) {
      absl::StatusOr<CheckpointHeader> h =
          LoadCheckpointBytes(resume_bytes_, resume_name, *session_.model(), session_.optimizer());
      resume_bytes_.clear();
      resume_bytes_.shrink_to_fit();
      if (!h.ok()) return h.status();
      absl::StatusOr<RunConfig> saved = RunConfigFromJson(h->config_json);
      if (!saved.ok()) return saved.status();
      RunConfig saved_model, this_model;
      saved_model.model = saved->model;
      this_model.model = cfg_.model;
      if (CanonicalJson(saved_model) != CanonicalJson(this_model)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint ", resume_name, " was written for a different model section than ",
            cfg_.source, "; resume with the configuration the checkpoint was written with"));
      }
      absl::StatusOr<GrowthState> gs = GrowthStateFromJson(h->growth_json);
      if (!gs.ok()) return gs.status();
      session_.state() = *gs;
      if (absl::Status s = session_.RestoreTrainerJson(h->trainer_json); !s.ok()) return s;
      start_step_ = h->step;
      if (start_step_ >= cfg_.train.steps) {
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint ", resume_name, " is at step ", start_step_, " but train.steps is ",
            cfg_.train.steps, "; raise train.steps to continue the run"));
      }
    }
    if (absl::Status s = session_.BroadcastModel(); !s.ok()) return s;
    if (!rank0_) return absl::OkStatus();
    if (absl::Status s =
            events_.Open((fs::path(opt_.out_dir) / "events.jsonl").string(), opt_.events_fd);
        !s.ok()) {
      return s;
    }
    const int64_t n_eval = cfg_.train.eval_batches * cfg_.train.batch_size;
    eval_windows_ = LoadWindows(*val_, EvalWindowStarts(n_eval, val_->size(), T + 1), T + 1);
    probe_windows_ =
        LoadWindows(*val_, EvalWindowStarts(cfg_.entropy.probe_sequences, val_->size(), T), T);
    events::StartEvent start;
    start.run = cfg_.name;
    start.variant = VariantName(cfg_.variant);
    start.config_json = CanonicalJson(cfg_);
    start.resumed_from = opt_.resume;
    start.step = start_step_;
    start.steps = cfg_.train.steps;
    start.pid = static_cast<int64_t>(getpid());
    events_.Write(start);
    return absl::OkStatus();
  }

  // Telemetry, probe, evaluation, growth and checkpoints after the optimizer step of `step`.
  absl::Status AfterStep(int64_t step) {
    const int64_t ti = cfg_.entropy.telemetry_interval;
    const bool telemetry = ti > 0 && step % ti == 0;
    const bool boundary = IsGrowthBoundary(cfg_, step);
    if (telemetry || boundary) {
      events_.Write(
          ReadingEvent(step, EntropySignal::kTrain, session_.reading(), session_.state()));
    }
    EntropyReading probe;
    // The probe, evaluations, decisions and checkpoints are rank 0's: the others hold the same
    // parameters, and take the growth state rank 0 decides at each boundary.
    if (rank0_ && IsProbeStep(cfg_, step)) {
      probe = session_.Probe(probe_windows_);
      events_.Write(ReadingEvent(step, EntropySignal::kProbe, probe, session_.state()));
    }
    const int64_t ei = cfg_.train.eval_interval;
    if (rank0_ && ei > 0 && step % ei == 0 && step != cfg_.train.steps) WriteEval(step);

    const bool final_follows = step == cfg_.train.steps && cfg_.checkpoint.final;
    bool checkpoint_due =
        cfg_.checkpoint.every > 0 && step % cfg_.checkpoint.every == 0 && !final_follows;
    std::string reason = events::checkpoint_reason::kInterval;
    if (boundary) {
      if (absl::Status s = DecideAt(step, probe); !s.ok()) return s;
      // At the last step the final checkpoint follows (same file): one write, not two.
      if (cfg_.checkpoint.at_boundaries && !final_follows) {
        checkpoint_due = true;
        reason = events::checkpoint_reason::kBoundary;
      }
      if (g_snapshot_requested.exchange(0) != 0) {
        checkpoint_due = true;
        reason = events::checkpoint_reason::kSnapshot;
      }
      if (g_pause_requested.exchange(0) != 0) {
        checkpoint_due = true;
        reason = events::checkpoint_reason::kPause;
        paused_ = true;
      }
    }
    if (checkpoint_due && rank0_) return Checkpoint(step, reason);
    return absl::OkStatus();
  }

  // The growth decision at boundary `step`, rank 0's for every rank, and its records. The signal
  // is the probe's `reading` when entropy.signal is probe, or before the first step, when there
  // is no training signal yet.
  absl::Status DecideAt(int64_t step, const EntropyReading& reading) {
    GrowthOutcome out;
    const bool probe = cfg_.entropy.signal == EntropySignal::kProbe || !session_.ema().has_value();
    if (rank0_) {
      EntropySnapshot signal =
          probe ? GrowthSignal(reading, session_.state(), cfg_.entropy.looped_heads)
                : session_.ema().value();
      out = Decide(cfg_, session_.state(), signal, step);
    }
    if (absl::Status s = AgreeAtBoundary(out); !s.ok()) return s;
    session_.state() = out.state;
    for (const GrowthDecision& d : out.decisions) {
      events_.Write(
          events::DecisionEventOf(d, probe ? EntropySignal::kProbe : EntropySignal::kTrain));
    }
    return absl::OkStatus();
  }

  // A fixed schedule from step 0 (growth.fixed_from_step: 0) loops from the first step on: its
  // decision comes before training, on the probe of the initial model.
  absl::Status BoundaryBeforeFirstStep() {
    EntropyReading probe;
    if (rank0_) {
      probe = session_.Probe(probe_windows_);
      events_.Write(ReadingEvent(0, EntropySignal::kProbe, probe, session_.state()));
    }
    return DecideAt(0, probe);
  }

  // At a growth boundary of a data-parallel run: every rank takes rank 0's growth state (one
  // decision, its record written once), and a snapshot or pause that reached any rank holds for
  // all of them, so that every rank pauses at the same step.
  absl::Status AgreeAtBoundary(GrowthOutcome& out) {
    Communicator* comm = session_.comm();
    if (comm == nullptr) return absl::OkStatus();
    if (absl::Status s = session_.AdoptRank0State(out.state); !s.ok()) return s;
    std::vector<torch::Tensor> flags = {torch::tensor(
        {g_snapshot_requested.exchange(0), g_pause_requested.exchange(0)}, torch::kInt)};
    if (session_.device().is_cuda()) flags[0] = flags[0].to(session_.device());
    if (absl::Status s = comm->AllReduceMax(flags); !s.ok()) return s;
    torch::Tensor f = flags[0].cpu();
    g_snapshot_requested.store(f[0].item<int>());
    g_pause_requested.store(f[1].item<int>());
    return absl::OkStatus();
  }

  // The eval section's task files and tokenizer, read before the first step so that a bad file
  // fails the run at once rather than after training.
  absl::Status LoadEvalTasks() {
    if (cfg_.eval.tasks.empty()) return absl::OkStatus();
    std::string path = cfg_.eval.tokenizer;
    if (path.empty()) {
      absl::StatusOr<std::string> p = TokenizerOfTokenFile(cfg_.data.train, "data.train");
      if (!p.ok()) return p.status();
      path = *p;
    }
    absl::StatusOr<Tokenizer> t = Tokenizer::Load(path);
    if (!t.ok()) {
      return absl::Status(t.status().code(), absl::StrCat("eval.tokenizer: ", t.status().message()));
    }
    tokenizer_ = std::make_unique<Tokenizer>(*std::move(t));
    for (const std::string& file : cfg_.eval.tasks) {
      absl::StatusOr<eval::Task> task = eval::ReadTaskFile(file);
      if (!task.ok()) {
        return absl::Status(task.status().code(),
                            absl::StrCat("eval.tasks: ", task.status().message()));
      }
      tasks_.push_back(*std::move(task));
    }
    return absl::OkStatus();
  }

  // Scores every task at `step` and writes their task_eval event (`reason`: final, checkpoint).
  absl::StatusOr<std::vector<eval::TaskScore>> WriteTaskEval(int64_t step,
                                                            const std::string& reason) {
    std::vector<eval::TaskScore> scores;
    for (const eval::Task& task : tasks_) {
      absl::StatusOr<std::vector<eval::TaskScore>> s = session_.ScoreTask(task, *tokenizer_);
      if (!s.ok()) return s.status();
      scores.insert(scores.end(), s->begin(), s->end());
    }
    events_.Write(events::TaskEvalEvent{step, reason, scores});
    return scores;
  }

  void WriteEval(int64_t step) {
    const double loss = session_.EvalLoss(eval_windows_, 1);
    events_.Write(events::EvalEvent{step, loss, std::exp(loss)});
    last_val_loss_ = loss;
  }

  absl::Status Checkpoint(int64_t step, const std::string& reason) {
    CheckpointHeader h;
    h.step = step;
    h.config_json = CanonicalJson(cfg_);
    h.growth_json = GrowthStateToJson(session_.state());
    h.trainer_json = session_.TrainerJson();
    const fs::path path = CheckpointDir() / absl::StrFormat("step-%07d.sgtckpt", step);
    absl::StatusOr<CheckpointWritten> w =
        WriteCheckpoint(path.string(), h, *session_.model(), session_.optimizer());
    if (!w.ok()) return w.status();
    events_.Write(
        events::CheckpointEvent{step, fs::absolute(path).string(), w->bytes, w->sha256, reason});
    written_.push_back(path);
    // eval.at_checkpoints: the interval and boundary checkpoints before the last step (Finish
    // scores the last step once, whatever checkpoint it writes; a snapshot or a pause is asked
    // for to stop quickly).
    if (!tasks_.empty() && cfg_.eval.at_checkpoints && step < cfg_.train.steps &&
        (reason == events::checkpoint_reason::kInterval ||
         reason == events::checkpoint_reason::kBoundary)) {
      absl::StatusOr<std::vector<eval::TaskScore>> s =
          WriteTaskEval(step, events::task_eval_reason::kCheckpoint);
      if (!s.ok()) return s.status();
    }
    if (cfg_.checkpoint.keep > 0) {
      while (static_cast<int64_t>(written_.size()) > cfg_.checkpoint.keep) {
        std::error_code ec;
        fs::remove(written_.front(), ec);
        written_.erase(written_.begin());
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<TrainResult> Finish(int64_t step, const std::string& status, double last_loss) {
    if (!rank0_) return TrainResult{status, step, last_loss, ""};
    events::RunSummary summary;
    const FlopsTally& f = session_.flops();
    if (status == events::kStatusSucceeded) {
      WriteEval(step);
      summary.validated = true;
      const int64_t T = cfg_.model.context;
      for (int64_t m : cfg_.train.extrapolation) {
        const int64_t window = m * T + 1;
        if (val_->size() < window) {
          summary.extrapolation.push_back({m, "validation split too short"});
          continue;
        }
        // As many tokens as the regular evaluation: fewer, longer sequences.
        const int64_t n = std::max<int64_t>(
            1, std::min<int64_t>(cfg_.train.eval_batches * cfg_.train.batch_size / m,
                                 val_->size() / window));
        torch::Tensor w = LoadWindows(*val_, EvalWindowStarts(n, val_->size(), window), window);
        const double loss = session_.EvalLoss(w, m);
        events_.Write(events::ExtrapolationEvent{step, m, m * T, loss, std::exp(loss)});
        summary.extrapolation.push_back({m, "", m * T, loss, std::exp(loss), n});
      }
      summary.val_loss = last_val_loss_;
      summary.val_ppl = std::exp(last_val_loss_);
      if (!tasks_.empty()) {
        absl::StatusOr<std::vector<eval::TaskScore>> s =
            WriteTaskEval(step, events::task_eval_reason::kFinal);
        if (!s.ok()) return s.status();
        summary.tasks = *std::move(s);
      }
      if (cfg_.checkpoint.final) {
        if (absl::Status s = Checkpoint(step, events::checkpoint_reason::kFinal); !s.ok()) return s;
      }
    }
    summary.run = cfg_.name;
    summary.variant = VariantName(cfg_.variant);
    summary.status = status;
    summary.step = step;
    summary.steps = cfg_.train.steps;
    summary.final_loss = last_loss;
    summary.train_flops = f.train;
    summary.vanilla_flops = f.vanilla;
    summary.overhead_vs_vanilla = f.Overhead();
    summary.probe_flops = f.probe;
    summary.eval_flops = f.eval;
    summary.tokens = f.tokens;
    summary.train_seconds = session_.train_seconds();
    summary.tokens_per_s = session_.train_seconds() > 0
                               ? static_cast<double>(f.tokens) / session_.train_seconds()
                               : 0.0;
    summary.growth_json = GrowthStateToJson(session_.state());
    summary.peak_rss_mb = PeakRssMb();
    if (!written_.empty()) summary.last_checkpoint = fs::absolute(written_.back()).string();
    events_.Write(events::EndEventOf(summary));
    const std::string text = events::RunSummaryJson(summary, 2);
    std::ofstream(fs::path(opt_.out_dir) / "summary.json") << text << '\n';
    return TrainResult{status, step, last_loss, text};
  }

  fs::path CheckpointDir() const {
    return opt_.checkpoint_dir.empty() ? fs::path(opt_.out_dir) / "checkpoints"
                                       : fs::path(opt_.checkpoint_dir);
  }

  void Progress(int64_t step, double loss, double tokens_per_s) {
    std::string ks;
    for (int64_t l = 0; l < cfg_.model.layers; ++l) {
      absl::StrAppend(&ks, l ? "," : "", session_.state().LoopDepth(l));
    }
    std::fprintf(
        stderr, "\r%s step %lld/%lld loss %.4f lr %.2e %.0f tok/s K=[%s] overhead %+.2f%%   ",
        cfg_.name.c_str(), static_cast<long long>(step), static_cast<long long>(cfg_.train.steps),
        loss, session_.lr(), tokens_per_s, ks.c_str(), 100.0 * session_.flops().Overhead());
    std::fflush(stderr);
  }

  Session session_;
  const RunConfig& cfg_;
  TrainOptions opt_;
  const bool rank0_;
  std::string resume_bytes_;  // the checkpoint rank 0 read, until every rank has loaded it
  std::unique_ptr<TokenFile> train_, val_;
  std::unique_ptr<Tokenizer> tokenizer_;  // with tasks_: the eval section's, on rank 0
  std::vector<eval::Task> tasks_;
  torch::Tensor eval_windows_, probe_windows_;
  EventLog events_;
  int64_t start_step_ = 0;
  double last_val_loss_ = 0;
  bool paused_ = false;
  std::vector<fs::path> written_;
};

}  // namespace

absl::StatusOr<TrainResult> RunTraining(const RunConfig& cfg, const TrainOptions& opt) {
  // Installed before anything slow: the default action of SIGUSR1/2 would end the process.
  std::signal(SIGUSR1, OnSnapshotSignal);
  std::signal(SIGUSR2, OnPauseSignal);
  // A worker starts its children with both blocked, so that a pause sent before this point
  // waits here instead of killing the process; now they may arrive.
  sigset_t usr;
  sigemptyset(&usr);
  sigaddset(&usr, SIGUSR1);
  sigaddset(&usr, SIGUSR2);
  pthread_sigmask(SIG_UNBLOCK, &usr, nullptr);
  try {
    Run run(cfg, opt);
    return run.Go();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("LibTorch error: ", e.what_without_backtrace()));
  }
}

namespace {

// One arm of a benchmark: a session training on random tokens, timed step by step.
class BenchRunner {
 public:
  BenchRunner(const BenchArm& arm, int64_t warmup, const DistEnv& dist)
      : arm_(arm),
        warmup_(warmup),
        session_(arm.cfg, dist),
        gen_(at::detail::createCPUGenerator(arm.cfg.train.seed)) {}

  absl::Status Init() {
    if (absl::Status s = session_.Connect(); !s.ok()) return s;
    if (absl::Status s = session_.Init(); !s.ok()) return s;
    if (absl::Status s = session_.BroadcastModel(); !s.ok()) return s;
    ModelPaths paths;
    for (const std::string& name : arm_.textbook) {
      if (!UseTextbookPath(name, &paths)) {
        return absl::InvalidArgumentError(
            absl::StrCat("benchmark arm '", arm_.name, "': no model path '", name, "'"));
      }
    }
    session_.model()->set_paths(paths);
    probe_ = torch::randint(arm_.cfg.model.vocab_size,
                            {arm_.cfg.entropy.probe_sequences, arm_.cfg.model.context}, gen_,
                            torch::kLong);
    return absl::OkStatus();
  }

  // Step `step` (1-based) of warm-up + timed steps; growth boundaries decide as in training.
  absl::Status Step(int64_t step) {
    const RunConfig& cfg = arm_.cfg;
    auto batch = [&](int64_t, int64_t count) {
      return torch::randint(cfg.model.vocab_size, {count, cfg.model.context + 1}, gen_,
                            torch::kLong);
    };
    if (step == 1 && IsGrowthBoundary(cfg, 0)) {
      if (absl::Status s = Grow(0); !s.ok()) return s;
    }
    const bool timed = step > warmup_;
    if (step == warmup_ + 1) flops_before_ = session_.flops().train;
    const Clock::time_point t0 = Clock::now();
    const double cpu0 = ProcessCpuSeconds();
    absl::StatusOr<double> loss = session_.TrainStep(step, batch, arm_.train_entropy);
    if (!loss.ok()) return loss.status();
    Sync();
    if (timed) {
      step_times_.push_back(Seconds(t0, Clock::now()));
      step_cpu_.push_back(ProcessCpuSeconds() - cpu0);
      comm_wait_ += session_.comm_wait_seconds();
    }
    if (arm_.probe && timed) {
      const Clock::time_point p0 = Clock::now();
      session_.Probe(probe_);
      Sync();
      probe_time_ += Seconds(p0, Clock::now());
    }
    return IsGrowthBoundary(cfg, step) ? Grow(step) : absl::OkStatus();
  }

  // The growth decision at boundary `step` (0: before the first step, as in training).
  absl::Status Grow(int64_t step) {
    const RunConfig& cfg = arm_.cfg;
    EntropySnapshot signal =
        session_.ema().has_value()
            ? session_.ema().value()
            : GrowthSignal(session_.Probe(probe_), session_.state(), cfg.entropy.looped_heads);
    GrowthOutcome out = Decide(cfg, session_.state(), signal, step);
    // Rank 0's state everywhere, as in training.
    if (absl::Status s = session_.AdoptRank0State(out.state); !s.ok()) return s;
    session_.state() = out.state;
    return absl::OkStatus();
  }

  // `first`: the first arm, whose steps ran in the same rounds as this arm's.
  std::string Json(const BenchRunner& first) {
    const RunConfig& cfg = arm_.cfg;
    const double n = static_cast<double>(step_times_.size());
    double timed = 0;
    for (double t : step_times_) timed += t;
    const double step_s = timed / n;
    const double flops = session_.flops().train - flops_before_;
    json j;
    if (!arm_.name.empty()) j["arm"] = arm_.name;
    j["variant"] = VariantName(cfg.variant);
    j["threads"] = cfg.train.threads;
    j["blas"] = session_.runtime().blas;
    j["blas_threads"] = session_.runtime().blas_threads;
    j["steps"] = step_times_.size();
    j["train_entropy"] = arm_.train_entropy;
    if (!arm_.textbook.empty()) j["textbook"] = arm_.textbook;
    j["step_ms"] = step_s * 1e3;
    // Robust to a noisy neighbour stalling a few steps (shared VMs): the per-step median and
    // minimum beside the mean.
    j["step_ms_median"] = Median(step_times_) * 1e3;
    j["step_ms_min"] = *std::min_element(step_times_.begin(), step_times_.end()) * 1e3;
    // Each round's step time over the first arm's in the same round, then the median: a machine
    // that slows down and speeds up over the run moves both steps of a round alike.
    if (&first != this && first.step_times_.size() == step_times_.size()) {
      std::vector<double> ratios;
      for (size_t i = 0; i < step_times_.size(); ++i) {
        ratios.push_back(step_times_[i] / first.step_times_[i]);
      }
      j["paired_with"] = first.arm_.name;
      j["step_ratio_paired_median"] = Median(ratios);
    }
    // CPU time of the whole process per step (all its threads, spinning included): on a machine
    // shared with other work it counts less of the others' time slices than the wall clock.
    j["step_cpu_ms_median"] = Median(step_cpu_) * 1e3;
    j["tokens_per_second"] = static_cast<double>(cfg.train.batch_size * cfg.model.context) / step_s;
    j["achieved_gflops"] = flops / timed / 1e9;
    j["flops_per_step"] = flops / n;
    if (arm_.probe) {
      j["probe_ms"] = probe_time_ / n * 1e3;
      j["probe_sequences"] = cfg.entropy.probe_sequences;
    }
    j["growth"] = json::parse(GrowthStateToJson(session_.state()));
    if (Communicator* comm = session_.comm()) {
      j["ranks"] = comm->size();
      j["backend"] = comm->backend();
      j["buckets"] = session_.buckets();
      j["bucket_mb"] = session_.dist().bucket_mb;
      j["allreduce_ms"] = comm_wait_ / n * 1e3;
      j["allreduce_share"] = comm_wait_ / timed;
    }
    j["peak_rss_mb"] = PeakRssMb();  // the whole process's: all arms of an interleaved run
    return j.dump();
  }

 private:
  void Sync() {
    if (session_.device().is_cuda()) torch::cuda::synchronize();
  }

  const BenchArm& arm_;
  const int64_t warmup_;
  Session session_;
  torch::Generator gen_;
  torch::Tensor probe_;
  std::vector<double> step_times_;
  std::vector<double> step_cpu_;
  double probe_time_ = 0;
  double comm_wait_ = 0;
  double flops_before_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> RunBenchmark(const std::vector<BenchArm>& arms,
                                                      int64_t steps, int64_t warmup,
                                                      const DistEnv& dist) {
  if (arms.empty() || steps < 1 || warmup < 0) {
    return absl::InvalidArgumentError("a benchmark needs at least one arm and one timed step");
  }
  if (dist.distributed() && arms.size() != 1) {
    return absl::InvalidArgumentError(
        "a data-parallel benchmark (WORLD_SIZE > 1) runs one arm: its ranks are the processes");
  }
  for (const BenchArm& arm : arms) {
    if (arm.cfg.train.threads != arms[0].cfg.train.threads ||
        arm.cfg.train.device != arms[0].cfg.train.device) {
      return absl::InvalidArgumentError(absl::StrCat(
          "benchmark arm '", arm.name, "': train.threads and train.device differ from arm '",
          arms[0].name, "'; interleaved arms share one process: give them the same values"));
    }
  }
  try {
    std::vector<std::unique_ptr<BenchRunner>> runners;
    for (const BenchArm& arm : arms) {
      runners.push_back(std::make_unique<BenchRunner>(arm, warmup, dist));
      if (absl::Status s = runners.back()->Init(); !s.ok()) return s;
    }
    // Every arm once per round, in an order shuffled each round (fixed seed), so that no arm
    // always runs first or always follows the same one.
    std::vector<size_t> order(runners.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::mt19937 rng(12345);
    for (int64_t step = 1; step <= warmup + steps; ++step) {
      std::shuffle(order.begin(), order.end(), rng);
      for (size_t i : order) {
        if (absl::Status s = runners[i]->Step(step); !s.ok()) return s;
      }
    }
    std::vector<std::string> out;
    for (const auto& r : runners) out.push_back(r->Json(*runners.front()));
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("LibTorch error: ", e.what_without_backtrace()));
  }
}

}  // namespace sgt
