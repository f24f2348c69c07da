// sgt-bench-inference: prefill and decode throughput of the cached forward (libsgt/torch/
// inference.h) for vanilla, Block Loop and SGT models of one shape, at several batch sizes: the
// paper's Table 10 protocol, a prompt of 128 tokens then 128 generated one at a time.
//
//   sgt-bench-inference --threads 1 --reps 5 vanilla=bench/configs/vanilla.yaml
//       block-loop=bench/configs/block-loop.yaml sgt=bench/configs/sgt.yaml
//
// Weights are random (the timing does not depend on them). Each arm's structure is its
// configuration's fixed schedule at full growth: growth.fixed_layers loop K = growth.k_max times,
// whole blocks for Block Loop, the first growth.heads heads for SGT (which heads does not change
// the cost). Repetitions interleave the arms, as sgt-bench-interleaved does, so that a shared
// machine's noise spreads over all of them; each figure is the median over the repetitions.
// Prints one JSON line per arm and batch size.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/full_growth_plan.h"
#include "libsgt/core/config.h"
#include "libsgt/torch/inference.h"
#include "libsgt/torch/model.h"
#include "libsgt/torch/threads.h"

namespace {

constexpr char kUsage[] = R"(usage: sgt-bench-inference [--threads N] [--reps R] [--warmup W]
           [--batches B,B,...] [--prompt P] [--generate G] [ARM...]

ARM is NAME=CONFIG[+k=K]: a run configuration (docs/config.md; data files are not read) whose
growth.fixed_layers loop growth.k_max times (K overrides it), whole blocks for block_loop and
the first growth.heads heads for sgt; vanilla loops nothing. Default arms:
vanilla=bench/configs/vanilla.yaml block-loop=bench/configs/block-loop.yaml
sgt=bench/configs/sgt.yaml. Each repetition (R timed, default 5, after W untimed, default 1)
runs every arm at every batch size (default 1,4,16): a prompt of P tokens (default 128) in one
forward, then G tokens (default 128) one at a time, greedy. Prints one JSON line per arm and
batch size with the median prefill and decode tokens per second of wall clock, and per second
of the process's CPU time (*_per_cpu_second).
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-bench-inference: " << problem << "\n\n" << kUsage;
  return 2;
}

struct Arm {
  std::string name;
  sgt::RunConfig cfg;
  sgt::LoopPlan plan;
  sgt::Transformer model{nullptr};
  // [batch index] -> per-repetition seconds of wall clock and of the process's CPU time
  std::vector<std::vector<double>> prefill_s, decode_s, prefill_cpu_s, decode_cpu_s;
};

// Wall-clock and process CPU seconds. On a shared machine the CPU time counts less of the other
// tenants' time slices than the wall clock (at 1 thread it is the figure to compare).
struct Clock {
  double wall = 0, cpu = 0;
  static Clock Now() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return {
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(),
        static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec)};
  }
};

