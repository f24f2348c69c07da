// Multiple-choice scoring. See eval.h for the contract.
#include "libsgt/torch/eval.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/torch/inference.h"

namespace sgt {
namespace {

// One choice as tokens: the scored continuation after its context (end-of-text first).
struct Sequence {
  std::vector<int64_t> context;
  std::vector<int64_t> continuation;
};

std::string ItemName(const eval::Task& task, size_t item) {
  return absl::StrCat("task file ", task.path, ", item ", item + 1, " (line ", item + 1, ")");
}

// Every choice of the first `items` items as tokens. A context is cut from the left, by the same
// amount for every choice of an item, so that each sequence but its last token fits the model's
// context; a continuation must fit on its own.
absl::StatusOr<std::vector<std::vector<Sequence>>> Tokenize(const eval::Task& task, int64_t items,
                                                            const Tokenizer& tokenizer,
                                                            const ModelConfig& model) {
  std::vector<std::vector<Sequence>> out(items);
  for (int64_t i = 0; i < items; ++i) {
    const eval::TaskItem& item = task.items[i];
    size_t longest = 0;
    for (size_t c = 0; c < item.choices.size(); ++c) {
      Sequence s;
      if (c > 0 && item.choices[c].context == item.choices[c - 1].context) {
        s.context = out[i].back().context;  // a shared context is encoded once
      } else {
        s.context.push_back(tokenizer.eos_id());
        absl::StatusOr<std::vector<int64_t>> ctx = tokenizer.Encode(item.choices[c].context);
        if (!ctx.ok()) return ctx.status();
        s.context.insert(s.context.end(), ctx->begin(), ctx->end());
      }
      absl::StatusOr<std::vector<int64_t>> cont = tokenizer.Encode(item.choices[c].continuation);
      if (!cont.ok()) return cont.status();
      if (cont->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            ItemName(task, i), ", choice ", c, ": the continuation \"",
            item.choices[c].continuation, "\" encodes to no tokens; give each choice some text"));
      }
      s.continuation = *std::move(cont);
      for (const std::vector<int64_t>* ids : {&s.context, &s.continuation}) {
        for (int64_t id : *ids) {
          if (id >= model.vocab_size) {
            return absl::InvalidArgumentError(absl::StrCat(
                ItemName(task, i), ": tokenizer ", tokenizer.path(), " gives token ", id,
                ", outside the model's vocabulary (model.vocab_size ", model.vocab_size,
                "); score with the tokenizer the run's data was encoded with"));
          }
        }
      }
      longest = std::max(longest, s.continuation.size());
      out[i].push_back(std::move(s));
    }
    if (static_cast<int64_t>(longest) > model.context) {
      return absl::InvalidArgumentError(
          absl::StrCat(ItemName(task, i), ": a continuation of ", longest,
                       " tokens is longer than the model's context (", model.context,
                       " tokens); shorten the choice or score with a longer-context model"));
    }
    // Input tokens: context + continuation - 1 <= model.context.
    const size_t keep = static_cast<size_t>(model.context) + 1 - longest;
    for (Sequence& s : out[i]) {
      if (s.context.size() > keep) s.context.erase(s.context.begin(), s.context.end() - keep);
    }
  }
  return out;
}

torch::Device DeviceOf(TransformerImpl& model) { return model.parameters().front().device(); }

// Rows of `tokens` right-padded with 0 into [rows, width] on `device`.
torch::Tensor Padded(const std::vector<std::vector<int64_t>>& rows, int64_t width,
                     torch::Device device) {
  torch::Tensor t = torch::zeros({static_cast<int64_t>(rows.size()), width}, torch::kLong);
  auto a = t.accessor<int64_t, 2>();
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t j = 0; j < rows[r].size(); ++j) a[r][j] = rows[r][j];
  }
  return t.to(device);
}

