// sgt-train: trains one run of vanilla, Block Loop or SGT, plans its FLOPs, or benchmarks it.
//
//   sgt-train --config run.yaml --out runs/a [--resume runs/a/checkpoints/step-0000100.sgtckpt]
//   sgt-train --plan --config run.yaml
//   sgt-train --config run.yaml --bench 20
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/config.h"
#include "libsgt/core/dist_env.h"
#include "libsgt/core/flops.h"
#include "libsgt/torch/threads.h"
#include "libsgt/torch/trainer.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr int kExitLostPeer = 3;  // sgt-worker reads it (services/worker/attempt_rules.h)

constexpr char kUsage[] = R"(usage:
  sgt-train --config FILE --out DIR [--resume CHECKPOINT] [--set KEY=VALUE]...
            [--checkpoint-dir DIR] [--events-fd FD] [--stop-after STEP]
            [--progress | --no-progress]
  sgt-train --plan --config FILE [--set KEY=VALUE]...
  sgt-train --config FILE --bench N [--bench-warmup W] [--no-train-entropy] [--probe]

Trains one run (docs/config.md describes FILE) and writes events.jsonl, checkpoints/ and
summary.json to DIR. --plan prints the run's planned FLOPs as JSON without data or training.
--bench trains N steps on random tokens after W warm-up steps (default 3) and prints one JSON
line with step_ms (the mean; step_ms_median and step_ms_min beside it), tokens_per_second,
achieved_gflops and peak_rss_mb.

  --set KEY=VALUE   override a configuration value, e.g. --set growth.k_max=2
  --checkpoint-dir D  write checkpoints to D instead of DIR/checkpoints
  --events-fd FD    also write each events.jsonl line to descriptor FD (how sgt-worker reads)
  --stop-after S    stop after step S as if interrupted (for testing resume)
  SIGUSR1 / SIGUSR2 snapshot / pause at the next growth boundary

Data-parallel: started once per rank with torchrun's environment (MASTER_ADDR, MASTER_PORT,
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; SGT_DIST_TIMEOUT_S, SGT_DIST_BUCKET_MB), each
rank trains its share of every global batch (docs/training.md). Rank 0 writes DIR and
the checkpoints and reads --resume; the other ranks write nothing. --bench then prints rank 0's
line only.

