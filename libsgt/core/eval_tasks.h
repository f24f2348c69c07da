// Zero-shot multiple-choice tasks (docs/evaluation.md): the task file format, its one reader and
// one writer, the converters from the layouts the paper's datasets are distributed in, and the
// generated arithmetic task. Torch-free: `sgt-data task ...` writes files, the scorer reads them.
//
// A task file is JSONL, one item per line, in one of two shapes:
//   {"context": "Question: ...\nAnswer:", "choices": [" red", " blue"], "gold": 1}
//       every choice is a continuation of the one context (ARC, HellaSwag, MMLU, ...)
//   {"contexts": ["... the trophy", "... the suitcase"], "continuation": " was too big.", "gold": 0}
//       one continuation after each of several contexts (WinoGrande's partial scoring)
// with optional "group" (a string: MMLU's category) and "id" (a string or number, kept for
// reference). Scoring sums the log-likelihood of the continuation's tokens given the context's.
//
//   absl::StatusOr<Task> task = ReadTaskFile("tasks/arc_easy.jsonl");
#ifndef SGT_CORE_EVAL_TASKS_H_
#define SGT_CORE_EVAL_TASKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sgt::eval {

// One option of an item: `continuation` is scored as the text that follows `context`.
struct Choice {
  std::string context;
  std::string continuation;
};

struct TaskItem {
  std::vector<Choice> choices;  // at least 2
  int64_t gold = 0;             // index into choices
  std::string group;            // "" or a sub-group the task also reports (MMLU's categories)
  std::string id;               // "" or the source's id, as text
};

struct Task {
  std::string name;  // the file's stem ("arc_easy" for tasks/arc_easy.jsonl)
  std::string path;
  std::vector<TaskItem> items;
};

// A task's result: over all its items (group ""), or over one group's items. `items` counts the
// items scored; acc is the fraction whose gold choice has the highest summed log-likelihood, and
// acc_norm the same with each sum divided by the length of the choice's scored text in bytes.
struct TaskScore {
  std::string task;
  std::string group;
  int64_t items = 0;
  double acc = 0;
  double acc_norm = 0;
};

// Reads a task file. Errors (InvalidArgument; NotFound for a missing file) name the file, the
// line and the field, and say what to write instead. An empty file is an error.
absl::StatusOr<Task> ReadTaskFile(const std::string& path);

// Checks what WriteTaskFile and ReadTaskFile require of an item: 2 or more choices, gold in range,
// no empty context or continuation, valid UTF-8, and choices that share their context or their
// continuation (the two shapes). The message says what is wrong, without a file name.
absl::Status CheckTaskItem(const TaskItem& item);

// One line of a task file (without its newline), in the first shape when every choice shares the
// context, else the second. ReadTaskFile reads it back equal.
std::string TaskItemJsonLine(const TaskItem& item);

// Writes `items` to `path` atomically (a temporary file renamed into place): on any error nothing
// is left at `path`, and an existing file there is untouched.
absl::Status WriteTaskFile(const std::string& path, const std::vector<TaskItem>& items);

// The source layouts `sgt-data task convert --format NAME` reads (docs/evaluation.md).
enum class SourceFormat { kArc, kOpenBookQa, kCommonsenseQa, kHellaSwag, kWinoGrande, kSocialIqa,
                          kMmlu };
const char* SourceFormatName(SourceFormat f);  // "arc", "openbookqa", "csqa", "hellaswag", ...
absl::StatusOr<SourceFormat> SourceFormatFromName(const std::string& name);

// Converts the source files `inputs` (one or more, read in order; MMLU: its per-subject CSV files,
// the subject read from each file's name) of `format` into items. `labels`: SocialIQA's separate
// labels file when its records carry no label ("" otherwise). Errors name the file, the line
// (record) and the field.
absl::StatusOr<std::vector<TaskItem>> ConvertTask(SourceFormat format,
                                                  const std::vector<std::string>& inputs,
                                                  const std::string& labels);

// The generated arithmetic task (the paper's BasicArithmetic in multiple-choice form): `items`
// questions on +, -, * of small numbers, each with four numeric choices, drawn from `seed` with a
// generator whose output is fixed by this code alone (the same bytes on every machine).
std::vector<TaskItem> ArithmeticTask(int64_t items, uint64_t seed);

}  // namespace sgt::eval

#endif  // SGT_CORE_EVAL_TASKS_H_
