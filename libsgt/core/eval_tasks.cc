// Zero-shot multiple-choice task files (docs/evaluation.md): the reader and writer of the JSONL
// task format, the converters from the source layouts of ARC, OpenBookQA, CommonsenseQA,
// HellaSwag, WinoGrande, SocialIQA and MMLU, and the generated arithmetic task.
//
// Every error names the file, the line (CSV: the record and the line it starts on) and the field,
// and says what to write instead. Converters return items; nothing is written until the caller
// hands them to WriteTaskFile, which replaces its target atomically.
#include "libsgt/core/eval_tasks.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/atomic_file.h"
#include "nlohmann/json.hpp"

namespace sgt::eval {
namespace {

using json = nlohmann::ordered_json;

constexpr char kTaskFields[] =
    "\"context\", \"choices\", \"gold\" (one context, several continuations) or \"contexts\", "
    "\"continuation\", \"gold\" (several contexts, one continuation), plus optional \"group\" and "
    "\"id\"";

// ---------------------------------------------------------------------------------------------
// Files and lines.

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory, not a ", what, "; name the file itself"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat(path, ": no such ", what, "; check the path"));
    }
    return ErrnoStatus(err, absl::StrCat("cannot read ", what, " ", path));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return ErrnoStatus(errno, absl::StrCat("cannot read ", what, " ", path));
  return s.str();
}

// The lines of `text` (1-based numbers), without their "\n" or a "\r" before it. A final newline
// does not start another line.
std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

bool IsBlank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

std::string Strip(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= n) return false;
    for (int k = 1; k <= extra; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// Where a record came from, for error messages: "FILE:LINE" for JSONL, "FILE: record N (line L)"
// for CSV.
struct Place {
  std::string file;
  int64_t line = 0;
  int64_t record = 0;  // CSV only
  std::string Text() const {
    if (record > 0) return absl::StrCat(file, ": record ", record, " (line ", line, ")");
    return absl::StrCat(file, ":", line);
  }
};

absl::Status FieldError(const Place& at, const std::string& field, const std::string& problem,
                        const std::string& fix) {
  return absl::InvalidArgumentError(
      absl::StrCat(at.Text(), ": field \"", field, "\" ", problem, "; ", fix));
}

absl::Status LineError(const Place& at, const std::string& problem, const std::string& fix) {
  return absl::InvalidArgumentError(absl::StrCat(at.Text(), ": ", problem, "; ", fix));
}

const char* JsonTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a fractional number";
    default:
      return "an unsupported value";
  }
}

// One JSON object per line. `fix` says what the line should look like.
absl::StatusOr<json> ParseJsonLine(const Place& at, const std::string& line,
                                   const std::string& fix) {
  json v;
  try {
    v = json::parse(line);
  } catch (const json::parse_error& e) {
    // e.what() repeats the library's prefix; keep its useful tail ("syntax error ...").
    std::string what = e.what();
    const size_t colon = what.find("syntax error");
    if (colon != std::string::npos) what = what.substr(colon);
    return LineError(at, absl::StrCat("malformed JSON at byte ", e.byte, " (", what, ")"), fix);
  }
  if (!v.is_object()) {
    return LineError(at, absl::StrCat("is ", JsonTypeName(v), ", not a JSON object"), fix);
  }
  return v;
}

// Field accessors: `path` is the dotted name used in messages ("question.stem").
absl::StatusOr<const json*> Field(const Place& at, const json& obj, const std::string& key,
                                  const std::string& path, const std::string& fix) {
  auto it = obj.find(key);
  if (it == obj.end()) return FieldError(at, path, "is missing", fix);
  return &*it;
}

absl::StatusOr<std::string> StringField(const Place& at, const json& obj, const std::string& key,
                                        const std::string& path, const std::string& fix,
                                        bool non_empty) {
  absl::StatusOr<const json*> v = Field(at, obj, key, path, fix);
  if (!v.ok()) return v.status();
  if (!(*v)->is_string()) {
    return FieldError(at, path, absl::StrCat("is ", JsonTypeName(**v), ", not a string"), fix);
  }
  std::string s = (*v)->get<std::string>();
  if (non_empty && IsBlank(s)) return FieldError(at, path, "is empty", fix);
  return s;
}

// A label given as an integer or as a string of digits ("2"); returns it as written (not yet
// range-checked).
absl::StatusOr<int64_t> IntegerLike(const Place& at, const json& v, const std::string& path,
                                    const std::string& fix) {
  if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = Strip(v.get<std::string>());
    if (!s.empty() && s.size() < 10 &&
        std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::stoll(s);
    }
    if (s.empty()) {
      return FieldError(
          at, path, "is empty (a split distributed without answers, such as a test split?)", fix);
    }
    return FieldError(at, path, absl::StrCat("is \"", v.get<std::string>(), "\", not a number"),
                      fix);
  }
  return FieldError(at, path, absl::StrCat("is ", JsonTypeName(v), ", not a number"), fix);
}

// ---------------------------------------------------------------------------------------------
// The task file.

