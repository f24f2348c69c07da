// Task files (libsgt/core/eval_tasks.h): the reader's checks, the writer's atomicity, every
// converter on records written from its source's published layout, and the arithmetic task's
// determinism.
#include "libsgt/core/eval_tasks.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libsgt/core/sha256.h"

namespace sgt::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

class EvalTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/eval_tasks_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<std::string> Listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string dir_;
};

TaskItem Shared(const std::string& context, const std::vector<std::string>& continuations,
                int64_t gold, const std::string& id = "", const std::string& group = "") {
  TaskItem item;
  for (const std::string& c : continuations) item.choices.push_back(Choice{context, c});
  item.gold = gold;
  item.id = id;
  item.group = group;
  return item;
}

void ExpectItemEq(const TaskItem& got, const TaskItem& want) {
  ASSERT_EQ(got.choices.size(), want.choices.size());
  for (size_t i = 0; i < want.choices.size(); ++i) {
    EXPECT_EQ(got.choices[i].context, want.choices[i].context) << "choice " << i;
    EXPECT_EQ(got.choices[i].continuation, want.choices[i].continuation) << "choice " << i;
  }
  EXPECT_EQ(got.gold, want.gold);
  EXPECT_EQ(got.group, want.group);
  EXPECT_EQ(got.id, want.id);
}

// --- the task file ----------------------------------------------------------------------------

TEST_F(EvalTasksTest, ReadsBothShapesGroupAndId) {
  const std::string path = Write("arc_easy.jsonl",
                                 "{\"context\": \"Question: Sky?\\nAnswer:\", \"choices\": [\" "
                                 "red\", \" blue\"], \"gold\": 1, "
                                 "\"group\": \"stem\", \"id\": 7}\n"
                                 "{\"contexts\": [\"The trophy\", \"The case\"], \"continuation\": "
                                 "\" was big.\", \"gold\": 0, "
                                 "\"id\": \"w1\"}\n");
  absl::StatusOr<Task> task = ReadTaskFile(path);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->name, "arc_easy");
  EXPECT_EQ(task->path, path);
  ASSERT_EQ(task->items.size(), 2u);
  ExpectItemEq(task->items[0],
               Shared("Question: Sky?\nAnswer:", {" red", " blue"}, 1, "7", "stem"));
  TaskItem wino;
  wino.choices = {{"The trophy", " was big."}, {"The case", " was big."}};
  wino.id = "w1";
  ExpectItemEq(task->items[1], wino);
}

TEST_F(EvalTasksTest, RoundTripThroughJsonLines) {
  TaskItem wino;
  wino.choices = {{"He put \"it\" in the _", "\tend\n"}, {"She put it in the ünïcode", "\tend\n"}};
  wino.gold = 1;
  wino.id = "q-9";
  const std::vector<TaskItem> items = {
      Shared("ctx with \\ backslash\nand newline", {" a", " b", " c"}, 2, "", "humanities"), wino,
      Shared("same", {" x", " x"}, 0)};
  std::string text;
  for (const TaskItem& item : items) text += TaskItemJsonLine(item) + "\n";
  EXPECT_THAT(TaskItemJsonLine(items[0]), HasSubstr("\"context\""));
  EXPECT_THAT(TaskItemJsonLine(items[1]), HasSubstr("\"contexts\""));
  absl::StatusOr<Task> task = ReadTaskFile(Write("rt.jsonl", text));
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_EQ(task->items.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) ExpectItemEq(task->items[i], items[i]);
}

struct BadLine {
  std::string line;
  std::string field;    // expected in the message
  std::string problem;  // expected in the message
};

