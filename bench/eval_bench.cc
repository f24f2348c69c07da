// sgt-bench-eval: zero-shot scoring throughput (items/s) for vanilla, Block Loop and SGT of one
// shape, with the shared-context path and with every sequence run whole (docs/benchmarks.md,
// "Scoring").
//
//   sgt-bench-eval --tokenizer data/brown/tokenizer.model --items 200 --reps 3 --threads 1
//       vanilla=bench/configs/vanilla.yaml sgt=bench/configs/sgt.yaml
//       block_loop=bench/configs/block-loop.yaml
//
// The models have random weights (throughput does not depend on them) and the structure their
// configuration's fixed schedule reaches: its layers loop K = k_max times, over the first
// growth.heads heads (SGT) or whole blocks (Block Loop). The task is the generated arithmetic
// task. The arms take their repetitions in turn, so a slow spell on a shared machine hits them
// alike. Prints one JSON line per arm and path with the median items/s.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/full_growth_plan.h"
#include "libsgt/core/config.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/eval.h"
#include "libsgt/torch/model.h"
#include "libsgt/torch/threads.h"
#include "nlohmann/json.hpp"

namespace {

constexpr char kUsage[] = R"(usage: sgt-bench-eval --tokenizer FILE [--items N] [--reps R]
                      [--threads T] [--batch-size B] [--shots S] NAME=CONFIG...

Scores N generated arithmetic items (default 200) R times (default 3) per arm and path (shared
context, whole sequences) and prints one JSON line each with the median items/s. --shots S puts
the S items before each one, answered, in front of its context (a longer, few-shot context).
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-bench-eval: " << problem << "\n\n" << kUsage;
  return 2;
}

struct Arm {
  std::string name;
  sgt::RunConfig cfg;
  sgt::Transformer model{nullptr};
  sgt::LoopPlan plan;
  std::vector<double> per_s[2];  // whole, shared
};

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path;
  int64_t items = 200, reps = 3, threads = 1, batch = 16, shots = 0;
  std::vector<Arm> arms;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto count = [&](int64_t* v) {
      return i + 1 < argc && absl::SimpleAtoi(argv[++i], v) && *v >= 1;
    };
    if (a == "--tokenizer") {
      if (i + 1 >= argc) return Usage("--tokenizer needs a file");
      tokenizer_path = argv[++i];
    } else if (a == "--items") {
      if (!count(&items)) return Usage("--items needs a count >= 1");
    } else if (a == "--reps") {
      if (!count(&reps)) return Usage("--reps needs a count >= 1");
    } else if (a == "--threads") {
      if (!count(&threads)) return Usage("--threads needs a count >= 1");
    } else if (a == "--shots") {
      if (i + 1 >= argc || !absl::SimpleAtoi(argv[++i], &shots) || shots < 0) {
        return Usage("--shots needs a count >= 0");
      }
    } else if (a == "--batch-size") {
      if (!count(&batch)) return Usage("--batch-size needs a count >= 1");
    } else {
      const size_t eq = a.find('=');
      if (eq == std::string::npos || eq == 0) return Usage("'" + a + "' is not NAME=CONFIG");
      absl::StatusOr<sgt::RunConfig> cfg = sgt::LoadRunConfig(a.substr(eq + 1));
      if (!cfg.ok()) return Usage(std::string(cfg.status().message()));
      Arm arm;
      arm.name = a.substr(0, eq);
      arm.cfg = *cfg;
      arms.push_back(std::move(arm));
    }
  }
  if (tokenizer_path.empty()) return Usage("--tokenizer is required");
  if (arms.empty()) return Usage("give at least one NAME=CONFIG arm");
  absl::StatusOr<sgt::Tokenizer> tokenizer = sgt::Tokenizer::Load(tokenizer_path);
  if (!tokenizer.ok()) return Usage(std::string(tokenizer.status().message()));
  sgt::SetComputeThreads(static_cast<int>(threads));
  sgt::eval::Task task;
  task.name = "arithmetic";
  task.path = "(generated)";
  task.items = sgt::eval::ArithmeticTask(items + shots, 1);
  std::vector<sgt::eval::TaskItem> scored(task.items.begin() + shots, task.items.end());
  for (int64_t i = 0; i < items; ++i) {
    std::string prefix;
    for (int64_t s = i; s < i + shots; ++s) {  // the S items before this one, answered
      const sgt::eval::TaskItem& shot = task.items[s];
      const sgt::eval::Choice& gold = shot.choices[shot.gold];
      prefix += gold.context + gold.continuation + "\n\n";
    }
    for (sgt::eval::Choice& c : scored[i].choices) c.context = prefix + c.context;
  }
  task.items = std::move(scored);
  for (Arm& arm : arms) {
    torch::manual_seed(1);
    arm.model = sgt::Transformer(arm.cfg.model);
    arm.model->eval();
    arm.plan = sgt::FullGrowthPlan(arm.cfg);
  }
  for (int64_t r = 0; r <= reps; ++r) {  // repetition 0 warms up
    for (Arm& arm : arms) {
      for (int share = 0; share < 2; ++share) {
        const auto t0 = std::chrono::steady_clock::now();
        absl::StatusOr<std::vector<sgt::eval::TaskScore>> s = sgt::ScoreTask(
            *arm.model, arm.plan, *tokenizer, task, {batch, 0, share == 1, 0});
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (!s.ok()) {
          std::cerr << "sgt-bench-eval: " << arm.name << ": " << s.status().message() << "\n";
          return 1;
        }
        if (r > 0) arm.per_s[share].push_back(static_cast<double>(items) / dt);
      }
    }
  }
  for (Arm& arm : arms) {
    for (int share = 0; share < 2; ++share) {
      std::vector<double>& v = arm.per_s[share];
      std::sort(v.begin(), v.end());
      nlohmann::json j = {{"arm", arm.name},
                          {"path", share ? "shared" : "whole"},
                          {"items", items},
                          {"threads", threads},
                          {"shots", shots},
                          {"items_per_s_median", v[v.size() / 2]},
                          {"items_per_s", v}};
      std::cout << j.dump() << "\n";
    }
  }
  return 0;
}