// Checks one line's object and turns it into an item.
absl::StatusOr<TaskItem> ParseTaskItem(const std::string& file, int64_t line, const json& obj) {
  const Place at{file, line, 0};
  static const char* const kKnown[] = {"context",      "choices", "gold", "contexts",
                                       "continuation", "group",   "id"};
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find_if(std::begin(kKnown), std::end(kKnown),
                     [&](const char* k) { return it.key() == k; }) == std::end(kKnown)) {
      return FieldError(at, it.key(), "is not a task file field",
                        absl::StrCat("remove it; the fields are ", kTaskFields));
    }
  }
  const bool first = obj.contains("context") || obj.contains("choices");
  const bool second = obj.contains("contexts") || obj.contains("continuation");
  if (first && second) {
    return LineError(
        at,
        "mixes the two item shapes (\"context\"/\"choices\" with \"contexts\"/\"continuation\")",
        "write either {\"context\": ..., \"choices\": [...], \"gold\": N} or {\"contexts\": [...], "
        "\"continuation\": ..., \"gold\": N}");
  }
  if (!first && !second) {
    return LineError(at, "has neither \"context\"/\"choices\" nor \"contexts\"/\"continuation\"",
                     absl::StrCat("write ", kTaskFields));
  }
  TaskItem item;
  const std::string list_key = first ? "choices" : "contexts";
  const std::string one_key = first ? "context" : "continuation";
  const std::string list_fix =
      absl::StrCat("write \"", list_key, "\" as an array of at least 2 non-empty strings");
  const std::string one_fix = absl::StrCat("write \"", one_key, "\" as a non-empty string");
  absl::StatusOr<std::string> one = StringField(at, obj, one_key, one_key, one_fix, false);
  if (!one.ok()) return one.status();
  if (one->empty()) return FieldError(at, one_key, "is empty", one_fix);
  absl::StatusOr<const json*> list = Field(at, obj, list_key, list_key, list_fix);
  if (!list.ok()) return list.status();
  if (!(*list)->is_array()) {
    return FieldError(at, list_key, absl::StrCat("is ", JsonTypeName(**list), ", not an array"),
                      list_fix);
  }
  if ((*list)->size() < 2) {
    return FieldError(at, list_key,
                      absl::StrCat("has ", (*list)->size(), " entries, need 2 or more"), list_fix);
  }
  for (size_t i = 0; i < (*list)->size(); ++i) {
    const json& e = (**list)[i];
    const std::string path = absl::StrCat(list_key, "[", i, "]");
    if (!e.is_string()) {
      return FieldError(at, path, absl::StrCat("is ", JsonTypeName(e), ", not a string"), list_fix);
    }
    if (e.get<std::string>().empty()) return FieldError(at, path, "is empty", list_fix);
    if (first) {
      item.choices.push_back(Choice{*one, e.get<std::string>()});
    } else {
      item.choices.push_back(Choice{e.get<std::string>(), *one});
    }
  }
  const std::string gold_fix =
      absl::StrCat("write \"gold\" as the 0-based index of the correct ",
                   first ? "choice" : "context", " (0 to ", item.choices.size() - 1, ")");
  absl::StatusOr<const json*> gold = Field(at, obj, "gold", "gold", gold_fix);
  if (!gold.ok()) return gold.status();
  if (!(*gold)->is_number_integer() && !(*gold)->is_number_unsigned()) {
    return FieldError(at, "gold", absl::StrCat("is ", JsonTypeName(**gold), ", not an integer"),
                      gold_fix);
  }
  if ((*gold)->is_number_unsigned() &&
      (*gold)->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return FieldError(at, "gold", "is out of range", gold_fix);
  }
  item.gold = (*gold)->get<int64_t>();
  if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size())) {
    return FieldError(
        at, "gold",
        absl::StrCat("is ", item.gold, ", out of range for ", item.choices.size(), " ", list_key),
        gold_fix);
  }
  if (auto g = obj.find("group"); g != obj.end()) {
    if (!g->is_string()) {
      return FieldError(at, "group", absl::StrCat("is ", JsonTypeName(*g), ", not a string"),
                        "write it as a string, or leave it out");
    }
    item.group = g->get<std::string>();
  }
  if (auto id = obj.find("id"); id != obj.end()) {
    if (id->is_string()) {
      item.id = id->get<std::string>();
    } else if (id->is_number_integer() || id->is_number_unsigned()) {
      item.id = id->dump();
    } else {
      return FieldError(at, "id",
                        absl::StrCat("is ", JsonTypeName(*id), ", not a string or integer"),
                        "write it as a string or an integer, or leave it out");
    }
  }
  return item;
}

std::string StemOf(const std::string& path) {
  std::string base = path;
  const size_t slash = base.rfind('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  const size_t dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base;
}

// ---------------------------------------------------------------------------------------------
// Source records shared by the converters.

struct Record {
  Place at;
  json value;
};

// Reads JSONL source files: one object per line; blank lines are skipped.
absl::StatusOr<std::vector<Record>> ReadJsonl(const std::vector<std::string>& inputs,
                                              const std::string& fix) {
  std::vector<Record> records;
  for (const std::string& file : inputs) {
    absl::StatusOr<std::string> text = ReadWholeFile(file, "input file");
    if (!text.ok()) return text.status();
    const std::vector<std::string> lines = SplitLines(*text);
    int64_t before = static_cast<int64_t>(records.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      if (IsBlank(lines[i])) continue;
      const Place at{file, static_cast<int64_t>(i + 1), 0};
      absl::StatusOr<json> v = ParseJsonLine(at, lines[i], fix);
      if (!v.ok()) return v.status();
      records.push_back(Record{at, std::move(*v)});
    }
    if (static_cast<int64_t>(records.size()) == before) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": no records (the file is empty); ", fix));
    }
  }
  return records;
}

// An id kept for reference: a string or integer field, "" when absent.
std::string OptionalId(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer() || it->is_number_unsigned()) return it->dump();
  return "";
}

// ARC, OpenBookQA and CommonsenseQA: the question's text and its labelled choices, from the AI2
// layout (question: {stem, choices: [{text, label}]}) or the Hugging Face one (question or
// question_stem: str, choices: {text: [...], label: [...]}), and the index of answerKey.
struct LabelledQuestion {
  std::string stem;
  std::vector<std::string> texts;
  int64_t gold = 0;
};