TEST_F(EvalTasksTest, RefusesBadLinesNamingFileLineAndField) {
  const std::string good = R"({"context": "c", "choices": [" a", " b"], "gold": 0})";
  const std::vector<BadLine> cases = {
      {R"({"context": "c", "choices": [" a", " b"], "gold": 0, "answer": 1})", "\"answer\"",
       "not a task file field"},
      {R"({"context": "c", "choices": [" a", " b"], "gold": 2})", "\"gold\"", "out of range"},
      {R"({"context": "c", "choices": [" a", " b"], "gold": -1})", "\"gold\"", "out of range"},
      {R"({"context": "c", "choices": [" a", " b"], "gold": 1.0})", "\"gold\"", "not an integer"},
      {R"({"context": "c", "choices": [" a", " b"]})", "\"gold\"", "is missing"},
      {R"({"context": "c", "choices": [" a"], "gold": 0})", "\"choices\"", "need 2 or more"},
      {R"({"context": "c", "choices": [" a", ""], "gold": 0})", "\"choices[1]\"", "is empty"},
      {R"({"context": "c", "choices": [" a", 3], "gold": 0})", "\"choices[1]\"", "not a string"},
      {R"({"context": "", "choices": [" a", " b"], "gold": 0})", "\"context\"", "is empty"},
      {R"({"choices": [" a", " b"], "gold": 0})", "\"context\"", "is missing"},
      {R"({"contexts": ["a", "b"], "gold": 0})", "\"continuation\"", "is missing"},
      {R"({"contexts": "ab", "continuation": " x", "gold": 0})", "\"contexts\"", "not an array"},
      {R"({"context": "c", "choices": [" a", " b"], "gold": 0, "group": 3})", "\"group\"",
       "not a string"},
      {R"({"context": "c", "choices": [" a", " b"], "gold": 0, "id": [1]})", "\"id\"",
       "not a string or integer"},
  };
  for (const BadLine& c : cases) {
    const std::string path = Write("bad.jsonl", good + "\n" + good + "\n" + c.line + "\n");
    absl::StatusOr<Task> task = ReadTaskFile(path);
    ASSERT_FALSE(task.ok()) << c.line;
    EXPECT_EQ(task.status().code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_THAT(task.status().message(),
                AllOf(HasSubstr(path + ":3:"), HasSubstr(c.field), HasSubstr(c.problem)))
        << c.line;
  }
}

TEST_F(EvalTasksTest, RefusesBothShapesMalformedJsonEmptyLinesAndEmptyFiles) {
  absl::StatusOr<Task> both = ReadTaskFile(
      Write("both.jsonl",
            R"({"context": "c", "choices": [" a", " b"], "contexts": ["x", "y"], "gold": 0})"));
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(both.status().message(),
              AllOf(HasSubstr("both.jsonl:1:"), HasSubstr("mixes the two item shapes"),
                    HasSubstr("write either")));

  absl::StatusOr<Task> malformed = ReadTaskFile(Write(
      "malformed.jsonl", "{\"context\": \"c\", \"choices\": [\" a\", \" b\"], \"gold\": 0\n"));
  ASSERT_FALSE(malformed.ok());
  EXPECT_THAT(malformed.status().message(),
              AllOf(HasSubstr("malformed.jsonl:1:"), HasSubstr("malformed JSON")));

  absl::StatusOr<Task> not_object = ReadTaskFile(Write("arr.jsonl", "[1, 2]\n"));
  ASSERT_FALSE(not_object.ok());
  EXPECT_THAT(not_object.status().message(), HasSubstr("not a JSON object"));

  const std::string good = R"({"context": "c", "choices": [" a", " b"], "gold": 0})";
  absl::StatusOr<Task> blank = ReadTaskFile(Write("blank.jsonl", good + "\n\n" + good + "\n"));
  ASSERT_FALSE(blank.ok());
  EXPECT_THAT(blank.status().message(), HasSubstr("blank.jsonl:2: the line is empty"));

  absl::StatusOr<Task> empty = ReadTaskFile(Write("empty.jsonl", ""));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("empty"));

  fs::create_directory(dir_ + "/adir.jsonl");
  absl::StatusOr<Task> directory = ReadTaskFile(dir_ + "/adir.jsonl");
  ASSERT_FALSE(directory.ok());
  EXPECT_THAT(directory.status().message(), HasSubstr("adir.jsonl: is a directory"));

  absl::StatusOr<Task> missing = ReadTaskFile(dir_ + "/nope.jsonl");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.jsonl"));
}

TEST_F(EvalTasksTest, WriteTaskFileWritesReadableFileAndNothingElse) {
  const std::string path = dir_ + "/t.jsonl";
  const std::vector<TaskItem> items = {Shared("c", {" a", " b"}, 1)};
  ASSERT_TRUE(WriteTaskFile(path, items).ok());
  EXPECT_EQ(Read(path), TaskItemJsonLine(items[0]) + "\n");
  EXPECT_EQ(Listing(), std::vector<std::string>{"t.jsonl"});
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(EvalTasksTest, WriteTaskFileLeavesOldFileOrNothingOnError) {
  const std::string path = Write("old.jsonl", "old content\n");
  // An item no shape can hold, one with gold out of range, too few choices, and no items.
  TaskItem mixed;
  mixed.choices = {{"a", " x"}, {"b", " y"}};
  TaskItem bad_gold = Shared("c", {" a", " b"}, 5);
  TaskItem one_choice = Shared("c", {" a"}, 0);
  TaskItem empty_continuation = Shared("c", {" a", ""}, 0);
  for (const std::vector<TaskItem>& items :
       {std::vector<TaskItem>{Shared("c", {" a", " b"}, 0), mixed},
        {bad_gold},
        {one_choice},
        {empty_continuation},
        {}}) {
    absl::Status s = WriteTaskFile(path, items);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.message(), HasSubstr(path));
    EXPECT_EQ(Read(path), "old content\n");
    EXPECT_EQ(Listing(), std::vector<std::string>{"old.jsonl"});
  }
  // A failing rename (the target is a directory) removes its temporary file.
  fs::create_directory(dir_ + "/adir");
  absl::Status s = WriteTaskFile(dir_ + "/adir", {Shared("c", {" a", " b"}, 0)});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Listing(), (std::vector<std::string>{"adir", "old.jsonl"}));
  EXPECT_TRUE(fs::is_empty(dir_ + "/adir"));
  // A directory that does not exist: nothing is created.
  ASSERT_FALSE(WriteTaskFile(dir_ + "/no/such/dir/t.jsonl", {Shared("c", {" a", " b"}, 0)}).ok());
  EXPECT_EQ(Listing(), (std::vector<std::string>{"adir", "old.jsonl"}));
}