exit status: 0 done (or paused), 1 training failed, 2 bad arguments, configuration or data,
3 a data-parallel rank lost contact with the others (rendezvous or a collective failed; the
run can go on from its newest checkpoint)
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-train: " << problem << "\n\n" << kUsage;
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  sgt::KeepFreedMemoryMapped();
  std::string config_path, out_dir, resume, checkpoint_dir;
  std::vector<std::string> sets;
  bool plan = false, train_entropy = true, probe = false;
  int progress = -1;  // -1: when stderr is a terminal
  int64_t bench = 0, bench_warmup = 3, stop_after = 0, events_fd = -1;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* name) -> const std::string* {
      if (i + 1 >= args.size()) return nullptr;
      (void)name;
      return &args[++i];
    };
    auto int_value = [&](const char* name, int64_t* out) {
      const std::string* v = value(name);
      return v != nullptr && absl::SimpleAtoi(*v, out) && *out >= 0;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--config") {
      const std::string* v = value("--config");
      if (!v) return Usage("--config needs a file");
      config_path = *v;
    } else if (a == "--out") {
      const std::string* v = value("--out");
      if (!v) return Usage("--out needs a directory");
      out_dir = *v;
    } else if (a == "--resume") {
      const std::string* v = value("--resume");
      if (!v) return Usage("--resume needs a checkpoint file");
      resume = *v;
    } else if (a == "--checkpoint-dir") {
      const std::string* v = value("--checkpoint-dir");
      if (!v) return Usage("--checkpoint-dir needs a directory");
      checkpoint_dir = *v;
    } else if (a == "--events-fd") {
      if (!int_value("--events-fd", &events_fd) || events_fd < 3 || events_fd > 1 << 20 ||
          fcntl(static_cast<int>(events_fd), F_GETFD) < 0) {
        return Usage("--events-fd needs an open file descriptor >= 3");
      }
    } else if (a == "--set") {
      const std::string* v = value("--set");
      if (!v || v->find('=') == std::string::npos) return Usage("--set needs KEY=VALUE");
      sets.push_back(*v);
    } else if (a == "--plan") {
      plan = true;
    } else if (a == "--bench") {
      if (!int_value("--bench", &bench) || bench < 1)
        return Usage("--bench needs a step count >= 1");
    } else if (a == "--bench-warmup") {
      if (!int_value("--bench-warmup", &bench_warmup))
        return Usage("--bench-warmup needs a count >= 0");
    } else if (a == "--stop-after") {
      if (!int_value("--stop-after", &stop_after) || stop_after < 1)
        return Usage("--stop-after needs a step >= 1");
    } else if (a == "--no-train-entropy") {
      train_entropy = false;
    } else if (a == "--probe") {
      probe = true;
    } else if (a == "--progress") {
      progress = 1;
    } else if (a == "--no-progress") {
      progress = 0;
    } else {
      return Usage("unknown argument '" + a + "'");
    }
  }
  if (config_path.empty()) return Usage("--config is required");

  absl::StatusOr<sgt::RunConfig> cfg = sgt::LoadRunConfig(config_path);
  if (!cfg.ok()) {
    std::cerr << "sgt-train: " << cfg.status().message() << "\n";
    return kExitUsage;
  }
  // All overrides first, then one validation: --set train.steps=2 --set train.warmup_steps=1
  // must not fail on the intermediate state.
  for (const std::string& kv : sets) {
    const size_t eq = kv.find('=');
    if (absl::Status s = sgt::SetConfigValue(*cfg, kv.substr(0, eq), kv.substr(eq + 1)); !s.ok()) {
      std::cerr << "sgt-train: --set " << kv << ": " << s.message() << "\n";
      return kExitUsage;
    }
  }
  if (absl::Status s = sgt::ValidateRunConfig(*cfg); !s.ok()) {
    std::cerr << "sgt-train: " << s.message()
              << (sets.empty() ? "" : " (after the --set overrides)") << "\n";
    return kExitUsage;
  }

  if (plan) {
    std::cout << sgt::FlopsPlanToJson(*cfg, sgt::PlanFlops(*cfg)) << "\n";
    return 0;
  }
  absl::StatusOr<sgt::DistEnv> dist = sgt::DistEnvFromEnvironment(
      [](const char* name) -> const char* { return std::getenv(name); });
  if (!dist.ok()) {
    std::cerr << "sgt-train: " << dist.status().message() << "\n";
    return kExitUsage;
  }
  // A rank count that cannot split the batch is bad input, found before any rendezvous.
  if (absl::StatusOr<sgt::RankShare> share = sgt::ShareOfBatch(
          cfg->train.batch_size, cfg->train.micro_batch_size, dist->rank, dist->world_size);
      !share.ok()) {
    std::cerr << "sgt-train: " << share.status().message() << "\n";
    return kExitUsage;
  }
  if (bench > 0) {
    absl::StatusOr<std::vector<std::string>> r = sgt::RunBenchmark(
        {sgt::BenchArm{"", *cfg, train_entropy, probe, {}}}, bench, bench_warmup, *dist);
    if (!r.ok()) {
      std::cerr << "sgt-train: " << r.status().message() << "\n";
      return kExitRuntime;
    }
    if (dist->is_rank0()) std::cout << r->front() << "\n";
    return 0;
  }

  if (out_dir.empty()) return Usage("--out is required to train");
  namespace fs = std::filesystem;
  if (dist->is_rank0() && resume.empty() && fs::exists(fs::path(out_dir) / "events.jsonl")) {
    std::cerr << "sgt-train: " << out_dir
              << " already holds a run (events.jsonl exists); nothing was changed. Pass "
                 "--resume CHECKPOINT to continue it, or choose another --out\n";
    return kExitUsage;
  }
  sgt::TrainOptions opt;
  opt.out_dir = out_dir;
  opt.resume = resume;
  opt.checkpoint_dir = checkpoint_dir;
  opt.events_fd = static_cast<int>(events_fd);
  opt.stop_after = stop_after;
  opt.progress = dist->is_rank0() && (progress < 0 ? isatty(STDERR_FILENO) != 0 : progress == 1);
  opt.dist = *dist;
  absl::StatusOr<sgt::TrainResult> r = sgt::RunTraining(*cfg, opt);
  if (!r.ok()) {
    std::cerr << "sgt-train: " << r.status().message() << "\n";
    const absl::StatusCode c = r.status().code();
    const bool bad_input = c == absl::StatusCode::kInvalidArgument ||
                           c == absl::StatusCode::kNotFound || c == absl::StatusCode::kDataLoss ||
                           c == absl::StatusCode::kFailedPrecondition;
    if (dist->distributed() && c == absl::StatusCode::kUnavailable) return kExitLostPeer;
    return bad_input ? kExitUsage : kExitRuntime;
  }
  std::cout << "sgt-train: " << cfg->name << " " << r->status << " at step " << r->step << ", loss "
            << r->final_loss << " (" << out_dir
            << (dist->distributed() ? absl::StrCat(", rank ", dist->rank, " of ", dist->world_size)
                                    : std::string())
            << ")\n";
  return 0;
}
