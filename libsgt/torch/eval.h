// Zero-shot multiple-choice scoring (docs/evaluation.md, "Scoring"), in the manner of
// lm-evaluation-harness: each choice's summed log-likelihood as the continuation of its context;
// `acc` picks the highest sum, `acc_norm` the highest sum per byte of the scored text.
//
// Tokens: an end-of-text token (how every document in the token files is preceded), then the
// context's ids, then the continuation's ids, the two encoded separately with the run's tokenizer.
// When a sequence is longer than the model's context, the context is cut from the left.
//
// Batched: when every choice of an item shares its context (every shape but WinoGrande's), the
// context runs once and its key/value cache is shared by all the choices (inference.h); otherwise
// whole sequences run in batches of batch_size rows.
//
//   absl::StatusOr<std::vector<eval::TaskScore>> s = ScoreTask(model, plan, tokenizer, task, {});
#ifndef SGT_TORCH_EVAL_H_
#define SGT_TORCH_EVAL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/model.h"

namespace sgt {

struct ScoreOptions {
  int64_t batch_size = 16;    // sequences per forward pass
  int64_t limit = 0;          // the first `limit` items (0: all)
  bool share_context = true;  // run a shared context once (false: every sequence whole)
};

// The summed log-likelihood of each choice of each scored item: [item][choice].
struct ChoiceLogLikelihoods {
  std::vector<std::vector<double>> logprob;
};

// Scores `task`'s items; the result's first entry is the task's total (group ""), followed by its
// groups in name order. InvalidArgument names the task file and item when an item cannot be
// scored (a token the model's vocabulary lacks, an empty continuation).
absl::StatusOr<std::vector<eval::TaskScore>> ScoreTask(TransformerImpl& model,
                                                       const LoopPlan& plan,
                                                       const Tokenizer& tokenizer,
                                                       const eval::Task& task,
                                                       const ScoreOptions& options,
                                                       ChoiceLogLikelihoods* detail = nullptr);

// The accuracies of the first `items` items of `task` from their choices' summed
// log-likelihoods (`logprob` as ScoreTask computes it): the total, then the groups in name order.
// Ties go to the first choice. Exposed for tests.
std::vector<eval::TaskScore> Accuracies(const eval::Task& task, int64_t items,
                                        const std::vector<std::vector<double>>& logprob);

}  // namespace sgt

#endif  // SGT_TORCH_EVAL_H_