TEST(EvalTasksSourceFormatTest, NamesRoundTripAndUnknownNameListsKnownOnes) {
  for (SourceFormat f :
       {SourceFormat::kArc, SourceFormat::kOpenBookQa, SourceFormat::kCommonsenseQa,
        SourceFormat::kHellaSwag, SourceFormat::kWinoGrande, SourceFormat::kSocialIqa,
        SourceFormat::kMmlu}) {
    absl::StatusOr<SourceFormat> back = SourceFormatFromName(SourceFormatName(f));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, f);
  }
  absl::StatusOr<SourceFormat> bad = SourceFormatFromName("arc-easy");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), AllOf(HasSubstr("arc-easy"), HasSubstr("hellaswag")));
}

// --- converters -------------------------------------------------------------------------------

// Runs ConvertTask and expects `want`.
void ExpectConverts(SourceFormat format, const std::vector<std::string>& inputs,
                    const std::string& labels, const std::vector<TaskItem>& want) {
  absl::StatusOr<std::vector<TaskItem>> got = ConvertTask(format, inputs, labels);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("item ", i));
    ExpectItemEq((*got)[i], want[i]);
  }
}

// Runs ConvertTask and expects an InvalidArgument naming every one of `parts`.
void ExpectFails(SourceFormat format, const std::vector<std::string>& inputs,
                 const std::string& labels, const std::vector<std::string>& parts) {
  absl::StatusOr<std::vector<TaskItem>> got = ConvertTask(format, inputs, labels);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
  for (const std::string& p : parts) EXPECT_THAT(got.status().message(), HasSubstr(p));
}

TEST_F(EvalTasksTest, ArcBothLayoutsAndNumericLabels) {
  const std::string ai2 = Write(
      "ARC-Easy-Dev.jsonl",
      R"({"id": "Mercury_7", "question": {"stem": "Which gas do plants take in?", "choices": [{"text": "oxygen", "label": "A"}, {"text": "carbon dioxide", "label": "B"}, {"text": "helium", "label": "C"}]}, "answerKey": "B"})"
      "\n\n"  // a blank line between records is skipped
      R"({"id": "NYSEDREGENTS_2015_4_1", "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "1"}, {"text": "cold", "label": "2"}, {"text": "dark", "label": "3"}, {"text": "wind", "label": "4"}]}, "answerKey": "1"})"
      "\n");
  const std::string hf = Write(
      "arc_hf.jsonl",
      R"({"id": "x-1", "question": "Which is a liquid at room temperature?", "choices": {"text": ["iron", "water", "salt", "sand", "wood"], "label": ["A", "B", "C", "D", "E"]}, "answerKey": "B"})"
      "\n");
  ExpectConverts(SourceFormat::kArc, {ai2, hf}, "",
                 {Shared("Question: Which gas do plants take in?\nAnswer:",
                         {" oxygen", " carbon dioxide", " helium"}, 1, "Mercury_7"),
                  Shared("Question: What melts ice?\nAnswer:", {" heat", " cold", " dark", " wind"},
                         0, "NYSEDREGENTS_2015_4_1"),
                  Shared("Question: Which is a liquid at room temperature?\nAnswer:",
                         {" iron", " water", " salt", " sand", " wood"}, 1, "x-1")});
}