struct Times {
  double prefill = 0, decode = 0, prefill_cpu = 0, decode_cpu = 0;
};
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One prefill of `prompt` and `generate` greedy decode steps; the seconds of each part (the
// forwards only: choosing the next token is not timed).
Times Run(Arm& arm, const torch::Tensor& prompt, int64_t generate) {
  Times t;
  sgt::KvCache cache;
  const Clock t0 = Clock::Now();
  torch::Tensor logits = sgt::ForwardCached(*arm.model, arm.plan, prompt, &cache);
  const Clock t1 = Clock::Now();
  t.prefill = t1.wall - t0.wall;
  t.prefill_cpu = t1.cpu - t0.cpu;
  torch::Tensor next = logits.select(1, logits.size(1) - 1).argmax(-1).view({-1, 1});
  for (int64_t i = 0; i < generate; ++i) {
    const Clock a = Clock::Now();
    logits = sgt::ForwardCached(*arm.model, arm.plan, next, &cache);
    const Clock b = Clock::Now();
    t.decode += b.wall - a.wall;
    t.decode_cpu += b.cpu - a.cpu;
    next = logits.select(1, 0).argmax(-1).view({-1, 1});
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  sgt::KeepFreedMemoryMapped();
  int64_t threads = 1, reps = 5, warmup = 1, prompt_len = 128, generate = 128;
  std::vector<int64_t> batches = {1, 4, 16};
  std::vector<std::string> arm_args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto count = [&](int64_t* v, int64_t min) {
      return i + 1 < argc && absl::SimpleAtoi(argv[++i], v) && *v >= min;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--threads") {
      if (!count(&threads, 1)) return Usage("--threads needs a count >= 1");
    } else if (a == "--reps") {
      if (!count(&reps, 1)) return Usage("--reps needs a count >= 1");
    } else if (a == "--warmup") {
      if (!count(&warmup, 0)) return Usage("--warmup needs a count >= 0");
    } else if (a == "--prompt") {
      if (!count(&prompt_len, 1)) return Usage("--prompt needs a token count >= 1");
    } else if (a == "--generate") {
      if (!count(&generate, 1)) return Usage("--generate needs a token count >= 1");
    } else if (a == "--batches") {
      batches.clear();
      if (i + 1 >= argc) return Usage("--batches needs sizes, e.g. 1,4,16");
      for (absl::string_view s : absl::StrSplit(argv[++i], ',')) {
        int64_t b = 0;
        if (!absl::SimpleAtoi(s, &b) || b < 1)
          return Usage("--batches needs sizes >= 1, e.g. 1,4,16");
        batches.push_back(b);
      }
    } else if (a.rfind("--", 0) == 0) {
      return Usage("unknown option '" + a + "'");
    } else {
      arm_args.push_back(a);
    }
  }
  if (arm_args.empty()) {
    arm_args = {"vanilla=bench/configs/vanilla.yaml", "block-loop=bench/configs/block-loop.yaml",
                "sgt=bench/configs/sgt.yaml"};
  }
  std::vector<Arm> arms;
  for (const std::string& a : arm_args) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Usage("'" + a + "' is not an arm: write NAME=CONFIG[+k=K]");
    }
    std::vector<std::string> parts = absl::StrSplit(a.substr(eq + 1), '+');
    Arm arm;
    arm.name = a.substr(0, eq);
    absl::StatusOr<sgt::RunConfig> cfg = sgt::LoadRunConfig(parts[0]);
    if (!cfg.ok()) {
      std::cerr << "sgt-bench-inference: arm '" << arm.name << "': " << cfg.status().message()
                << "\n";
      return 2;
    }
    arm.cfg = *cfg;
    for (size_t p = 1; p < parts.size(); ++p) {
      int64_t k = 0;
      if (parts[p].rfind("k=", 0) != 0 || !absl::SimpleAtoi(parts[p].substr(2), &k) || k < 1) {
        return Usage("arm '" + arm.name + "': unknown option '" + parts[p] + "'; allowed: k=K");
      }
      arm.cfg.growth.k_max = k;
    }
    arm.plan = sgt::FullGrowthPlan(arm.cfg);
    torch::manual_seed(1);
    arm.model = sgt::Transformer(arm.cfg.model);
    arm.model->eval();
    arm.prefill_s.resize(batches.size());
    arm.decode_s.resize(batches.size());
    arm.prefill_cpu_s.resize(batches.size());
    arm.decode_cpu_s.resize(batches.size());
    arms.push_back(std::move(arm));
  }
  const sgt::ComputeRuntime rt = sgt::SetComputeThreads(static_cast<int>(threads));
  for (int64_t r = 0; r < warmup + reps; ++r) {
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      for (Arm& arm : arms) {
        torch::manual_seed(100 + r);
        const torch::Tensor prompt =
            torch::randint(0, arm.cfg.model.vocab_size, {batches[bi], prompt_len}, torch::kLong);
        const Times t = Run(arm, prompt, generate);
        if (r < warmup) continue;
        arm.prefill_s[bi].push_back(t.prefill);
        arm.decode_s[bi].push_back(t.decode);
        arm.prefill_cpu_s[bi].push_back(t.prefill_cpu);
        arm.decode_cpu_s[bi].push_back(t.decode_cpu);
      }
    }
  }
  for (Arm& arm : arms) {
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      const double b = static_cast<double>(batches[bi]);
      const double prefill = Median(arm.prefill_s[bi]), decode = Median(arm.decode_s[bi]);
      const double prefill_cpu = Median(arm.prefill_cpu_s[bi]);
      const double decode_cpu = Median(arm.decode_cpu_s[bi]);
      std::cout << absl::StrCat("{\"arm\":\"", arm.name, "\",\"batch\":", batches[bi],
                                ",\"threads\":", rt.threads, ",\"prompt\":", prompt_len,
                                ",\"generate\":", generate, ",\"reps\":", reps,
                                ",\"prefill_tokens_per_second\":", b * prompt_len / prefill,
                                ",\"decode_tokens_per_second\":", b * generate / decode,
                                ",\"prefill_ms\":", 1e3 * prefill,
                                ",\"decode_ms_per_token\":", 1e3 * decode / generate,
                                ",\"prefill_tokens_per_cpu_second\":", b * prompt_len / prefill_cpu,
                                ",\"decode_tokens_per_cpu_second\":", b * generate / decode_cpu,
                                "}")
                << "\n";
    }
  }
  return 0;
}
