// sgt-bench-interleaved: benchmarks several run configurations in one process, their training
// steps interleaved, so that their step-time ratios survive a noisy shared machine.
//
//   sgt-bench-interleaved --steps 16 --warmup 2 vanilla=bench/configs/vanilla.yaml
//       sgt=bench/configs/sgt.yaml sgt-no-entropy=bench/configs/sgt.yaml+no-train-entropy
//       sgt-before=bench/configs/sgt.yaml+textbook=all
//
// Separate processes of the same configuration differ by 15-40 % on a shared 2-core VM
// (docs/benchmarks.md), more than the SGT overhead being measured; steps of different arms taken
// turn about within one process do not. Prints one JSON line per arm (sgt-train --bench's
// fields, plus "arm").
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "libsgt/core/config.h"
#include "libsgt/torch/threads.h"
#include "libsgt/torch/trainer.h"

namespace {

constexpr char kUsage[] = R"(usage: sgt-bench-interleaved [--steps N] [--warmup W] ARM...

ARM is NAME=CONFIG[+no-train-entropy][+probe][+textbook=PATH...]: a run configuration
(docs/config.md; data files are not read) trained on random tokens. textbook=PATH runs that part
of the forward in its textbook form: norm, slot, residual, rope, attention, or all
(libsgt/torch/model.h, ModelPaths); kernel runs the attention in query blocks of LibTorch ops
instead of libsgt's CPU kernel. Repeat it for several. Every arm runs W untimed then N timed steps (defaults
16 and 2), step by step in turn. Prints one JSON line per arm.
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-bench-interleaved: " << problem << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  sgt::KeepFreedMemoryMapped();
  int64_t steps = 16, warmup = 2;
  std::vector<sgt::BenchArm> arms;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" || a == "--warmup") {
      int64_t* v = a == "--steps" ? &steps : &warmup;
      if (i + 1 >= argc || !absl::SimpleAtoi(argv[++i], v) || *v < (a == "--steps" ? 1 : 0)) {
        return Usage(a + " needs a count (" + (a == "--steps" ? ">= 1" : ">= 0") + ")");
      }
      continue;
    }
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Usage("'" + a + "' is not an arm: write NAME=CONFIG[+OPTION...]");
    }
    std::vector<std::string> parts = absl::StrSplit(a.substr(eq + 1), '+');
    sgt::BenchArm arm;
    arm.name = a.substr(0, eq);
    for (size_t p = 1; p < parts.size(); ++p) {
      if (parts[p] == "no-train-entropy") {
        arm.train_entropy = false;
      } else if (parts[p] == "probe") {
        arm.probe = true;
      } else if (parts[p].rfind("textbook=", 0) == 0) {
        arm.textbook.push_back(parts[p].substr(9));
      } else {
        return Usage("arm '" + arm.name + "': unknown option '" + parts[p] +
                     "'; allowed: no-train-entropy, probe, textbook=PATH");
      }
    }
    absl::StatusOr<sgt::RunConfig> cfg = sgt::LoadRunConfig(parts[0]);
    if (!cfg.ok()) {
      std::cerr << "sgt-bench-interleaved: arm '" << arm.name << "': " << cfg.status().message()
                << "\n";
      return 2;
    }
    arm.cfg = *cfg;
    arms.push_back(std::move(arm));
  }
  if (arms.empty()) return Usage("no arms given");
  absl::StatusOr<std::vector<std::string>> r = sgt::RunBenchmark(arms, steps, warmup);
  if (!r.ok()) {
    std::cerr << "sgt-bench-interleaved: " << r.status().message() << "\n";
    return 1;
  }
  for (const std::string& line : *r) std::cout << line << "\n";
  return 0;
}