TEST_F(EvalTasksTest, ArcErrorsNameFileLineAndField) {
  const std::string good =
      R"({"id": "a", "question": {"stem": "Q?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "A"})";
  struct Case {
    std::string line;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {R"({"id": "a", "question": {"stem": "Q?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "E"})",
       {"field \"answerKey\"", "\"E\"", "none of the choices' labels (A, B)"}},
      {R"({"id": "a", "question": {"stem": "Q?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}})",
       {"field \"answerKey\" is missing", "validation split"}},
      {R"({"id": "a", "question": {"choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "A"})",
       {"field \"question.stem\" is missing"}},
      {R"({"id": "a", "question": {"stem": "Q?", "choices": [{"text": 5, "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "A"})",
       {"field \"question.choices[0].text\"", "not a string"}},
      {R"({"id": "a", "question": {"stem": "Q?", "choices": [{"text": "x", "label": "A"}]}, "answerKey": "A"})",
       {"field \"question.choices\"", "need 2 or more"}},
      {R"({"question": "Q?", "choices": {"text": ["x", "y"], "label": ["A"]}, "answerKey": "A"})",
       {"field \"choices.label\"", "has 1 entries"}},
      {R"({"id": "a", "question": {"stem": "Q?", )", {"malformed JSON"}},
  };
  for (const Case& c : cases) {
    const std::string path = Write("arc.jsonl", good + "\n" + c.line + "\n");
    std::vector<std::string> parts = c.parts;
    parts.push_back(path + ":2:");
    SCOPED_TRACE(c.line);
    ExpectFails(SourceFormat::kArc, {path}, "", parts);
  }
  ExpectFails(SourceFormat::kArc, {Write("empty.jsonl", "\n")}, "", {"empty.jsonl", "no records"});
  ExpectFails(SourceFormat::kArc, {Write("ok.jsonl", good + "\n")}, Write("l.lst", "1\n"),
              {"only read for siqa"});
  absl::StatusOr<std::vector<TaskItem>> missing =
      ConvertTask(SourceFormat::kArc, {dir_ + "/missing.jsonl"}, "");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.jsonl"));
}

TEST_F(EvalTasksTest, OpenBookQaBothLayoutsUseTheBareStem) {
  const std::string ai2 = Write(
      "dev.jsonl",
      R"({"id": "7-980", "question": {"stem": "The sun is responsible for", "choices": [{"text": "puppies learning new tricks", "label": "A"}, {"text": "children growing up and getting old", "label": "B"}, {"text": "flowers wilting in a vase", "label": "C"}, {"text": "plants sprouting, blooming and wilting", "label": "D"}]}, "answerKey": "D"})"
      "\n");
  const std::string hf = Write(
      "obqa_hf.jsonl",
      R"({"id": "8-376", "question_stem": "Frilled sharks live far beneath the surface, so they are known as", "choices": {"text": ["Deep sea animals", "fish", "Long Sea Fish", "Far Sea Animals"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"})"
      "\n");
  ExpectConverts(
      SourceFormat::kOpenBookQa, {ai2, hf}, "",
      {Shared("The sun is responsible for",
              {" puppies learning new tricks", " children growing up and getting old",
               " flowers wilting in a vase", " plants sprouting, blooming and wilting"},
              3, "7-980"),
       Shared("Frilled sharks live far beneath the surface, so they are known as",
              {" Deep sea animals", " fish", " Long Sea Fish", " Far Sea Animals"}, 0, "8-376")});
  ExpectFails(SourceFormat::kOpenBookQa,
              {Write("obqa_bad.jsonl",
                     R"({"choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"})"
                     "\n")},
              "", {"obqa_bad.jsonl:1:", "field \"question\" is missing", "question_stem"});
}

TEST_F(EvalTasksTest, CommonsenseQa) {
  const std::string path = Write(
      "dev_rand_split.jsonl",
      R"({"answerKey": "A", "id": "075e483d", "question": {"question_concept": "punishing", "choices": [{"label": "A", "text": "ignore"}, {"label": "B", "text": "enforce"}, {"label": "C", "text": "authoritarian"}, {"label": "D", "text": "yell at"}, {"label": "E", "text": "avoid"}], "stem": "The sanctions against the school seemed to what the efforts the school had made?"}})"
      "\n"
      R"({"id": "h1", "question": "Where would you put a plate after washing it?", "question_concept": "plate", "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["cupboard", "table", "floor", "oven", "car"]}, "answerKey": "A"})"
      "\n");
  ExpectConverts(
      SourceFormat::kCommonsenseQa, {path}, "",
      {Shared("Question: The sanctions against the school seemed to what the efforts the school "
              "had made?\nAnswer:",
              {" ignore", " enforce", " authoritarian", " yell at", " avoid"}, 0, "075e483d"),
       Shared("Question: Where would you put a plate after washing it?\nAnswer:",
              {" cupboard", " table", " floor", " oven", " car"}, 0, "h1")});
  // The test split has no answerKey.
  const std::string test = Write(
      "test_rand_split_no_answers.jsonl",
      R"({"id": "t", "question": {"stem": "S?", "choices": [{"label": "A", "text": "a"}, {"label": "B", "text": "b"}]}})"
      "\n");
  ExpectFails(SourceFormat::kCommonsenseQa, {test}, "",
              {"test_rand_split_no_answers.jsonl:1:", "\"answerKey\" is missing"});
}