// Sums log p(target[r][j]) over row r's positions start[r] + j of `logits` [rows, T, V].
std::vector<double> SumTargets(const torch::Tensor& logits, const std::vector<int64_t>& start,
                               const std::vector<const std::vector<int64_t>*>& target) {
  std::vector<int64_t> row, pos, tok;
  for (size_t r = 0; r < target.size(); ++r) {
    for (size_t j = 0; j < target[r]->size(); ++j) {
      row.push_back(static_cast<int64_t>(r));
      pos.push_back(start[r] + static_cast<int64_t>(j));
      tok.push_back((*target[r])[j]);
    }
  }
  const torch::Device device = logits.device();
  torch::Tensor r = torch::tensor(row, torch::kLong).to(device);
  torch::Tensor p = torch::tensor(pos, torch::kLong).to(device);
  torch::Tensor t = torch::tensor(tok, torch::kLong).to(device);
  // Only the scored positions go through log_softmax, in double.
  torch::Tensor picked = logits.index({r, p}).to(torch::kDouble);  // [n, V]
  torch::Tensor lp = torch::log_softmax(picked, -1).gather(1, t.view({-1, 1})).view({-1}).cpu();
  std::vector<double> sums(target.size(), 0.0);
  auto a = lp.accessor<double, 1>();
  for (size_t n = 0; n < row.size(); ++n) sums[row[n]] += a[n];
  return sums;
}

// Whole sequences (context + continuation, less the last token), longest first, batch rows at a
// time. Right padding is harmless: attention is causal, so no scored position sees it.
void ScoreWhole(TransformerImpl& model, const LoopPlan& plan,
                const std::vector<const Sequence*>& seqs, int64_t batch,
                std::vector<double>* out) {
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  auto length = [&](size_t i) { return seqs[i]->context.size() + seqs[i]->continuation.size(); };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return length(a) > length(b); });
  const torch::Device device = DeviceOf(model);
  for (size_t b = 0; b < order.size(); b += batch) {
    const size_t e = std::min(order.size(), b + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> rows;
    std::vector<int64_t> start;
    std::vector<const std::vector<int64_t>*> target;
    int64_t width = 0;
    for (size_t n = b; n < e; ++n) {
      const Sequence& s = *seqs[order[n]];
      std::vector<int64_t> ids = s.context;
      ids.insert(ids.end(), s.continuation.begin(), s.continuation.end() - 1);
      width = std::max<int64_t>(width, static_cast<int64_t>(ids.size()));
      rows.push_back(std::move(ids));
      start.push_back(static_cast<int64_t>(s.context.size()) - 1);
      target.push_back(&s.continuation);
    }
    torch::Tensor logits = model.forward(Padded(rows, width, device), plan);
    std::vector<double> sums = SumTargets(logits, start, target);
    for (size_t n = b; n < e; ++n) (*out)[order[n]] = sums[n - b];
  }
}

// The choices of one item that share its context: the context runs once, and its cache serves
// the continuations, batch at a time.
void ScoreShared(TransformerImpl& model, const LoopPlan& plan, const std::vector<Sequence>& item,
                 int64_t batch, std::vector<double>* out) {
  const torch::Device device = DeviceOf(model);
  const std::vector<int64_t>& context = item.front().context;
  KvCache cache;
  torch::Tensor ctx_logits =
      ForwardCached(model, plan, Padded({context}, static_cast<int64_t>(context.size()), device),
                    &cache);
  // The context's last position predicts every continuation's first token.
  torch::Tensor first = torch::log_softmax(ctx_logits[0][-1].to(torch::kDouble), -1).cpu();
  auto f = first.accessor<double, 1>();
  for (size_t c = 0; c < item.size(); ++c) (*out)[c] = f[item[c].continuation.front()];
  // The rest: continuation[:-1] after the cached context predicts continuation[1:].
  std::vector<size_t> longer;
  for (size_t c = 0; c < item.size(); ++c) {
    if (item[c].continuation.size() > 1) longer.push_back(c);
  }
  for (size_t b = 0; b < longer.size(); b += batch) {
    const size_t e = std::min(longer.size(), b + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> rows;
    std::vector<std::vector<int64_t>> targets;
    int64_t width = 0;
    for (size_t n = b; n < e; ++n) {
      const std::vector<int64_t>& cont = item[longer[n]].continuation;
      rows.emplace_back(cont.begin(), cont.end() - 1);
      targets.emplace_back(cont.begin() + 1, cont.end());
      width = std::max<int64_t>(width, static_cast<int64_t>(rows.back().size()));
    }
    KvCache rows_cache = cache.RepeatRows(static_cast<int64_t>(e - b));
    torch::Tensor logits = ForwardCached(model, plan, Padded(rows, width, device), &rows_cache);
    std::vector<const std::vector<int64_t>*> target;
    for (const auto& t : targets) target.push_back(&t);
    std::vector<double> sums = SumTargets(logits, std::vector<int64_t>(e - b, 0), target);
    for (size_t n = b; n < e; ++n) (*out)[longer[n]] += sums[n - b];
  }
}

bool SharesContext(const std::vector<Sequence>& item) {
  for (const Sequence& s : item) {
    if (s.context != item.front().context) return false;
  }
  return true;
}

}  // namespace