absl::StatusOr<LabelledQuestion> ReadLabelledQuestion(const Record& r, const char* hf_stem_key,
                                                      const std::string& fix) {
  const Place& at = r.at;
  const json& obj = r.value;
  LabelledQuestion q;
  std::vector<std::string> labels;
  const json* choices = nullptr;
  std::string choices_path;
  auto question = obj.find("question");
  if (question != obj.end() && question->is_object()) {  // AI2 layout
    absl::StatusOr<std::string> stem =
        StringField(at, *question, "stem", "question.stem", fix, true);
    if (!stem.ok()) return stem.status();
    q.stem = *stem;
    absl::StatusOr<const json*> c = Field(at, *question, "choices", "question.choices", fix);
    if (!c.ok()) return c.status();
    choices = *c;
    choices_path = "question.choices";
    if (!choices->is_array()) {
      return FieldError(at, choices_path,
                        absl::StrCat("is ", JsonTypeName(*choices),
                                     ", not an array of {\"text\", \"label\"} objects"),
                        fix);
    }
    for (size_t i = 0; i < choices->size(); ++i) {
      const json& ch = (*choices)[i];
      const std::string path = absl::StrCat(choices_path, "[", i, "]");
      if (!ch.is_object()) {
        return FieldError(at, path, absl::StrCat("is ", JsonTypeName(ch), ", not an object"), fix);
      }
      absl::StatusOr<std::string> text = StringField(at, ch, "text", path + ".text", fix, true);
      if (!text.ok()) return text.status();
      absl::StatusOr<std::string> label = StringField(at, ch, "label", path + ".label", fix, true);
      if (!label.ok()) return label.status();
      q.texts.push_back(*text);
      labels.push_back(*label);
    }
  } else {  // Hugging Face layout
    const char* stem_key = obj.contains(hf_stem_key) ? hf_stem_key : "question";
    absl::StatusOr<std::string> stem = StringField(at, obj, stem_key, stem_key, fix, true);
    if (!stem.ok()) return stem.status();
    q.stem = *stem;
    absl::StatusOr<const json*> c = Field(at, obj, "choices", "choices", fix);
    if (!c.ok()) return c.status();
    choices = *c;
    if (!choices->is_object()) {
      return FieldError(at, "choices",
                        absl::StrCat("is ", JsonTypeName(*choices),
                                     ", not an object {\"text\": [...], \"label\": [...]}"),
                        fix);
    }
    for (const char* key : {"text", "label"}) {
      const std::string path = absl::StrCat("choices.", key);
      absl::StatusOr<const json*> list = Field(at, *choices, key, path, fix);
      if (!list.ok()) return list.status();
      if (!(*list)->is_array()) {
        return FieldError(at, path, absl::StrCat("is ", JsonTypeName(**list), ", not an array"),
                          fix);
      }
      for (size_t i = 0; i < (*list)->size(); ++i) {
        const json& e = (**list)[i];
        const std::string epath = absl::StrCat(path, "[", i, "]");
        if (!e.is_string()) {
          return FieldError(at, epath, absl::StrCat("is ", JsonTypeName(e), ", not a string"), fix);
        }
        if (IsBlank(e.get<std::string>())) return FieldError(at, epath, "is empty", fix);
        (key[0] == 't' ? q.texts : labels).push_back(e.get<std::string>());
      }
    }
    if (q.texts.size() != labels.size()) {
      return FieldError(
          at, "choices.label",
          absl::StrCat("has ", labels.size(), " entries but choices.text has ", q.texts.size()),
          "give one label per choice");
    }
    choices_path = "choices";
  }
  if (q.texts.size() < 2) {
    return FieldError(at, choices_path,
                      absl::StrCat("has ", q.texts.size(), " choices, need 2 or more"), fix);
  }
  absl::StatusOr<std::string> key = StringField(
      at, obj, "answerKey", "answerKey",
      "give the correct choice's label (the test splits are distributed without answers: convert "
      "the validation split instead)",
      true);
  if (!key.ok()) return key.status();
  const std::string answer = Strip(*key);
  auto found = std::find(labels.begin(), labels.end(), answer);
  if (found == labels.end()) {
    return FieldError(at, "answerKey",
                      absl::StrCat("is \"", *key, "\", which is none of the choices' labels (",
                                   absl::StrJoin(labels, ", "), ")"),
                      "set it to one of those labels");
  }
  q.gold = found - labels.begin();
  return q;
}

TaskItem SharedContextItem(const std::string& context, const std::vector<std::string>& texts,
                           int64_t gold, std::string id) {
  TaskItem item;
  for (const std::string& t : texts) item.choices.push_back(Choice{context, " " + t});
  item.gold = gold;
  item.id = std::move(id);
  return item;
}

absl::StatusOr<std::vector<TaskItem>> ConvertArcLike(SourceFormat format,
                                                     const std::vector<std::string>& inputs) {
  const bool obqa = format == SourceFormat::kOpenBookQa;
  const std::string fix =
      obqa ? "each record needs {\"question\": {\"stem\": ..., \"choices\": [{\"text\": ..., "
             "\"label\": ...}, ...]}, \"answerKey\": ...} (AI2 layout) or {\"question_stem\": "
             "..., \"choices\": {\"text\": [...], \"label\": [...]}, \"answerKey\": ...} "
             "(Hugging Face layout)"
           : "each record needs {\"question\": {\"stem\": ..., \"choices\": [{\"text\": ..., "
             "\"label\": ...}, ...]}, \"answerKey\": ...} (AI2 layout) or {\"question\": ..., "
             "\"choices\": {\"text\": [...], \"label\": [...]}, \"answerKey\": ...} (Hugging Face "
             "layout)";
  absl::StatusOr<std::vector<Record>> records = ReadJsonl(inputs, fix);
  if (!records.ok()) return records.status();
  std::vector<TaskItem> items;
  for (const Record& r : *records) {
    absl::StatusOr<LabelledQuestion> q =
        ReadLabelledQuestion(r, obqa ? "question_stem" : "question", fix);
    if (!q.ok()) return q.status();
    const std::string context = obqa ? q->stem : absl::StrCat("Question: ", q->stem, "\nAnswer:");
    items.push_back(SharedContextItem(context, q->texts, q->gold, OptionalId(r.value, "id")));
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// HellaSwag.

// The usual cleanup of HellaSwag's WikiHow-derived text: " [title]" ends a sentence, other
// bracketed tags ("[header]", "[step]", "[substeps]") go, runs of spaces become one, and the ends
// are trimmed (before and after, so a tag at either end leaves no space behind).
std::string CleanHellaSwag(const std::string& in) {
  std::string s = Strip(in);
  std::string t;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 8, " [title]") == 0) {
      t += ". ";
      i += 8;
    } else {
      t += s[i++];
    }
  }
  std::string u;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '[') {
      const size_t close = t.find(']', i + 1);
      if (close != std::string::npos) {
        i = close + 1;
        continue;
      }
    }
    u += t[i++];
  }
  std::string v;
  for (char c : u) {
    if (c == ' ' && !v.empty() && v.back() == ' ') continue;
    v += c;
  }
  // A tag removed from either end leaves a space there.
  return Strip(v);
}

