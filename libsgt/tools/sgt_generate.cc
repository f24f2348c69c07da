// sgt-generate: continues text prompts with a trained checkpoint (any variant), decoding with a
// key/value cache under the growth structure the checkpoint recorded (docs/evaluation.md,
// "Inference").
//
//   sgt-generate --checkpoint runs/a/checkpoints/step-0000300.sgtckpt --prompt "The jury said"
//
// A hidden --check-cache compares, per prompt, the cached forward (prefill, then a token at a
// time, then chunks) with the uncached forward on the generated sequence, prints the largest
// logit difference and fails above 1e-3 (tests/integration/sgt_generate_test.sh).
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/config.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/inference.h"
#include "libsgt/torch/threads.h"

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr double kCheckTolerance = 1e-3;

constexpr char kUsage[] = R"(usage:
  sgt-generate --checkpoint FILE --prompt TEXT [--prompt TEXT]... [--tokenizer FILE]
               [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
               [--threads N] [--device cpu|cuda]

Continues each prompt with the model of FILE, a checkpoint written by sgt-train (vanilla, Block
Loop or SGT), under the growth structure it recorded, decoding with a key/value cache
(docs/evaluation.md, "Inference"). Each prompt starts a document: the end-of-text token comes
first, as between training documents. A continuation ends at end of text or after N tokens.
Prints, per prompt, a line "--- prompt I: TEXT" and the continuation on the next line.

  --tokenizer FILE     SentencePiece model (default: the tokenizer that the sidecar of the
                       checkpoint's data.train names)
  --max-new-tokens N   tokens to generate per prompt (default 64)
  --temperature T      softmax temperature (default 0.8); 0 picks the most likely token
  --top-k K            sample among the K most likely tokens (default 0: all)
  --top-p P            sample among the fewest most likely tokens whose probability reaches P,
                       0 < P <= 1 (default 1: all)
  --seed S             prompt I samples with seed S + I - 1 (default 0): the same seed gives the
                       same text on the same device
  --threads N          CPU intra-op threads (default 1)
  --device cpu|cuda    where the model runs (default cpu)

exit status: 0 done, 1 generation failed, 2 bad arguments, checkpoint or tokenizer
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-generate: " << problem << "\n\n" << kUsage;
  return kExitUsage;
}

// Bad input (a missing or corrupt file, a mismatch) is exit 2, anything else exit 1.
int Fail(const absl::Status& s) {
  std::cerr << "sgt-generate: " << s.message() << "\n";
  const absl::StatusCode c = s.code();
  const bool bad_input = c == absl::StatusCode::kInvalidArgument ||
                         c == absl::StatusCode::kNotFound || c == absl::StatusCode::kDataLoss ||
                         c == absl::StatusCode::kFailedPrecondition;
  return bad_input ? kExitUsage : kExitRuntime;
}

// "layer 2 K=2 heads 1,3; layer 1 K=1 block" for the structure line.
std::string Structure(const sgt::LoadedModel& m) {
  if (m.state.active.empty()) return "no looping layers";
  std::vector<std::string> parts;
  for (const sgt::LoopedLayer& a : m.state.active) {
    parts.push_back(absl::StrCat(
        "layer ", a.layer, " K=", a.k,
        a.whole_block ? " whole block" : absl::StrCat(" heads ", absl::StrJoin(a.heads, ","))));
  }
  return absl::StrJoin(parts, "; ");
}

// The largest |cached - uncached| logit over `seq` [1, N]: the cached forward prefills half,
// decodes up to 8 tokens one at a time, then the rest in chunks of 5.
double CacheDifference(sgt::LoadedModel& m, const torch::Tensor& seq) {
  torch::NoGradGuard no_grad;
  const int64_t n = seq.size(1);
  const torch::Tensor full = m.model->forward(seq, m.plan);
  sgt::KvCache cache;
  std::vector<torch::Tensor> parts;
  int64_t at = 0;
  const int64_t prefill = std::max<int64_t>(1, n / 2);
  parts.push_back(sgt::ForwardCached(*m.model, m.plan, seq.narrow(1, 0, prefill), &cache));
  at = prefill;
  for (int64_t i = 0; i < 8 && at < n; ++i, ++at) {
    parts.push_back(sgt::ForwardCached(*m.model, m.plan, seq.narrow(1, at, 1), &cache));
  }
  while (at < n) {
    const int64_t c = std::min<int64_t>(5, n - at);
    parts.push_back(sgt::ForwardCached(*m.model, m.plan, seq.narrow(1, at, c), &cache));
    at += c;
  }
  return (torch::cat(parts, 1) - full).abs().max().item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, tokenizer_path, device_name = "cpu";
  std::vector<std::string> prompts;
  sgt::SampleOptions options;
  options.max_new_tokens = 64;
  options.temperature = 0.8;
  int64_t threads = 1;
  bool check_cache = false;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    auto int_value = [&](int64_t* out) {
      const std::string* v = value();
      return v != nullptr && absl::SimpleAtoi(*v, out);
    };
    auto double_value = [&](double* out) {
      const std::string* v = value();
      return v != nullptr && absl::SimpleAtod(*v, out);
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--checkpoint") {
      const std::string* v = value();
      if (!v) return Usage("--checkpoint needs a .sgtckpt file written by sgt-train");
      checkpoint = *v;
    } else if (a == "--prompt") {
      const std::string* v = value();
      if (!v) return Usage("--prompt needs a text");
      prompts.push_back(*v);
    } else if (a == "--tokenizer") {
      const std::string* v = value();
      if (!v) return Usage("--tokenizer needs a SentencePiece model file");
      tokenizer_path = *v;
    } else if (a == "--max-new-tokens") {
      if (!int_value(&options.max_new_tokens) || options.max_new_tokens < 1)
        return Usage("--max-new-tokens needs a count >= 1");
    } else if (a == "--temperature") {
      if (!double_value(&options.temperature) || !(options.temperature >= 0.0))
        return Usage("--temperature needs a number >= 0 (0: the most likely token)");
    } else if (a == "--top-k") {
      if (!int_value(&options.top_k) || options.top_k < 0)
        return Usage("--top-k needs a count >= 0 (0: no limit)");
    } else if (a == "--top-p") {
      if (!double_value(&options.top_p) || !(options.top_p > 0.0 && options.top_p <= 1.0))
        return Usage("--top-p needs a probability in (0, 1] (1: no limit)");
    } else if (a == "--seed") {
      const std::string* v = value();
      if (!v || !absl::SimpleAtoi(*v, &options.seed)) return Usage("--seed needs an integer >= 0");
    } else if (a == "--threads") {
      if (!int_value(&threads) || threads < 1 || threads > 1024)
        return Usage("--threads needs a count from 1 to 1024");
    } else if (a == "--device") {
      const std::string* v = value();
      if (!v || (*v != "cpu" && *v != "cuda")) return Usage("--device needs cpu or cuda");
      device_name = *v;
    } else if (a == "--check-cache") {
      check_cache = true;
    } else {
      return Usage("unknown argument '" + a + "'");
    }
  }
  if (checkpoint.empty()) return Usage("--checkpoint is required");
  if (prompts.empty()) return Usage("give at least one --prompt TEXT");
  if (device_name == "cuda" && !torch::cuda::is_available()) {
    return Usage(
        "--device cuda: this machine or this LibTorch build has no CUDA device; use --device cpu");
  }
  const torch::Device device =
      device_name == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  sgt::SetComputeThreads(static_cast<int>(threads));

  absl::StatusOr<sgt::LoadedModel> m = sgt::LoadModelForInference(checkpoint, device);
  if (!m.ok()) return Fail(m.status());
  if (tokenizer_path.empty()) {
    absl::StatusOr<std::string> t = sgt::TokenizerOfTokenFile(m->config.data.train, "data.train");
    if (!t.ok()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "finding the tokenizer of checkpoint ", checkpoint, ": ", t.status().message(),
          "; or pass --tokenizer FILE (the tokenizer.model sgt-data wrote beside the data)")));
    }
    tokenizer_path = *t;
  }
  absl::StatusOr<sgt::Tokenizer> tok = sgt::Tokenizer::Load(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  if (tok->vocab_size() != m->config.model.vocab_size) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", tokenizer_path, " has ", tok->vocab_size(), " tokens but checkpoint ",
        checkpoint, " was trained with model.vocab_size ", m->config.model.vocab_size,
        "; pass --tokenizer with the tokenizer its data was encoded with")));
  }
  std::cerr << "sgt-generate: " << checkpoint << ": " << sgt::VariantName(m->config.variant)
            << " at step " << m->step << ", " << Structure(*m) << "\n";
  options.stop_token = tok->eos_id();

  double worst = 0.0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    absl::StatusOr<std::vector<int64_t>> ids = tok->Encode(prompts[i]);
    if (!ids.ok()) return Fail(ids.status());
    std::vector<int64_t> input = {tok->eos_id()};
    input.insert(input.end(), ids->begin(), ids->end());
    const int64_t T = static_cast<int64_t>(input.size());
    sgt::SampleOptions o = options;
    o.seed = options.seed + i;
    torch::Tensor out;
    try {
      out = sgt::Generate(*m->model, m->plan,
                          torch::tensor(input, torch::kLong).view({1, T}).to(device), o)
                .to(torch::kCPU);
    } catch (const c10::Error& e) {
      return Fail(absl::InternalError(
          absl::StrCat("generating from prompt ", i + 1, ": ", e.what_without_backtrace())));
    }
    std::vector<int64_t> continuation;
    bool ended = false;
    for (int64_t t = T; t < out.size(1); ++t) {
      const int64_t id = out[0][t].item<int64_t>();
      if (id == tok->eos_id()) {
        ended = true;
        break;
      }
      continuation.push_back(id);
    }
    // Decoded together with the prompt, so that the first piece's word boundary is kept.
    std::vector<int64_t> both(*ids);
    both.insert(both.end(), continuation.begin(), continuation.end());
    absl::StatusOr<std::string> prompt_text = tok->Decode(*ids);
    absl::StatusOr<std::string> all_text = tok->Decode(both);
    if (!prompt_text.ok()) return Fail(prompt_text.status());
    if (!all_text.ok()) return Fail(all_text.status());
    std::string text;
    if (all_text->rfind(*prompt_text, 0) == 0) {
      text = all_text->substr(prompt_text->size());
    } else {
      absl::StatusOr<std::string> alone = tok->Decode(continuation);
      if (!alone.ok()) return Fail(alone.status());
      text = *alone;
    }
    std::cout << "--- prompt " << i + 1 << ": " << prompts[i] << "\n"
              << text << (ended ? " [end of text]" : "") << "\n";
    if (check_cache) {
      double diff = 0.0;
      try {
        diff = CacheDifference(*m, out.to(device));
      } catch (const c10::Error& e) {
        return Fail(absl::InternalError(absl::StrCat("checking the cache on prompt ", i + 1, ": ",
                                                     e.what_without_backtrace())));
      }
      std::cout << "check-cache: prompt " << i + 1 << ": " << out.size(1)
                << " positions, max |cached - uncached| logit difference " << diff << "\n";
      worst = std::max(worst, diff);
    }
  }
  if (check_cache && !(worst <= kCheckTolerance)) {
    std::cerr << "sgt-generate: the cached forward differs from the uncached one by " << worst
              << " (over " << kCheckTolerance << ") on checkpoint " << checkpoint
              << ": the KV cache is wrong for this structure (" << Structure(*m) << ")\n";
    return kExitRuntime;
  }
  return 0;
}