std::vector<eval::TaskScore> Accuracies(const eval::Task& task, int64_t items,
                                        const std::vector<std::vector<double>>& logprob) {
  struct Count {
    int64_t items = 0, acc = 0, acc_norm = 0;
  };
  Count total;
  std::map<std::string, Count> groups;
  for (int64_t i = 0; i < items; ++i) {
    const eval::TaskItem& item = task.items[i];
    size_t best = 0, best_norm = 0;
    double best_norm_value = 0;
    for (size_t c = 0; c < item.choices.size(); ++c) {
      const double norm =
          logprob[i][c] / static_cast<double>(std::max<size_t>(1, item.choices[c].continuation.size()));
      if (c == 0 || logprob[i][c] > logprob[i][best]) best = c;
      if (c == 0 || norm > best_norm_value) {
        best_norm = c;
        best_norm_value = norm;
      }
    }
    for (Count* n : {&total, item.group.empty() ? nullptr : &groups[item.group]}) {
      if (n == nullptr) continue;
      ++n->items;
      n->acc += static_cast<int64_t>(best) == item.gold;
      n->acc_norm += static_cast<int64_t>(best_norm) == item.gold;
    }
  }
  auto score = [&](const std::string& group, const Count& n) {
    eval::TaskScore s;
    s.task = task.name;
    s.group = group;
    s.items = n.items;
    s.acc = n.items > 0 ? static_cast<double>(n.acc) / static_cast<double>(n.items) : 0.0;
    s.acc_norm = n.items > 0 ? static_cast<double>(n.acc_norm) / static_cast<double>(n.items) : 0.0;
    return s;
  };
  std::vector<eval::TaskScore> out = {score("", total)};
  for (const auto& [group, n] : groups) out.push_back(score(group, n));
  return out;
}

absl::StatusOr<std::vector<eval::TaskScore>> ScoreTask(TransformerImpl& model,
                                                       const LoopPlan& plan,
                                                       const Tokenizer& tokenizer,
                                                       const eval::Task& task,
                                                       const ScoreOptions& options,
                                                       ChoiceLogLikelihoods* detail) {
  const int64_t size = static_cast<int64_t>(task.items.size());
  const int64_t items = options.limit > 0 ? std::min(options.limit, size) : size;
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  absl::StatusOr<std::vector<std::vector<Sequence>>> seqs =
      Tokenize(task, items, tokenizer, model.config());
  if (!seqs.ok()) return seqs.status();

  torch::NoGradGuard no_grad;
  std::vector<std::vector<double>> logprob(items);
  std::vector<const Sequence*> whole;
  std::vector<double*> whole_out;
  for (int64_t i = 0; i < items; ++i) {
    logprob[i].assign((*seqs)[i].size(), 0.0);
    if (options.share_context && SharesContext((*seqs)[i]) &&
        static_cast<int64_t>((*seqs)[i].front().context.size()) >= options.min_shared_context) {
      ScoreShared(model, plan, (*seqs)[i], batch, &logprob[i]);
      continue;
    }
    for (size_t c = 0; c < (*seqs)[i].size(); ++c) {
      whole.push_back(&(*seqs)[i][c]);
      whole_out.push_back(&logprob[i][c]);
    }
  }
  std::vector<double> sums(whole.size());
  ScoreWhole(model, plan, whole, batch, &sums);
  for (size_t n = 0; n < whole.size(); ++n) *whole_out[n] = sums[n];

  if (detail != nullptr) detail->logprob = logprob;
  return Accuracies(task, items, logprob);
}

}  // namespace sgt