TEST_F(EvalTasksTest, HellaSwagPromptAndWikiHowCleanup) {
  const std::string path = Write(
      "hellaswag_val.jsonl",
      R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY"})"
      "\n"
      R"({"ind": 92, "activity_label": "Personal Care and Style", "ctx_a": "[header] How to dye your hair [title] Pick a color.", "ctx_b": "", "ctx": "", "split": "val", "split_type": "zeroshot", "label": "1", "endings": ["[step] Choose a  shade [substeps] that suits you.", "Mix the dye [title] Wear gloves.", "Rinse.", "Wait an hour."], "source_id": "wikihow~1"})"
      "\n"
      R"({"ind": 5, "activity_label": "Bowling", "ctx_a": "Two men bowl.", "ctx_b": "then The Winner", "label": 0, "endings": ["cheers.", "sits."]})"
      "\n");
  ExpectConverts(
      SourceFormat::kHellaSwag, {path}, "",
      {Shared("Roof shingle removal: A man is sitting on a roof. He",
              {" is using wrap to wrap a pair of skis.", " is ripping level tiles off.",
               " is holding a rubik's cube.", " starts pulling up roofing on a roof."},
              3, "24"),
       Shared("Personal Care and Style: How to dye your hair. Pick a color.",
              {" Choose a shade that suits you.", " Mix the dye. Wear gloves.", " Rinse.",
               " Wait an hour."},
              1, "92"),
       // ctx_b: its first letter upper-cased, the rest lower-cased.
       Shared("Bowling: Two men bowl. Then the winner", {" cheers.", " sits."}, 0, "5")});
  const std::string base =
      R"("activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": ["a", "b", "c", "d"])";
  ExpectFails(SourceFormat::kHellaSwag, {Write("h1.jsonl", "{" + base + ", \"label\": 4}\n")}, "",
              {"h1.jsonl:1:", "field \"label\"", "out of range for 4 endings"});
  ExpectFails(SourceFormat::kHellaSwag, {Write("h2.jsonl", "{" + base + ", \"label\": \"\"}\n")},
              "", {"h2.jsonl:1:", "field \"label\" is empty", "test split"});
  ExpectFails(SourceFormat::kHellaSwag, {Write("h3.jsonl", "{" + base + "}\n")}, "",
              {"h3.jsonl:1:", "field \"label\" is missing"});
  ExpectFails(
      SourceFormat::kHellaSwag,
      {Write(
          "h4.jsonl",
          R"({"activity_label": "A", "ctx_a": "x.", "ctx_b": "y", "endings": "abcd", "label": 0})"
          "\n")},
      "", {"h4.jsonl:1:", "field \"endings\"", "not an array"});
  ExpectFails(SourceFormat::kHellaSwag, {Write("h5.jsonl", "{" + base + ", \"label\": true}\n")},
              "", {"h5.jsonl:1:", "field \"label\"", "a boolean, not a number"});
}

TEST_F(EvalTasksTest, WinoGrandePartialScoring) {
  const std::string path = Write(
      "dev.jsonl",
      R"({"qID": "3QHITW7OYO7Q6B6ISU2UMJB84BLAQE-2", "sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.", "option1": "Sarah", "option2": "Maria", "answer": "1"})"
      "\n"
      R"({"qID": "q2", "sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.", "option1": "trophy", "option2": "suitcase", "answer": 1})"
      "\n"
      R"({"qID": "q3", "sentence": "Ian wanted the _,", "option1": "cake", "option2": "pie", "answer": "2"})"
      "\n");
  TaskItem a, b, c;
  a.choices = {
      {"Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."},
      {"Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."}};
  a.gold = 0;
  a.id = "3QHITW7OYO7Q6B6ISU2UMJB84BLAQE-2";
  b.choices = {
      {"The trophy doesn't fit into the brown suitcase because the trophy", " is too large."},
      {"The trophy doesn't fit into the brown suitcase because the suitcase", " is too large."}};
  b.gold = 0;
  b.id = "q2";
  c.choices = {{"Ian wanted the cake", ","}, {"Ian wanted the pie", ","}};
  c.gold = 1;
  c.id = "q3";
  ExpectConverts(SourceFormat::kWinoGrande, {path}, "", {a, b, c});
  // The items are in the second shape and survive the file.
  absl::StatusOr<std::vector<TaskItem>> items = ConvertTask(SourceFormat::kWinoGrande, {path}, "");
  ASSERT_TRUE(items.ok());
  EXPECT_THAT(TaskItemJsonLine((*items)[0]), HasSubstr("\"continuation\":\" always got"));

  const std::string ok =
      R"({"qID": "o", "sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"})";
  ExpectFails(
      SourceFormat::kWinoGrande,
      {Write(
          "w1.jsonl",
          ok + "\n" +
              R"({"qID": "n", "sentence": "No blank here.", "option1": "x", "option2": "y", "answer": "1"})" +
              "\n")},
      "", {"w1.jsonl:2:", "field \"sentence\"", "has 0 \"_\" blanks, need exactly 1"});
  ExpectFails(
      SourceFormat::kWinoGrande,
      {Write("w2.jsonl",
             R"({"sentence": "A _ and _ b.", "option1": "x", "option2": "y", "answer": "1"})"
             "\n")},
      "", {"w2.jsonl:1:", "field \"sentence\"", "has 2"});
  ExpectFails(
      SourceFormat::kWinoGrande,
      {Write("w3.jsonl", R"({"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "3"})"
                         "\n")},
      "", {"w3.jsonl:1:", "field \"answer\"", "not 1 or 2"});
  ExpectFails(SourceFormat::kWinoGrande,
              {Write("w4.jsonl", R"({"sentence": "A _ b.", "option1": "x", "answer": "1"})"
                                 "\n")},
              "", {"w4.jsonl:1:", "field \"option2\" is missing"});
  ExpectFails(
      SourceFormat::kWinoGrande,
      {Write("w5.jsonl", R"({"sentence": "A b _", "option1": "x", "option2": "y", "answer": "1"})"
                         "\n")},
      "", {"w5.jsonl:1:", "field \"sentence\"", "no text to score"});
}

