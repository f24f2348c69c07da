// Tokenizer (tokenizer.h): SentencePiece through libsgt_spm.so (spm_shim.cc), loaded locally.
#include "libsgt/text/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/token_file.h"

namespace sgt {

// The shim's entry points (spm_shim.cc).
struct Tokenizer::Shim {
  void* (*load)(const char*, char*, size_t);
  void (*free)(void*);
  int64_t (*eos_id)(const void*);
  int64_t (*piece_size)(const void*);
  int64_t (*encode)(const void*, const char*, size_t, int32_t*, size_t, char*, size_t);
  int64_t (*decode)(const void*, const int32_t*, size_t, char*, size_t, char*, size_t);
};

namespace {

constexpr char kShimName[] = "libsgt_spm.so";
constexpr size_t kErrorSize = 512;

std::string ExecutableDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

// Loads the shim once per process. SentencePiece goes first, deep-bound and local, so that its
// references to protobuf resolve to its own copy; the shim, deep-bound too, then finds it.
absl::StatusOr<const Tokenizer::Shim*> LoadShimOnce();

template <typename F>
bool Bind(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

}  // namespace

namespace {

absl::StatusOr<const Tokenizer::Shim*> LoadShimOnce() {
  static std::once_flag once;
  static absl::StatusOr<const Tokenizer::Shim*> result = absl::UnknownError("not loaded");
  std::call_once(once, [] {
    const char* env = std::getenv("SGT_TOKENIZER_SHIM");
    const std::string path =
        env != nullptr && *env != '\0' ? std::string(env) : ExecutableDir() + "/" + kShimName;
    const int mode = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
    if (dlopen("libsentencepiece.so.0", mode) == nullptr) {
      result = absl::FailedPreconditionError(
          absl::StrCat("cannot load SentencePiece (libsentencepiece.so.0): ", dlerror(),
                       "; install libsentencepiece0 (scripts/install-deps does)"));
      return;
    }
    void* lib = dlopen(path.c_str(), mode);
    if (lib == nullptr) {
      result = absl::FailedPreconditionError(absl::StrCat(
          "cannot load the tokenizer library ", path, ": ", dlerror(),
          "; it is built with the tools (build/bin/", kShimName,
          "), or set SGT_TOKENIZER_SHIM to its path"));
      return;
    }
    auto* shim = new Tokenizer::Shim;
    if (!Bind(lib, "sgt_spm_load", &shim->load) || !Bind(lib, "sgt_spm_free", &shim->free) ||
        !Bind(lib, "sgt_spm_eos_id", &shim->eos_id) ||
        !Bind(lib, "sgt_spm_piece_size", &shim->piece_size) ||
        !Bind(lib, "sgt_spm_encode", &shim->encode) ||
        !Bind(lib, "sgt_spm_decode", &shim->decode)) {
      result = absl::FailedPreconditionError(absl::StrCat(
          path, " lacks the sgt_spm_* functions; rebuild it with this version of the tools"));
      delete shim;
      return;
    }
    result = shim;
  });
  return result;
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer ", path, " does not exist; `sgt-data prepare` writes DIR/tokenizer.model"));
  }
  absl::StatusOr<const Shim*> shim = LoadShimOnce();
  if (!shim.ok()) return shim.status();
  char error[kErrorSize] = "";
  void* model = (*shim)->load(path.c_str(), error, sizeof error);
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer ", path, ": ", error,
                                                   "; give the tokenizer.model sgt-data wrote"));
  }
  Tokenizer t;
  t.shim_ = *shim;
  t.model_ = std::shared_ptr<void>(model, (*shim)->free);
  t.path_ = path;
  t.eos_id_ = t.shim_->eos_id(model);
  t.vocab_size_ = t.shim_->piece_size(model);
  if (t.eos_id_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", path, " has no end-of-text (eos) piece; train it with eos_id >= 0"));
  }
  return t;
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size() + 16);
  char error[kErrorSize] = "";
  for (;;) {
    const int64_t n = shim_->encode(model_.get(), text.data(), text.size(), ids.data(), ids.size(),
                                    error, sizeof error);
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer ", path_, " cannot encode the text: ", error));
    }
    if (static_cast<size_t>(n) <= ids.size()) return std::vector<int64_t>(ids.begin(), ids.begin() + n);
    ids.resize(static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> Tokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int32_t> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside tokenizer ",
                                                     path_, "'s vocabulary [0, ", vocab_size_,
                                                     "); the model and tokenizer do not match"));
    }
    narrow.push_back(static_cast<int32_t>(id));
  }
  std::string text(ids.size() * 8 + 16, '\0');
  char error[kErrorSize] = "";
  for (;;) {
    const int64_t n = shim_->decode(model_.get(), narrow.data(), narrow.size(), text.data(),
                                    text.size(), error, sizeof error);
    if (n < 0) return absl::InternalError(absl::StrCat("tokenizer ", path_, ": ", error));
    if (static_cast<size_t>(n) <= text.size()) {
      text.resize(static_cast<size_t>(n));
      return text;
    }
    text.resize(static_cast<size_t>(n));
  }
}

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