// Upper-cases the first letter and lower-cases the rest (ASCII letters only), as the usual
// prompt does with ctx_b.
std::string Capitalize(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (i == 0 && c >= 'a' && c <= 'z') out[i] = static_cast<char>(c - 'a' + 'A');
    if (i > 0 && c >= 'A' && c <= 'Z') out[i] = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

absl::StatusOr<std::vector<TaskItem>> ConvertHellaSwag(const std::vector<std::string>& inputs) {
  const std::string fix =
      "each record needs {\"activity_label\": ..., \"ctx_a\": ..., \"ctx_b\": ..., \"endings\": "
      "[4 strings], \"label\": N} (the validation split has labels; the test split does not)";
  absl::StatusOr<std::vector<Record>> records = ReadJsonl(inputs, fix);
  if (!records.ok()) return records.status();
  std::vector<TaskItem> items;
  for (const Record& r : *records) {
    const Place& at = r.at;
    absl::StatusOr<std::string> activity =
        StringField(at, r.value, "activity_label", "activity_label", fix, true);
    if (!activity.ok()) return activity.status();
    absl::StatusOr<std::string> ctx_a = StringField(at, r.value, "ctx_a", "ctx_a", fix, true);
    if (!ctx_a.ok()) return ctx_a.status();
    absl::StatusOr<std::string> ctx_b = StringField(at, r.value, "ctx_b", "ctx_b", fix, false);
    if (!ctx_b.ok()) return ctx_b.status();
    absl::StatusOr<const json*> endings = Field(at, r.value, "endings", "endings", fix);
    if (!endings.ok()) return endings.status();
    if (!(*endings)->is_array()) {
      return FieldError(at, "endings",
                        absl::StrCat("is ", JsonTypeName(**endings), ", not an array"), fix);
    }
    if ((*endings)->size() < 2) {
      return FieldError(at, "endings",
                        absl::StrCat("has ", (*endings)->size(), " entries, need 2 or more"), fix);
    }
    std::vector<std::string> texts;
    for (size_t i = 0; i < (*endings)->size(); ++i) {
      const json& e = (**endings)[i];
      const std::string path = absl::StrCat("endings[", i, "]");
      if (!e.is_string()) {
        return FieldError(at, path, absl::StrCat("is ", JsonTypeName(e), ", not a string"), fix);
      }
      const std::string cleaned = CleanHellaSwag(e.get<std::string>());
      if (cleaned.empty()) return FieldError(at, path, "is empty after cleanup", fix);
      texts.push_back(cleaned);
    }
    absl::StatusOr<const json*> label = Field(at, r.value, "label", "label", fix);
    if (!label.ok()) return label.status();
    absl::StatusOr<int64_t> gold = IntegerLike(at, **label, "label", fix);
    if (!gold.ok()) return gold.status();
    if (*gold < 0 || *gold >= static_cast<int64_t>(texts.size())) {
      return FieldError(at, "label",
                        absl::StrCat("is ", *gold, ", out of range for ", texts.size(), " endings"),
                        absl::StrCat("use the 0-based index of the correct ending (0 to ",
                                     texts.size() - 1, ")"));
    }
    const std::string context =
        CleanHellaSwag(absl::StrCat(*activity, ": ", *ctx_a, " ", Capitalize(*ctx_b)));
    std::string id = OptionalId(r.value, "ind");
    items.push_back(SharedContextItem(context, texts, *gold, std::move(id)));
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// WinoGrande: partial scoring. Each option fills the blank to make a context; the text after the
// blank is the one continuation scored after each.

absl::StatusOr<std::vector<TaskItem>> ConvertWinoGrande(const std::vector<std::string>& inputs) {
  const std::string fix =
      "each record needs {\"sentence\": \"... _ ...\" (one \"_\" for the blank), \"option1\": ..., "
      "\"option2\": ..., \"answer\": \"1\" or \"2\"}";
  absl::StatusOr<std::vector<Record>> records = ReadJsonl(inputs, fix);
  if (!records.ok()) return records.status();
  std::vector<TaskItem> items;
  for (const Record& r : *records) {
    const Place& at = r.at;
    absl::StatusOr<std::string> sentence =
        StringField(at, r.value, "sentence", "sentence", fix, true);
    if (!sentence.ok()) return sentence.status();
    const size_t blank = sentence->find('_');
    const int64_t blanks = std::count(sentence->begin(), sentence->end(), '_');
    if (blanks != 1) {
      return FieldError(
          at, "sentence",
          absl::StrCat("has ", blanks, " \"_\" blanks, need exactly 1: \"", *sentence, "\""),
          "mark the one place the options fill with a single \"_\"");
    }
    const std::string before = sentence->substr(0, blank);
    const std::string after = sentence->substr(blank + 1);
    if (after.empty()) {
      return FieldError(at, "sentence", "ends at the \"_\", leaving no text to score after it",
                        "partial scoring needs text after the blank; fix the sentence");
    }
    std::vector<std::string> options;
    for (const char* key : {"option1", "option2"}) {
      absl::StatusOr<std::string> o = StringField(at, r.value, key, key, fix, true);
      if (!o.ok()) return o.status();
      options.push_back(*o);
    }
    absl::StatusOr<const json*> answer = Field(at, r.value, "answer", "answer", fix);
    if (!answer.ok()) return answer.status();
    absl::StatusOr<int64_t> a = IntegerLike(at, **answer, "answer", fix);
    if (!a.ok()) return a.status();
    if (*a != 1 && *a != 2) {
      return FieldError(at, "answer", absl::StrCat("is ", *a, ", not 1 or 2"),
                        "write \"1\" for option1 or \"2\" for option2");
    }
    TaskItem item;
    for (const std::string& o : options) item.choices.push_back(Choice{before + o, after});
    item.gold = *a - 1;
    item.id = OptionalId(r.value, "qID");
    items.push_back(std::move(item));
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// SocialIQA.

absl::StatusOr<std::vector<int64_t>> ReadSocialIqaLabels(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path, "labels file");
  if (!text.ok()) return text.status();
  const std::vector<std::string> lines = SplitLines(*text);
  std::vector<int64_t> labels;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string s = Strip(lines[i]);
    const Place at{path, static_cast<int64_t>(i + 1), 0};
    if (s.empty()) {
      // Blank lines only at the end.
      bool rest_blank = true;
      for (size_t j = i; j < lines.size(); ++j) rest_blank = rest_blank && IsBlank(lines[j]);
      if (rest_blank) break;
      return LineError(at, "is empty", "write one label (1, 2 or 3) per line, one per record");
    }
    if (s != "1" && s != "2" && s != "3") {
      return LineError(at, absl::StrCat("is \"", s, "\", not a label 1, 2 or 3"),
                       "write one label (1, 2 or 3) per line, one per record");
    }
    labels.push_back(s[0] - '0');
  }
  return labels;
}

absl::StatusOr<std::vector<TaskItem>> ConvertSocialIqa(const std::vector<std::string>& inputs,
                                                       const std::string& labels_path) {
  const std::string fix =
      "each record needs {\"context\": ..., \"question\": ..., \"answerA\": ..., \"answerB\": ..., "
      "\"answerC\": ...} and a label: \"label\" (\"1\" to \"3\") in the record, or a labels file "
      "(--labels) with one number per line";
  absl::StatusOr<std::vector<Record>> records = ReadJsonl(inputs, fix);
  if (!records.ok()) return records.status();
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    absl::StatusOr<std::vector<int64_t>> l = ReadSocialIqaLabels(labels_path);
    if (!l.ok()) return l.status();
    labels = std::move(*l);
    if (labels.size() != records->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the labels file ", labels_path, " has ", labels.size(), " labels but the records (",
          absl::StrJoin(inputs, ", "), ") number ", records->size(),
          "; pass the labels file that belongs to these records (train.jsonl with "
          "train-labels.lst, dev.jsonl with dev-labels.lst)"));
    }
  }
  std::vector<TaskItem> items;
  for (size_t n = 0; n < records->size(); ++n) {
    const Record& r = (*records)[n];
    const Place& at = r.at;
    absl::StatusOr<std::string> context = StringField(at, r.value, "context", "context", fix, true);
    if (!context.ok()) return context.status();
    absl::StatusOr<std::string> question =
        StringField(at, r.value, "question", "question", fix, true);
    if (!question.ok()) return question.status();
    std::vector<std::string> answers;
    for (const char* key : {"answerA", "answerB", "answerC"}) {
      absl::StatusOr<std::string> a = StringField(at, r.value, key, key, fix, true);
      if (!a.ok()) return a.status();
      answers.push_back(*a);
    }
    int64_t label = 0;
    auto in_record = r.value.find("label");
    if (in_record != r.value.end()) {
      absl::StatusOr<int64_t> l = IntegerLike(at, *in_record, "label", fix);
      if (!l.ok()) return l.status();
      if (*l < 1 || *l > 3) {
        return FieldError(at, "label", absl::StrCat("is ", *l, ", not 1, 2 or 3"),
                          "write 1 for answerA, 2 for answerB, 3 for answerC");
      }
      label = *l;
      if (!labels.empty() && labels[n] != label) {
        return FieldError(at, "label",
                          absl::StrCat("is ", label, " but line ", n + 1, " of the labels file ",
                                       labels_path, " says ", labels[n]),
                          "drop --labels (the records carry their labels) or fix the mismatch");
      }
    } else if (!labels.empty()) {
      label = labels[n];
    } else {
      return FieldError(at, "label", "is missing and no labels file was given",
                        "pass the distribution's labels file (--labels dev-labels.lst), one "
                        "number per record");
    }
    const std::string prompt = absl::StrCat("Q: ", *context, " ", *question, "\nA:");
    items.push_back(SharedContextItem(prompt, answers, label - 1, ""));
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// MMLU.

struct Subject {
  const char* name;
  const char* category;
};

// The 57 subjects and the four categories of the benchmark's own grouping (Hendrycks et al.'s
// subject -> subcategory -> category table).
constexpr Subject kMmluSubjects[] = {
    {"abstract_algebra", "stem"},
    {"anatomy", "other"},
    {"astronomy", "stem"},
    {"business_ethics", "other"},
    {"clinical_knowledge", "other"},
    {"college_biology", "stem"},
    {"college_chemistry", "stem"},
    {"college_computer_science", "stem"},
    {"college_mathematics", "stem"},
    {"college_medicine", "other"},
    {"college_physics", "stem"},
    {"computer_security", "stem"},
    {"conceptual_physics", "stem"},
    {"econometrics", "social_sciences"},
    {"electrical_engineering", "stem"},
    {"elementary_mathematics", "stem"},
    {"formal_logic", "humanities"},
    {"global_facts", "other"},
    {"high_school_biology", "stem"},
    {"high_school_chemistry", "stem"},
    {"high_school_computer_science", "stem"},
    {"high_school_european_history", "humanities"},
    {"high_school_geography", "social_sciences"},
    {"high_school_government_and_politics", "social_sciences"},
    {"high_school_macroeconomics", "social_sciences"},
    {"high_school_mathematics", "stem"},
    {"high_school_microeconomics", "social_sciences"},
    {"high_school_physics", "stem"},
    {"high_school_psychology", "social_sciences"},
    {"high_school_statistics", "stem"},
    {"high_school_us_history", "humanities"},
    {"high_school_world_history", "humanities"},
    {"human_aging", "other"},
    {"human_sexuality", "social_sciences"},
    {"international_law", "humanities"},
    {"jurisprudence", "humanities"},
    {"logical_fallacies", "humanities"},
    {"machine_learning", "stem"},
    {"management", "other"},
    {"marketing", "other"},
    {"medical_genetics", "other"},
    {"miscellaneous", "other"},
    {"moral_disputes", "humanities"},
    {"moral_scenarios", "humanities"},
    {"nutrition", "other"},
    {"philosophy", "humanities"},
    {"prehistory", "humanities"},
    {"professional_accounting", "other"},
    {"professional_law", "humanities"},
    {"professional_medicine", "other"},
    {"professional_psychology", "social_sciences"},
    {"public_relations", "social_sciences"},
    {"security_studies", "social_sciences"},
    {"sociology", "social_sciences"},
    {"us_foreign_policy", "social_sciences"},
    {"virology", "other"},
    {"world_religions", "humanities"},
};
static_assert(sizeof(kMmluSubjects) / sizeof(kMmluSubjects[0]) == 57, "MMLU has 57 subjects");

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The category of `subject`, or an error naming `where` and suggesting the known names.
absl::StatusOr<std::string> MmluCategory(const std::string& subject, const std::string& where) {
  for (const Subject& s : kMmluSubjects) {
    if (subject == s.name) return std::string(s.category);
  }
  std::string nearest;
  size_t best = SIZE_MAX;
  std::vector<std::string> names;
  for (const Subject& s : kMmluSubjects) {
    names.push_back(s.name);
    const size_t d = EditDistance(subject, s.name);
    if (d < best) {
      best = d;
      nearest = s.name;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": \"", subject, "\" is not one of MMLU's 57 subjects",
                   best <= std::max<size_t>(3, subject.size() / 4)
                       ? absl::StrCat(" (did you mean \"", nearest, "\"?)")
                       : std::string(),
                   "; use one of: ", absl::StrJoin(names, ", ")));
}

std::string MmluContext(const std::string& subject, const std::string& question,
                        const std::vector<std::string>& options) {
  std::string topic = subject;
  std::replace(topic.begin(), topic.end(), '_', ' ');
  std::string s = absl::StrCat("The following are multiple choice questions (with answers) about ",
                               topic, ".\n\n", Strip(question));
  const char letters[] = "ABCD";
  for (size_t i = 0; i < options.size(); ++i) {
    absl::StrAppend(&s, "\n", std::string(1, letters[i]), ". ", options[i]);
  }
  absl::StrAppend(&s, "\nAnswer:");
  return s;
}

TaskItem MmluItem(const std::string& subject, const std::string& category,
                  const std::string& question, const std::vector<std::string>& options,
                  int64_t gold, std::string id) {
  TaskItem item;
  const std::string context = MmluContext(subject, question, options);
  for (const char* letter : {" A", " B", " C", " D"})
    item.choices.push_back(Choice{context, letter});
  item.gold = gold;
  item.group = category;
  item.id = std::move(id);
  return item;
}

struct CsvRecord {
  int64_t line = 0;  // where it starts
  std::vector<std::string> fields;
};

// RFC 4180 CSV: fields separated by commas, records by "\n" or "\r\n"; a quoted field may hold
// commas, newlines and doubled quotes.
// `names` name the fields in messages (by position; "field N" past its end).
absl::StatusOr<std::vector<CsvRecord>> ParseCsv(const std::string& file, const std::string& text,
                                                const std::vector<std::string>& names) {
  std::vector<CsvRecord> records;
  CsvRecord cur;
  std::string field;
  int64_t line = 1;
  cur.line = 1;
  bool in_record = false;
  size_t i = 0;
  const size_t n = text.size();
  const std::string fix =
      "quote a field that holds commas, quotes or newlines with \"...\" and double each quote "
      "inside it (\"\")";
  auto field_name = [&]() {
    const size_t k = cur.fields.size();
    return k < names.size() ? absl::StrCat("field \"", names[k], "\"")
                            : absl::StrCat("field ", k + 1);
  };
  auto end_field = [&]() {
    cur.fields.push_back(std::move(field));
    field.clear();
  };
  auto end_record = [&]() {
    end_field();
    records.push_back(std::move(cur));
    cur = CsvRecord{};
    in_record = false;
  };
  while (i < n) {
    if (!in_record) {
      cur.line = line;
      in_record = true;
    }
    const char c = text[i];
    if (c == '"' && field.empty()) {
      // A quoted field; `field.empty()` also holds after an unquoted start, checked below.
      const int64_t open_line = line;
      ++i;
      bool closed = false;
      while (i < n) {
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i++];
      }
      if (!closed) {
        return absl::InvalidArgumentError(absl::StrCat(
            file, ": record ", records.size() + 1, " (line ", cur.line, "): ", field_name(),
            " opens a quote on line ", open_line, " that is never closed; ", fix));
      }
      if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
        return absl::InvalidArgumentError(absl::StrCat(file, ": record ", records.size() + 1,
                                                       " (line ", line, "): ", field_name(),
                                                       " has text after its closing quote; ", fix));
      }
      if (i >= n) {
        end_record();
      }
      continue;
    }
    if (c == ',') {
      end_field();
      ++i;
      // A trailing comma at the end of the text still ends with an empty field.
      if (i == n) end_record();
      continue;
    }
    if (c == '\r' && i + 1 < n && text[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (c == '\n') {
      end_record();
      ++line;
      ++i;
      continue;
    }
    if (c == '"') {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": record ", records.size() + 1, " (line ", line, "): ", field_name(),
                       " has a quote inside an unquoted field; ", fix));
    }
    field += c;
    ++i;
    if (i == n) end_record();
  }
  return records;
}

// The subject named by an MMLU CSV file's name: {subject}_test.csv, _dev.csv or _val.csv.
absl::StatusOr<std::string> MmluSubjectFromFileName(const std::string& file) {
  std::string base = file;
  const size_t slash = base.rfind('/');
  if (slash != std::string::npos) base = base.substr(slash + 1);
  for (const char* suffix : {"_test.csv", "_dev.csv", "_val.csv"}) {
    const std::string s = suffix;
    if (base.size() > s.size() && base.compare(base.size() - s.size(), s.size(), s) == 0) {
      return base.substr(0, base.size() - s.size());
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      file,
      ": an MMLU CSV file's name says its subject: {subject}_test.csv, {subject}_dev.csv or "
      "{subject}_val.csv (as in the original distribution's data/test/); rename it, or "
      "give the Hugging Face JSONL layout (a .jsonl file) instead"));
}

absl::Status ConvertMmluCsv(const std::string& file, std::vector<TaskItem>* items) {
  absl::StatusOr<std::string> subject = MmluSubjectFromFileName(file);
  if (!subject.ok()) return subject.status();
  absl::StatusOr<std::string> category = MmluCategory(*subject, absl::StrCat(file, ": file name"));
  if (!category.ok()) return category.status();
  absl::StatusOr<std::string> text = ReadWholeFile(file, "input file");
  if (!text.ok()) return text.status();
  static const char* const kFieldNames[] = {"question", "A", "B", "C", "D", "answer"};
  absl::StatusOr<std::vector<CsvRecord>> records =
      ParseCsv(file, *text, {std::begin(kFieldNames), std::end(kFieldNames)});
  if (!records.ok()) return records.status();
  const std::string fix =
      "each record is question,A,B,C,D,answer (no header row), answer one of A, B, C, D";
  int64_t converted = 0;
  for (size_t r = 0; r < records->size(); ++r) {
    const CsvRecord& rec = (*records)[r];
    const Place at{file, rec.line, static_cast<int64_t>(r + 1)};
    if (rec.fields.size() == 1 && IsBlank(rec.fields[0])) continue;  // blank line
    if (rec.fields.size() != 6) {
      return LineError(at, absl::StrCat("has ", rec.fields.size(), " fields, need 6"), fix);
    }
    for (size_t f = 0; f < 6; ++f) {
      if (!ValidUtf8(rec.fields[f])) {
        return FieldError(at, kFieldNames[f], "is not valid UTF-8", "save the file as UTF-8");
      }
    }
    if (IsBlank(rec.fields[0])) return FieldError(at, "question", "is empty", fix);
    const std::string answer = Strip(rec.fields[5]);
    if (answer.size() != 1 || answer[0] < 'A' || answer[0] > 'D') {
      return FieldError(at, "answer",
                        absl::StrCat("is \"", rec.fields[5], "\", not one of A, B, C, D"), fix);
    }
    items->push_back(MmluItem(*subject, *category, rec.fields[0],
                              {rec.fields[1], rec.fields[2], rec.fields[3], rec.fields[4]},
                              answer[0] - 'A', ""));
    ++converted;
  }
  if (converted == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": no records (the file is empty); ", fix));
  }
  return absl::OkStatus();
}

