// Multiple-choice scoring (libsgt/torch/eval.h) against an independent brute-force computation:
// one forward pass per context + choice, no batching, no shared context.
#include "libsgt/torch/eval.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "libsgt/core/eval_tasks.h"
#include "libsgt/text/tokenizer.h"
#include "libsgt/torch/model.h"

namespace sgt {
namespace {

namespace fs = std::filesystem;

// A small BPE tokenizer trained on a few sentences by sgt-data (built beside this test), as every
// run's tokenizer is: byte fallback, so no text encodes to <unk>.
const Tokenizer& TestTokenizer() {
  static const Tokenizer* tokenizer = [] {
    const fs::path dir = fs::temp_directory_path() / ("sgt_eval_test_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path text = dir / "corpus.txt";
    {
      std::ofstream out(text);
      const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "question", "answer",
                             "what", "is", "red", "blue", "green", "trophy", "suitcase",
                             "big", "small", "plus", "minus", "seven", "three", "ten"};
      for (int i = 0; i < 400; ++i) {
        for (int w = 0; w < 9; ++w) out << words[(i * 7 + w * 5 + i / 3) % 22] << ' ';
        out << i % 97 << ".\n";
      }
    }
    const fs::path bin = fs::read_symlink("/proc/self/exe").parent_path();
    const std::string command = "'" + (bin / "sgt-data").string() + "' prepare --input '" +
                                text.string() + "' --out '" + dir.string() +
                                "' --vocab 300 > '" + (dir / "prepare.log").string() + "' 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    absl::StatusOr<Tokenizer> t = Tokenizer::Load((dir / "tokenizer.model").string());
    EXPECT_TRUE(t.ok()) << t.status();
    return new Tokenizer(*t);
  }();
  return *tokenizer;
}

ModelConfig TinyModel() {
  ModelConfig m;
  m.layers = 3;
  m.d_model = 32;
  m.heads = 4;
  m.d_ff = 64;
  m.context = 24;
  m.vocab_size = 300;
  m.init_std = 0.2;  // spread-out logits, so that choices differ clearly
  return m;
}

eval::TaskItem Shared(const std::string& context, std::vector<std::string> choices, int64_t gold,
                      const std::string& group = "") {
  eval::TaskItem item;
  for (const std::string& c : choices) item.choices.push_back({context, c});
  item.gold = gold;
  item.group = group;
  return item;
}

// Items in the shapes the converters write: a shared context with groups (MMLU), single- and
// multi-token choices (ARC, HellaSwag), a context longer than the model's (cut from the left),
// and WinoGrande's different contexts with one continuation.
eval::Task MixedTask() {
  eval::Task t;
  t.name = "mixed";
  t.path = "mixed.jsonl";
  t.items.push_back(Shared("Question: what is seven plus three?\nAnswer:", {" ten", " 73", " 4"},
                           0, "stem"));
  t.items.push_back(Shared("The cat sat on", {" a mat", " the red trophy on a mat", " blue"}, 1,
                           "other"));
  t.items.push_back(Shared("What is red?", {" the mat", " a big green suitcase", " what"}, 2,
                           "stem"));
  std::string longer;
  for (int i = 0; i < 12; ++i) longer += "the cat sat on a mat and ";
  t.items.push_back(Shared(longer + "then", {" sat", " the small trophy", " is blue"}, 0));
  eval::TaskItem wino;
  wino.choices = {{"The trophy did not fit in the suitcase because the trophy", " was too big."},
                  {"The trophy did not fit in the suitcase because the suitcase", " was too big."}};
  wino.gold = 0;
  t.items.push_back(wino);
  wino.choices[0].context = "A cat sat on the mat so the mat";
  wino.choices[1].context = "A cat sat on the mat so the cat";
  wino.choices[0].continuation = wino.choices[1].continuation = " is red.";
  wino.gold = 1;
  t.items.push_back(wino);
  return t;
}

std::vector<int64_t> Encode(const std::string& text) {
  absl::StatusOr<std::vector<int64_t>> ids = TestTokenizer().Encode(text);
  EXPECT_TRUE(ids.ok());
  return *ids;
}

// The brute force: each choice on its own, end-of-text + context + continuation in one forward
// pass; the context cut from the left, alike for every choice of an item, so that the input
// (all but the last token) fits the model's context.
std::vector<std::vector<double>> BruteForce(Transformer& model, const LoopPlan& plan,
                                            const eval::Task& task) {
  torch::NoGradGuard no_grad;
  const int64_t context = model->config().context;
  std::vector<std::vector<double>> out;
  for (const eval::TaskItem& item : task.items) {
    size_t longest = 0;
    for (const eval::Choice& c : item.choices) longest = std::max(longest, Encode(c.continuation).size());
    std::vector<double> sums;
    for (const eval::Choice& c : item.choices) {
      std::vector<int64_t> ctx = {TestTokenizer().eos_id()};
      for (int64_t id : Encode(c.context)) ctx.push_back(id);
      const size_t keep = static_cast<size_t>(context) + 1 - longest;
      if (ctx.size() > keep) ctx.erase(ctx.begin(), ctx.end() - keep);
      std::vector<int64_t> cont = Encode(c.continuation);
      std::vector<int64_t> all = ctx;
      all.insert(all.end(), cont.begin(), cont.end());
      torch::Tensor input =
          torch::tensor(std::vector<int64_t>(all.begin(), all.end() - 1), torch::kLong).view({1, -1});
      EXPECT_LE(input.size(1), context);
      torch::Tensor logp = torch::log_softmax(model->forward(input, plan)[0].to(torch::kDouble), -1);
      double sum = 0;
      for (size_t j = 0; j < cont.size(); ++j) {
        sum += logp[static_cast<int64_t>(ctx.size() - 1 + j)][cont[j]].item<double>();
      }
      sums.push_back(sum);
    }
    out.push_back(sums);
  }
  return out;
}

struct Structure {
  std::string name;
  LoopPlan plan;
};

std::vector<Structure> Structures(int64_t layers) {
  std::vector<Structure> out;
  out.push_back({"vanilla", LoopPlan(layers)});
  for (int64_t k : {1, 2}) {
    LoopPlan sgt(layers);
    sgt[2].k = k;
    sgt[2].heads = torch::tensor(std::vector<int64_t>{1, 3}, torch::kLong);
    sgt[2].head_ids = {1, 3};
    sgt[1].k = 1;
    sgt[1].heads = torch::tensor(std::vector<int64_t>{0}, torch::kLong);
    sgt[1].head_ids = {0};
    out.push_back({"sgt k=" + std::to_string(k), sgt});
    LoopPlan block(layers);
    block[2].k = k;
    block[2].whole_block = true;
    out.push_back({"block_loop k=" + std::to_string(k), block});
  }
  return out;
}

TEST(EvalScoring, EqualsBruteForceForEveryShapeAndStructure) {
  torch::manual_seed(7);
  Transformer model(TinyModel());
  const eval::Task task = MixedTask();
  for (const Structure& s : Structures(model->config().layers)) {
    const std::vector<std::vector<double>> expected = BruteForce(model, s.plan, task);
    const std::vector<eval::TaskScore> expected_acc =
        Accuracies(task, static_cast<int64_t>(task.items.size()), expected);
    for (bool share : {true, false}) {
      for (int64_t batch : {1, 3, 16}) {
        SCOPED_TRACE(s.name + (share ? " shared" : " whole") + " batch " + std::to_string(batch));
        ChoiceLogLikelihoods detail;
        absl::StatusOr<std::vector<eval::TaskScore>> got =
            ScoreTask(*model, s.plan, TestTokenizer(), task, {batch, 0, share}, &detail);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_EQ(detail.logprob.size(), expected.size());
        for (size_t i = 0; i < expected.size(); ++i) {
          ASSERT_EQ(detail.logprob[i].size(), expected[i].size());
          for (size_t c = 0; c < expected[i].size(); ++c) {
            EXPECT_NEAR(detail.logprob[i][c], expected[i][c], 1e-4) << "item " << i << " choice " << c;
          }
        }
        ASSERT_EQ(got->size(), expected_acc.size());
        for (size_t g = 0; g < got->size(); ++g) {
          EXPECT_EQ((*got)[g].group, expected_acc[g].group);
          EXPECT_EQ((*got)[g].items, expected_acc[g].items);
          EXPECT_DOUBLE_EQ((*got)[g].acc, expected_acc[g].acc);
          EXPECT_DOUBLE_EQ((*got)[g].acc_norm, expected_acc[g].acc_norm);
        }
      }
    }
  }
}

TEST(EvalScoring, StructuresScoreDifferently) {
  // The loop passes take part: a looped structure's log-likelihoods are not vanilla's.
  torch::manual_seed(7);
  Transformer model(TinyModel());
  const eval::Task task = MixedTask();
  std::vector<Structure> s = Structures(model->config().layers);
  ChoiceLogLikelihoods a, b;
  ASSERT_TRUE(ScoreTask(*model, s[0].plan, TestTokenizer(), task, {}, &a).ok());
  ASSERT_TRUE(ScoreTask(*model, s[1].plan, TestTokenizer(), task, {}, &b).ok());
  EXPECT_GT(std::abs(a.logprob[0][0] - b.logprob[0][0]), 1e-4);
}

TEST(EvalScoring, LimitScoresTheFirstItems) {
  torch::manual_seed(7);
  Transformer model(TinyModel());
  const eval::Task task = MixedTask();
  ChoiceLogLikelihoods detail;
  absl::StatusOr<std::vector<eval::TaskScore>> got =
      ScoreTask(*model, LoopPlan(3), TestTokenizer(), task, {4, 2, true}, &detail);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(detail.logprob.size(), 2u);
  EXPECT_EQ((*got)[0].items, 2);
}

TEST(EvalAccuracies, CountsAccNormAndGroups) {
  eval::Task task;
  task.name = "t";
  task.items.push_back(Shared("c", {" a", " bbbbbbbb"}, 1, "x"));  // acc wrong, acc_norm right
  task.items.push_back(Shared("c", {" a", " b"}, 0, "y"));         // both right
  task.items.push_back(Shared("c", {" a", " b"}, 1, "x"));         // tie: the first wins
  const std::vector<std::vector<double>> lp = {{-2.0, -4.0}, {-1.0, -3.0}, {-1.0, -1.0}};
  std::vector<eval::TaskScore> s = Accuracies(task, 3, lp);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].group, "");
  EXPECT_EQ(s[0].items, 3);
  EXPECT_DOUBLE_EQ(s[0].acc, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s[0].acc_norm, 2.0 / 3);
  EXPECT_EQ(s[1].group, "x");
  EXPECT_EQ(s[1].items, 2);
  EXPECT_DOUBLE_EQ(s[1].acc, 0.0);
  EXPECT_DOUBLE_EQ(s[1].acc_norm, 0.5);
  EXPECT_EQ(s[2].group, "y");
  EXPECT_DOUBLE_EQ(s[2].acc, 1.0);
}