TEST_F(EvalTasksTest, SocialIqaLabelsInRecordsOrInALabelsFile) {
  const std::string r1 =
      R"({"context": "Tracy didn't go home that evening and resisted Riley's attacks.", "question": "What does Tracy need to do before this?", "answerA": "make a new plan", "answerB": "Go home and see Riley", "answerC": "Find somewhere to go"})";
  const std::string r2 =
      R"({"context": "Sydney walked past a homeless woman.", "question": "How would you describe Sydney?", "answerA": "sympathetic", "answerB": "like a person", "answerC": "indifferent"})";
  const TaskItem want1 = Shared(
      "Q: Tracy didn't go home that evening and resisted Riley's attacks. What does Tracy need "
      "to do before this?\nA:",
      {" make a new plan", " Go home and see Riley", " Find somewhere to go"}, 2);
  const TaskItem want2 =
      Shared("Q: Sydney walked past a homeless woman. How would you describe Sydney?\nA:",
             {" sympathetic", " like a person", " indifferent"}, 0);
  const std::string records = Write("dev.jsonl", r1 + "\n" + r2 + "\n");
  ExpectConverts(SourceFormat::kSocialIqa, {records}, Write("dev-labels.lst", "3\n1\n"),
                 {want1, want2});
  // The Hugging Face layout carries "label" as a string.
  const std::string hf =
      Write("siqa_hf.jsonl", r1.substr(0, r1.size() - 1) + ", \"label\": \"3\"}\n" +
                                 r2.substr(0, r2.size() - 1) + ", \"label\": \"1\"}\n");
  ExpectConverts(SourceFormat::kSocialIqa, {hf}, "", {want1, want2});

  const std::string short_labels = Write("short-labels.lst", "3\n");
  ExpectFails(SourceFormat::kSocialIqa, {records}, short_labels,
              {"short-labels.lst", "has 1 labels", "dev.jsonl", "number 2"});
  ExpectFails(SourceFormat::kSocialIqa, {records}, Write("bad-labels.lst", "3\nx\n"),
              {"bad-labels.lst:2:", "\"x\"", "1, 2 or 3"});
  ExpectFails(SourceFormat::kSocialIqa, {records}, "",
              {"dev.jsonl:1:", "field \"label\" is missing", "--labels"});
  ExpectFails(SourceFormat::kSocialIqa, {hf}, Write("other-labels.lst", "3\n2\n"),
              {"siqa_hf.jsonl:2:", "field \"label\"", "other-labels.lst", "says 2"});
  ExpectFails(
      SourceFormat::kSocialIqa,
      {Write("s5.jsonl",
             R"({"context": "c", "question": "q", "answerA": "a", "answerB": "b", "label": "1"})"
             "\n")},
      "", {"s5.jsonl:1:", "field \"answerC\" is missing"});
  ExpectFails(
      SourceFormat::kSocialIqa,
      {Write(
          "s6.jsonl",
          R"({"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", "label": "4"})"
          "\n")},
      "", {"s6.jsonl:1:", "field \"label\"", "not 1, 2 or 3"});
}

