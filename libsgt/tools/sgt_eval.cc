// sgt-eval: zero-shot multiple-choice accuracy of a saved run (docs/evaluation.md).
//
//   sgt-eval --checkpoint runs/a/checkpoints/step-0000300.sgtckpt --task tasks/arith.jsonl
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/core/event_log.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/eval.h"
#include "libsgt/torch/inference.h"
#include "libsgt/torch/threads.h"
#include "nlohmann/json.hpp"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] = R"(usage:
  sgt-eval --checkpoint FILE --task FILE [--task FILE]... [--tokenizer FILE]
           [--limit N] [--batch-size N] [--no-share] [--threads N] [--device cpu|cuda] [--json]

Scores a saved run on zero-shot multiple-choice tasks (docs/evaluation.md): for each item, the
summed log-likelihood of each choice as the continuation of its context, under the growth
structure the checkpoint recorded. Prints acc (highest sum) and acc_norm (highest sum per byte)
per task, per group (MMLU's categories) and on average over the tasks.

  --checkpoint FILE  a checkpoint written by sgt-train (any variant)
  --task FILE        a task file (JSONL; `sgt-data task` writes them); repeat for more
  --tokenizer FILE   the SentencePiece model (default: the one the run's data.train names)
  --limit N          score the first N items of each task (default: all)
  --batch-size N     sequences per forward pass (default 16)
  --no-share         run every context + choice whole (default: a shared context runs once)
  --threads N        CPU threads (default 1)
  --device D         cpu (default) or cuda
  --json             print one JSON object instead of the table

exit status: 0 scored, 1 scoring failed (the message says why), 2 bad arguments or input
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-eval: " << problem << "\n\n" << kUsage;
  return kExitUsage;
}

int Fail(const std::string& problem, int code) {
  std::cerr << "sgt-eval: " << problem << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, tokenizer_path, device_name = "cpu";
  std::vector<std::string> task_paths;
  int64_t limit = 0, batch = 16, threads = 1;
  bool share = true, as_json = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    auto count = [&](int64_t* out, int64_t min) {
      const std::string* v = value();
      return v != nullptr && absl::SimpleAtoi(*v, out) && *out >= min;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--checkpoint") {
      const std::string* v = value();
      if (!v) return Usage("--checkpoint needs a file");
      checkpoint = *v;
    } else if (a == "--task") {
      const std::string* v = value();
      if (!v) return Usage("--task needs a task file");
      task_paths.push_back(*v);
    } else if (a == "--tokenizer") {
      const std::string* v = value();
      if (!v) return Usage("--tokenizer needs a SentencePiece model file");
      tokenizer_path = *v;
    } else if (a == "--limit") {
      if (!count(&limit, 1)) return Usage("--limit needs an item count >= 1");
    } else if (a == "--batch-size") {
      if (!count(&batch, 1)) return Usage("--batch-size needs a count >= 1");
    } else if (a == "--threads") {
      if (!count(&threads, 1)) return Usage("--threads needs a count >= 1");
    } else if (a == "--device") {
      const std::string* v = value();
      if (!v || (*v != "cpu" && *v != "cuda")) return Usage("--device needs cpu or cuda");
      device_name = *v;
    } else if (a == "--no-share") {
      share = false;
    } else if (a == "--json") {
      as_json = true;
    } else {
      return Usage("unknown argument '" + a + "'");
    }
  }
  if (checkpoint.empty()) return Usage("--checkpoint is required");
  if (task_paths.empty()) return Usage("at least one --task is required");

  // Every input is read before the model is: a bad task file costs no loading time.
  std::vector<sgt::eval::Task> tasks;
  for (const std::string& p : task_paths) {
    absl::StatusOr<sgt::eval::Task> t = sgt::eval::ReadTaskFile(p);
    if (!t.ok()) return Fail(std::string(t.status().message()), kExitUsage);
    for (const sgt::eval::Task& other : tasks) {
      if (other.name == t->name) {
        return Usage(absl::StrCat("--task ", p, " and --task ", other.path,
                                  " have the same task name '", t->name,
                                  "'; rename one of the files"));
      }
    }
    tasks.push_back(*std::move(t));
  }
  if (device_name == "cuda" && !torch::cuda::is_available()) {
    return Fail("--device cuda: no CUDA device is visible to this LibTorch; use --device cpu",
                kExitUsage);
  }
  sgt::SetComputeThreads(static_cast<int>(threads));
  const torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA, 0)
                                                     : torch::Device(torch::kCPU);
  absl::StatusOr<sgt::LoadedModel> loaded = sgt::LoadModelForInference(checkpoint, device);
  if (!loaded.ok()) return Fail(std::string(loaded.status().message()), kExitUsage);
  if (tokenizer_path.empty()) {
    absl::StatusOr<std::string> p =
        sgt::TokenizerOfTokenFile(loaded->config.data.train, "the checkpoint's data.train");
    if (!p.ok()) {
      return Fail(absl::StrCat(p.status().message(), "; or pass --tokenizer"), kExitUsage);
    }
    tokenizer_path = *p;
  }
  absl::StatusOr<sgt::Tokenizer> tokenizer = sgt::Tokenizer::Load(tokenizer_path);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()), kExitUsage);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<sgt::eval::TaskScore> scores;
  int64_t items = 0;
  for (const sgt::eval::Task& t : tasks) {
    absl::StatusOr<std::vector<sgt::eval::TaskScore>> s = sgt::ScoreTask(
        *loaded->model, loaded->plan, *tokenizer, t, {batch, limit, share});
    if (!s.ok()) return Fail(std::string(s.status().message()), kExitUsage);
    items += s->front().items;
    scores.insert(scores.end(), s->begin(), s->end());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The plain mean over the tasks' totals, as summary.json's acc (Table 1's average).
  const std::optional<sgt::events::MacroAccuracy> mean = sgt::events::TaskMacroMean(scores);
  const double acc = mean ? mean->acc : 0.0, acc_norm = mean ? mean->acc_norm : 0.0;

  if (as_json) {
    nlohmann::json j;
    j["checkpoint"] = checkpoint;
    j["step"] = loaded->step;
    j["variant"] = sgt::VariantName(loaded->config.variant);
    j["tasks"] = nlohmann::json::array();
    for (const sgt::eval::TaskScore& s : scores) {
      nlohmann::json e = {{"task", s.task}, {"items", s.items}, {"acc", s.acc},
                          {"acc_norm", s.acc_norm}};
      if (!s.group.empty()) e["group"] = s.group;
      j["tasks"].push_back(e);
    }
    j["acc"] = acc;
    j["acc_norm"] = acc_norm;
    j["seconds"] = seconds;
    j["items_per_s"] = seconds > 0 ? static_cast<double>(items) / seconds : 0.0;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%s (%s, step %lld)\n", checkpoint.c_str(), sgt::VariantName(loaded->config.variant),
              static_cast<long long>(loaded->step));
  std::printf("%-28s %7s %8s %9s\n", "task", "items", "acc", "acc_norm");
  for (const sgt::eval::TaskScore& s : scores) {
    const std::string name = s.group.empty() ? s.task : absl::StrCat("  ", s.task, "/", s.group);
    std::printf("%-28s %7lld %8.4f %9.4f\n", name.c_str(), static_cast<long long>(s.items), s.acc,
                s.acc_norm);
  }
  std::printf("%-28s %7s %8.4f %9.4f\n", "average over tasks", "", acc, acc_norm);
  std::printf("%lld items in %.2f s (%.1f items/s)\n", static_cast<long long>(items), seconds,
              seconds > 0 ? static_cast<double>(items) / seconds : 0.0);
  return 0;
}