absl::Status ConvertMmluJsonl(const std::string& file, std::vector<TaskItem>* items) {
  const std::string fix =
      "each record needs {\"question\": ..., \"subject\": ..., \"choices\": [4 strings], "
      "\"answer\": 0 to 3}";
  absl::StatusOr<std::vector<Record>> records = ReadJsonl({file}, fix);
  if (!records.ok()) return records.status();
  for (const Record& r : *records) {
    const Place& at = r.at;
    absl::StatusOr<std::string> question =
        StringField(at, r.value, "question", "question", fix, true);
    if (!question.ok()) return question.status();
    absl::StatusOr<std::string> subject = StringField(at, r.value, "subject", "subject", fix, true);
    if (!subject.ok()) return subject.status();
    absl::StatusOr<std::string> category =
        MmluCategory(*subject, absl::StrCat(at.Text(), ": field \"subject\""));
    if (!category.ok()) return category.status();
    absl::StatusOr<const json*> choices = Field(at, r.value, "choices", "choices", fix);
    if (!choices.ok()) return choices.status();
    if (!(*choices)->is_array() || (*choices)->size() != 4) {
      return FieldError(at, "choices",
                        (*choices)->is_array()
                            ? absl::StrCat("has ", (*choices)->size(), " entries, need 4")
                            : absl::StrCat("is ", JsonTypeName(**choices), ", not an array"),
                        fix);
    }
    std::vector<std::string> options;
    for (size_t i = 0; i < 4; ++i) {
      const json& e = (**choices)[i];
      if (!e.is_string()) {
        return FieldError(at, absl::StrCat("choices[", i, "]"),
                          absl::StrCat("is ", JsonTypeName(e), ", not a string"), fix);
      }
      options.push_back(e.get<std::string>());
    }
    absl::StatusOr<const json*> answer = Field(at, r.value, "answer", "answer", fix);
    if (!answer.ok()) return answer.status();
    if (!(*answer)->is_number_integer() && !(*answer)->is_number_unsigned()) {
      return FieldError(at, "answer",
                        absl::StrCat("is ", JsonTypeName(**answer), ", not an integer"), fix);
    }
    const int64_t gold = (*answer)->get<int64_t>();
    if (gold < 0 || gold > 3) {
      return FieldError(at, "answer", absl::StrCat("is ", gold, ", out of range 0 to 3"), fix);
    }
    items->push_back(MmluItem(*subject, *category, *question, options, gold, ""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TaskItem>> ConvertMmlu(const std::vector<std::string>& inputs) {
  std::vector<TaskItem> items;
  for (const std::string& file : inputs) {
    const bool csv = file.size() >= 4 && file.compare(file.size() - 4, 4, ".csv") == 0;
    absl::Status s = csv ? ConvertMmluCsv(file, &items) : ConvertMmluJsonl(file, &items);
    if (!s.ok()) return s;
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// The arithmetic task.

// splitmix64 (Steele, Lea, Flood): a 64-bit state advanced by a constant and mixed; its output is
// fixed by these lines alone.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [lo, hi] for these small ranges (the modulo bias is below 2^-50).
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }

 private:
  uint64_t state_;
};

int64_t ReverseDigits(int64_t v) {
  int64_t r = 0;
  while (v > 0) {
    r = r * 10 + v % 10;
    v /= 10;
  }
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions.

absl::Status CheckTaskItem(const TaskItem& item) {
  if (item.choices.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("has ", item.choices.size(), " choices, need 2 or more"));
  }
  if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("gold ", item.gold, " is out of range for ", item.choices.size(), " choices"));
  }
  bool same_context = true, same_continuation = true;
  for (const Choice& c : item.choices) {
    if (c.context.empty() || c.continuation.empty()) {
      return absl::InvalidArgumentError("has a choice with an empty context or continuation");
    }
    same_context = same_context && c.context == item.choices[0].context;
    same_continuation = same_continuation && c.continuation == item.choices[0].continuation;
  }
  if (!same_context && !same_continuation) {
    return absl::InvalidArgumentError(
        "its choices share neither the context nor the continuation, which neither item shape "
        "can hold");
  }
  for (const std::string* s : {&item.group, &item.id}) {
    if (!ValidUtf8(*s)) return absl::InvalidArgumentError("has a group or id that is not UTF-8");
  }
  for (const Choice& c : item.choices) {
    if (!ValidUtf8(c.context) || !ValidUtf8(c.continuation)) {
      return absl::InvalidArgumentError("has text that is not valid UTF-8");
    }
  }
  return absl::OkStatus();
}

std::string TaskItemJsonLine(const TaskItem& item) {
  json j;
  bool same_context = true;
  for (const Choice& c : item.choices) {
    same_context = same_context && c.context == item.choices[0].context;
  }
  if (same_context && !item.choices.empty()) {
    j["context"] = item.choices[0].context;
    json choices = json::array();
    for (const Choice& c : item.choices) choices.push_back(c.continuation);
    j["choices"] = std::move(choices);
  } else {
    json contexts = json::array();
    for (const Choice& c : item.choices) contexts.push_back(c.context);
    j["contexts"] = std::move(contexts);
    j["continuation"] = item.choices.empty() ? std::string() : item.choices[0].continuation;
  }
  j["gold"] = item.gold;
  if (!item.group.empty()) j["group"] = item.group;
  if (!item.id.empty()) j["id"] = item.id;
  // Invalid UTF-8 (refused by CheckTaskItem) is replaced rather than thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<Task> ReadTaskFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path, "task file");
  if (!text.ok()) return text.status();
  Task task;
  task.name = StemOf(path);
  task.path = path;
  const std::vector<std::string> lines = SplitLines(*text);
  const std::string line_fix = absl::StrCat("each line is one JSON object with ", kTaskFields);
  for (size_t i = 0; i < lines.size(); ++i) {
    const int64_t line = static_cast<int64_t>(i + 1);
    if (IsBlank(lines[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line, ": the line is empty; remove it (", line_fix, ")"));
    }
    absl::StatusOr<json> obj = ParseJsonLine(Place{path, line, 0}, lines[i], line_fix);
    if (!obj.ok()) return obj.status();
    absl::StatusOr<TaskItem> item = ParseTaskItem(path, line, *obj);
    if (!item.ok()) return item.status();
    task.items.push_back(std::move(*item));
  }
  if (task.items.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the task file is empty; write one item per line (", kTaskFields,
                     "), e.g. with `sgt-data task convert`"));
  }
  return task;
}

absl::Status WriteTaskFile(const std::string& path, const std::vector<TaskItem>& items) {
  if (items.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not writing ", path, ": no items (a task file needs at least one)"));
  }
  std::string content;
  for (size_t i = 0; i < items.size(); ++i) {
    if (absl::Status s = CheckTaskItem(items[i]); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not writing ", path, ": item ", i, " ", s.message()));
    }
    absl::StrAppend(&content, TaskItemJsonLine(items[i]), "\n");
  }
  return WriteFileAtomic(path, content);
}

const char* SourceFormatName(SourceFormat f) {
  switch (f) {
    case SourceFormat::kArc:
      return "arc";
    case SourceFormat::kOpenBookQa:
      return "openbookqa";
    case SourceFormat::kCommonsenseQa:
      return "csqa";
    case SourceFormat::kHellaSwag:
      return "hellaswag";
    case SourceFormat::kWinoGrande:
      return "winogrande";
    case SourceFormat::kSocialIqa:
      return "siqa";
    case SourceFormat::kMmlu:
      return "mmlu";
  }
  return "?";
}

absl::StatusOr<SourceFormat> SourceFormatFromName(const std::string& name) {
  std::vector<std::string> names;
  for (SourceFormat f :
       {SourceFormat::kArc, SourceFormat::kOpenBookQa, SourceFormat::kCommonsenseQa,
        SourceFormat::kHellaSwag, SourceFormat::kWinoGrande, SourceFormat::kSocialIqa,
        SourceFormat::kMmlu}) {
    if (name == SourceFormatName(f)) return f;
    names.push_back(SourceFormatName(f));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown task format \"", name, "\"; use one of ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::vector<TaskItem>> ConvertTask(SourceFormat format,
                                                  const std::vector<std::string>& inputs,
                                                  const std::string& labels) {
  if (inputs.empty()) return absl::InvalidArgumentError("no input files to convert");
  if (!labels.empty() && format != SourceFormat::kSocialIqa) {
    return absl::InvalidArgumentError(
        absl::StrCat("a labels file (", labels, ") is only read for siqa, not ",
                     SourceFormatName(format), ", whose records carry their answers; drop it"));
  }
  switch (format) {
    case SourceFormat::kArc:
    case SourceFormat::kOpenBookQa:
    case SourceFormat::kCommonsenseQa:
      return ConvertArcLike(format, inputs);
    case SourceFormat::kHellaSwag:
      return ConvertHellaSwag(inputs);
    case SourceFormat::kWinoGrande:
      return ConvertWinoGrande(inputs);
    case SourceFormat::kSocialIqa:
      return ConvertSocialIqa(inputs, labels);
    case SourceFormat::kMmlu:
      return ConvertMmlu(inputs);
  }
  return absl::InvalidArgumentError("unknown task format");
}

std::vector<TaskItem> ArithmeticTask(int64_t items, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<TaskItem> out;
  for (int64_t n = 0; n < items; ++n) {
    const int64_t op = rng.Range(0, 2);
    int64_t a = 0, b = 0, answer = 0;
    const char* word = "";
    const char* group = "";
    std::vector<int64_t> candidates;
    if (op == 0) {
      a = rng.Range(1, 99);
      b = rng.Range(1, 99);
      answer = a + b;
      word = "plus";
      group = "addition";
      candidates = {answer + 1, answer - 1, answer + 10, answer - 10, a > b ? a - b : b - a};
    } else if (op == 1) {
      a = rng.Range(2, 99);
      b = rng.Range(1, a);  // the answer is never negative
      answer = a - b;
      word = "minus";
      group = "subtraction";
      candidates = {answer + 1, answer - 1, answer + 10, answer - 10, a + b};
    } else {
      a = rng.Range(2, 20);
      b = rng.Range(2, 12);
      answer = a * b;
      word = "times";
      group = "multiplication";
      candidates = {answer + a, answer - a, answer + b, answer - b, answer + 1, answer + 10};
    }
    candidates.push_back(ReverseDigits(answer));
    std::vector<int64_t> bag;
    auto add = [&](int64_t c) {
      if (c >= 0 && c != answer && std::find(bag.begin(), bag.end(), c) == bag.end()) {
        bag.push_back(c);
      }
    };
    for (int64_t c : candidates) add(c);
    // Always-valid fallbacks, so three distinct distractors exist for every answer.
    for (int64_t d = 2; bag.size() < 3; ++d) add(answer + d);
    std::vector<int64_t> chosen;
    for (int k = 0; k < 3; ++k) {
      const size_t j = static_cast<size_t>(rng.Range(0, static_cast<int64_t>(bag.size()) - 1));
      chosen.push_back(bag[j]);
      bag.erase(bag.begin() + static_cast<std::ptrdiff_t>(j));
    }
    const int64_t gold = rng.Range(0, 3);
    chosen.insert(chosen.begin() + gold, answer);
    TaskItem item;
    const std::string context =
        absl::StrCat("Question: What is ", a, " ", word, " ", b, "?\nAnswer:");
    for (int64_t v : chosen) item.choices.push_back(Choice{context, absl::StrCat(" ", v)});
    item.gold = gold;
    item.group = group;
    item.id = absl::StrCat(n);
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace sgt::eval