TEST_F(EvalTasksTest, MmluCsvWithQuotingAndCategories) {
  const std::string algebra = Write(
      "abstract_algebra_test.csv",
      "Find the degree of the extension Q(sqrt(2)) over Q.,0,2,4,6,C\n"
      "\"Which, if any, is \"\"a group\"\"?\",\"Z under +\",none,\"N\nunder +\",\"both\",A\r\n");
  const std::string law = Write("international_law_dev.csv", "  Is it legal?  ,yes,no,maybe,,B");
  const std::string header =
      "The following are multiple choice questions (with answers) about abstract algebra.\n\n";
  const std::vector<std::string> letters = {" A", " B", " C", " D"};
  ExpectConverts(
      SourceFormat::kMmlu, {algebra, law}, "",
      {Shared(header + "Find the degree of the extension Q(sqrt(2)) over Q.\nA. 0\nB. 2\nC. 4\nD. "
                       "6\nAnswer:",
              letters, 2, "", "stem"),
       Shared(header + "Which, if any, is \"a group\"?\nA. Z under +\nB. none\nC. N\nunder +\nD. "
                       "both\nAnswer:",
              letters, 0, "", "stem"),
       Shared("The following are multiple choice questions (with answers) about international "
              "law.\n\nIs it legal?\nA. yes\nB. no\nC. maybe\nD. \nAnswer:",
              letters, 1, "", "humanities")});
}

TEST_F(EvalTasksTest, MmluCategoriesOfSomeSubjects) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"high_school_government_and_politics", "social_sciences"},
      {"professional_accounting", "other"},
      {"world_religions", "humanities"},
      {"machine_learning", "stem"},
      {"virology", "other"},
      {"econometrics", "social_sciences"}};
  for (const auto& [subject, category] : cases) {
    absl::StatusOr<std::vector<TaskItem>> items =
        ConvertTask(SourceFormat::kMmlu, {Write(subject + "_val.csv", "q,a,b,c,d,D\n")}, "");
    ASSERT_TRUE(items.ok()) << items.status();
    ASSERT_EQ(items->size(), 1u);
    EXPECT_EQ((*items)[0].group, category) << subject;
    EXPECT_EQ((*items)[0].gold, 3);
  }
}

TEST_F(EvalTasksTest, MmluHuggingFaceJsonl) {
  const std::string path = Write(
      "mmlu_all_test.jsonl",
      R"({"question": "What is the largest planet?", "subject": "astronomy", "choices": ["Mars", "Jupiter", "Venus", "Earth"], "answer": 1})"
      "\n"
      R"({"question": "Who wrote the Republic?", "subject": "philosophy", "choices": ["Plato", "Kant", "Hume", "Locke"], "answer": 0})"
      "\n");
  ExpectConverts(SourceFormat::kMmlu, {path}, "",
                 {Shared("The following are multiple choice questions (with answers) about "
                         "astronomy.\n\nWhat is the largest planet?\nA. Mars\nB. Jupiter\nC. "
                         "Venus\nD. Earth\nAnswer:",
                         {" A", " B", " C", " D"}, 1, "", "stem"),
                  Shared("The following are multiple choice questions (with answers) about "
                         "philosophy.\n\nWho wrote the Republic?\nA. Plato\nB. Kant\nC. Hume\nD. "
                         "Locke\nAnswer:",
                         {" A", " B", " C", " D"}, 0, "", "humanities")});
  ExpectFails(
      SourceFormat::kMmlu,
      {Write(
          "m1.jsonl",
          R"({"question": "q", "subject": "astronomy", "choices": ["a", "b", "c", "d"], "answer": 4})"
          "\n")},
      "", {"m1.jsonl:1:", "field \"answer\"", "out of range 0 to 3"});
  ExpectFails(
      SourceFormat::kMmlu,
      {Write("m2.jsonl",
             R"({"question": "q", "subject": "astronomy", "choices": ["a", "b", "c"], "answer": 0})"
             "\n")},
      "", {"m2.jsonl:1:", "field \"choices\"", "need 4"});
  ExpectFails(
      SourceFormat::kMmlu,
      {Write(
          "m3.jsonl",
          R"({"question": "q", "subject": "astronomyy", "choices": ["a", "b", "c", "d"], "answer": 0})"
          "\n")},
      "",
      {"m3.jsonl:1:", "\"subject\"", "astronomyy", "did you mean \"astronomy\"",
       "world_religions"});
}

