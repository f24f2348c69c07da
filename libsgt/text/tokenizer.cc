// SentencePiece behind Tokenizer (tokenizer.h), through the module of sentencepiece_module.cc.
#include "libsgt/text/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/token_file.h"

namespace sgt {
namespace {

// SentencePiece runs in the module libsgt_sentencepiece.so (text/sentencepiece_module.cc), loaded
// local and deep-bound: linked directly, its bundled protobuf runtime and LibTorch's system
// protobuf bind to each other's symbols and a process with both crashes while loading.
struct SentencePieceModule {
  void* (*load)(const char*, char**) = nullptr;
  void (*free_processor)(void*) = nullptr;
  int (*encode)(const void*, const char*, size_t, int**, size_t*, char**) = nullptr;
  int (*decode)(const void*, const int*, size_t, char**, size_t*, char**) = nullptr;
  int (*eos_id)(const void*) = nullptr;
  int (*piece_size)(const void*) = nullptr;
  std::string error;  // why it could not be loaded, or ""
};

// Where the module is looked for: $SGT_SENTENCEPIECE_MODULE, beside the executable (the build's
// bin/), the executable's ../lib (an install), then the dynamic loader's search path.
SentencePieceModule LoadModule() {
  SentencePieceModule m;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("SGT_SENTENCEPIECE_MODULE"); env != nullptr && *env != '\0') {
    candidates.push_back(env);
  }
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back((exe.parent_path() / "libsgt_sentencepiece.so").string());
    candidates.push_back((exe.parent_path().parent_path() / "lib" / "libsgt_sentencepiece.so").string());
  }
  candidates.push_back("libsgt_sentencepiece.so");
  void* handle = nullptr;
  std::string tried;
  for (const std::string& c : candidates) {
    handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle != nullptr) break;
    const char* e = dlerror();
    absl::StrAppend(&tried, tried.empty() ? "" : "; ", e != nullptr ? e : c);
  }
  if (handle == nullptr) {
    m.error = absl::StrCat("cannot load the SentencePiece module libsgt_sentencepiece.so (", tried,
                           "); build the sgt_sentencepiece target, which writes it beside the "
                           "executables, or set SGT_SENTENCEPIECE_MODULE to its path");
    return m;
  }
  auto sym = [&](const char* name, auto* fn) {
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(handle, name));
    if (*fn == nullptr && m.error.empty()) {
      m.error = absl::StrCat("the SentencePiece module lacks ", name, "; rebuild sgt_sentencepiece");
    }
  };
  sym("sgt_sp_load", &m.load);
  sym("sgt_sp_free", &m.free_processor);
  sym("sgt_sp_encode", &m.encode);
  sym("sgt_sp_decode", &m.decode);
  sym("sgt_sp_eos_id", &m.eos_id);
  sym("sgt_sp_piece_size", &m.piece_size);
  return m;
}

const SentencePieceModule& Module() {
  static const SentencePieceModule m = LoadModule();
  return m;
}

// A malloc'd message from the module as a string (and freed).
std::string Take(char* message) {
  std::string s = message != nullptr ? message : "unknown error";
  std::free(message);
  return s;
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer ", path, " does not exist; `sgt-data prepare` writes DIR/tokenizer.model"));
  }
  const SentencePieceModule& mod = Module();
  if (!mod.error.empty()) return absl::FailedPreconditionError(mod.error);
  char* error = nullptr;
  void* raw = mod.load(path.c_str(), &error);
  if (raw == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer ", path, ": ",
                                                   Take(error),
                                                   "; give the tokenizer.model sgt-data wrote"));
  }
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp(
      static_cast<const sentencepiece::SentencePieceProcessor*>(raw),
      [free_processor = mod.free_processor](const sentencepiece::SentencePieceProcessor* p) {
        free_processor(const_cast<void*>(static_cast<const void*>(p)));
      });
  if (mod.eos_id(raw) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", path, " has no end-of-text (eos) piece; train it with eos_id >= 0"));
  }
  Tokenizer t;
  t.sp_ = std::move(sp);
  t.path_ = path;
  return t;
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(std::string_view text) const {
  int* ids = nullptr;
  size_t n = 0;
  char* error = nullptr;
  if (Module().encode(sp_.get(), text.data(), text.size(), &ids, &n, &error) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", path_, " cannot encode the text: ", Take(error)));
  }
  std::vector<int64_t> out(ids, ids + n);
  std::free(ids);
  return out;
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside tokenizer ",
                                                     path_, "'s vocabulary [0, ", vocab_size(),
                                                     "); the model and tokenizer do not match"));
    }
    narrow.push_back(static_cast<int>(id));
  }
  char* text = nullptr;
  size_t len = 0;
  char* error = nullptr;
  if (Module().decode(sp_.get(), narrow.data(), narrow.size(), &text, &len, &error) != 0) {
    return absl::InternalError(absl::StrCat("tokenizer ", path_, ": ", Take(error)));
  }
  std::string out(text, len);
  std::free(text);
  return out;
}

int64_t Tokenizer::eos_id() const { return Module().eos_id(sp_.get()); }
int64_t Tokenizer::vocab_size() const { return Module().piece_size(sp_.get()); }

absl::StatusOr<std::string> TokenizerOfTokenFile(const std::string& token_file,
                                                 const std::string& what) {
  absl::StatusOr<TokenFileInfo> info = ReadTokenFileInfo(token_file);
  if (!info.ok()) {
    return absl::Status(info.status().code(),
                        absl::StrCat(what, ": ", info.status().message()));
  }
  if (info->tokenizer.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", token_file, ".json names no tokenizer; set eval.tokenizer (or --tokenizer) to "
        "the tokenizer.model the data was encoded with"));
  }
  // A relative path is relative to the token file's directory.
  std::filesystem::path tokenizer(info->tokenizer);
  if (tokenizer.is_relative()) tokenizer = std::filesystem::path(token_file).parent_path() / tokenizer;
  return tokenizer.string();
}

}  // namespace sgt