TEST(EvalScoring, RefusesItemsItCannotScore) {
  torch::manual_seed(7);
  Transformer model(TinyModel());
  eval::Task task;
  task.name = "bad";
  task.path = "bad.jsonl";
  task.items.push_back(Shared("The cat", {" sat", "  "}, 0));
  absl::StatusOr<std::vector<eval::TaskScore>> got =
      ScoreTask(*model, LoopPlan(3), TestTokenizer(), task, {});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("bad.jsonl, item 1"), std::string::npos)
      << got.status();
  EXPECT_NE(got.status().message().find("choice 1"), std::string::npos) << got.status();

  std::string longest;
  for (int i = 0; i < 40; ++i) longest += " cat";
  task.items[0] = Shared("The cat", {" sat", longest}, 0);
  got = ScoreTask(*model, LoopPlan(3), TestTokenizer(), task, {});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("longer than the model's context"), std::string::npos)
      << got.status();

  ModelConfig small = TinyModel();
  small.vocab_size = 100;  // the tokenizer's ids reach 299
  Transformer narrow(small);
  task.items[0] = Shared("Question: what is the green trophy?", {" blue", " red"}, 0);
  got = ScoreTask(*narrow, LoopPlan(3), TestTokenizer(), task, {});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("outside the model's vocabulary"), std::string::npos)
      << got.status();
}

}  // namespace
}  // namespace sgt