TEST_F(EvalTasksTest, MmluCsvErrorsNameFileRecordAndField) {
  struct Case {
    std::string name;
    std::string text;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {"anatomy_test.csv",
       "q,a,b,c,d,A\n\"open,a,b,c,d,A\n",
       {"record 2 (line 2)", "field \"question\"", "never closed", "double each quote"}},
      {"anatomy_test.csv",
       "q,a,b,c,d,A\nq,\"x\"y,b,c,d,A\n",
       {"record 2 (line 2)", "field \"A\"", "text after its closing quote"}},
      {"anatomy_test.csv",
       "q,a,b,c,d,A\nq,a\"b,b,c,d,A\n",
       {"record 2 (line 2)", "field \"A\"", "quote inside an unquoted field"}},
      {"anatomy_test.csv",
       "\"multi\nline\",a,b,c,d,A\nq,a,b,c,d,E\n",
       {"record 2 (line 3)", "field \"answer\"", "\"E\"", "one of A, B, C, D"}},
      {"anatomy_test.csv",
       "q,a,b,c,d,A\nq,a,b,c,A\n",
       {"record 2 (line 2)", "has 5 fields, need 6"}},
      {"anatomy_test.csv",
       "q,a,b,c,d,A\n,a,b,c,d,A\n",
       {"record 2 (line 2)", "field \"question\" is empty"}},
      {"anatomy_test.csv", "", {"no records"}},
      {"anatomy_test.csv", "q,a,b,\xff,d,A\n", {"record 1 (line 1)", "field \"C\"", "UTF-8"}},
      {"anatomy.csv", "q,a,b,c,d,A\n", {"{subject}_test.csv", "rename it"}},
      {"astrology_test.csv",
       "q,a,b,c,d,A\n",
       {"astrology_test.csv: file name", "\"astrology\" is not one of MMLU's 57 subjects",
        "did you mean \"astronomy\"", "abstract_algebra", "world_religions"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + ": " + c.text);
    const std::string path = Write(c.name, c.text);
    std::vector<std::string> parts = c.parts;
    parts.push_back(path);
    ExpectFails(SourceFormat::kMmlu, {path}, "", parts);
    fs::remove(path);
  }
}

// --- the arithmetic task ------------------------------------------------------------------------

std::string TaskBytes(int64_t items, uint64_t seed) {
  std::string text;
  for (const TaskItem& item : ArithmeticTask(items, seed)) text += TaskItemJsonLine(item) + "\n";
  return text;
}

// The value of "Question: What is A OP B?\nAnswer:".
int64_t Solve(const std::string& context) {
  std::istringstream in(context.substr(std::string("Question: What is ").size()));
  int64_t a = 0, b = 0;
  std::string op;
  in >> a >> op >> b;
  if (op == "plus") return a + b;
  if (op == "minus") return a - b;
  if (op == "times") return a * b;
  ADD_FAILURE() << "unknown operation in " << context;
  return -1;
}

TEST(EvalTasksArithmeticTest, DeterministicBySeed) {
  EXPECT_EQ(TaskBytes(200, 7), TaskBytes(200, 7));
  EXPECT_NE(TaskBytes(200, 7), TaskBytes(200, 8));
  // A longer task starts with the shorter one.
  EXPECT_EQ(TaskBytes(300, 7).substr(0, TaskBytes(200, 7).size()), TaskBytes(200, 7));
  EXPECT_TRUE(ArithmeticTask(0, 1).empty());
}

TEST(EvalTasksArithmeticTest, GoldIsTheAnswerAndChoicesAreDistinctNumbers) {
  std::set<std::string> groups;
  std::vector<int64_t> gold_positions(4, 0);
  const std::vector<TaskItem> items = ArithmeticTask(2000, 3);
  ASSERT_EQ(items.size(), 2000u);
  for (const TaskItem& item : items) {
    ASSERT_EQ(item.choices.size(), 4u);
    ASSERT_TRUE(CheckTaskItem(item).ok());
    const std::string& context = item.choices[0].context;
    ASSERT_EQ(context.rfind("Question: What is ", 0), 0u) << context;
    ASSERT_EQ(context.substr(context.size() - 9), "?\nAnswer:");
    const int64_t answer = Solve(context);
    EXPECT_GE(answer, 0) << context;
    std::set<int64_t> values;
    for (const Choice& c : item.choices) {
      EXPECT_EQ(c.context, context);
      ASSERT_EQ(c.continuation[0], ' ');
      int64_t v = -1;
      ASSERT_TRUE(absl::SimpleAtoi(c.continuation.substr(1), &v)) << c.continuation;
      EXPECT_GE(v, 0);
      values.insert(v);
    }
    EXPECT_EQ(values.size(), 4u) << TaskItemJsonLine(item);
    EXPECT_EQ(item.choices[item.gold].continuation, absl::StrCat(" ", answer))
        << TaskItemJsonLine(item);
    ++gold_positions[item.gold];
    groups.insert(item.group);
  }
  EXPECT_EQ(groups, (std::set<std::string>{"addition", "subtraction", "multiplication"}));
  // The gold position is spread over all four (each near 500 of 2000).
  for (int64_t n : gold_positions) {
    EXPECT_GT(n, 400);
    EXPECT_LT(n, 600);
  }
}

// Pins the generator's output across machines and standard libraries: recompute only when the
// task is changed on purpose (and say so in docs/evaluation.md).
TEST(EvalTasksArithmeticTest, PinnedBytesForFiftyItemsSeedOne) {
  const std::string text = TaskBytes(50, 1);
  EXPECT_EQ(Sha256Hex(text.data(), text.size()),
            "eb1873873502406c69a7fe7892aba5cc2a02a1bb226201028180aaed92ebdd26");
}

}  // namespace
}  // namespace sgt::eval
