// SentencePiece behind Tokenizer (tokenizer.h).
#include "libsgt/text/tokenizer.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/token_file.h"

// SentencePiece's headers declare `namespace absl { using std::string_view; }`, which collides
// with Abseil's absl::string_view; renaming the namespace for the include keeps both intact (see
// libsgt/tools/sgt_data.cc). Every other header must come before this block.
#define absl sgt_sentencepiece_absl
#include <sentencepiece_processor.h>
#undef absl

namespace sgt {

absl::StatusOr<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer ", path, " does not exist; `sgt-data prepare` writes DIR/tokenizer.model"));
  }
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  if (const auto s = sp->Load(path); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer ", path, ": ",
                                                   s.ToString(),
                                                   "; give the tokenizer.model sgt-data wrote"));
  }
  if (sp->eos_id() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", path, " has no end-of-text (eos) piece; train it with eos_id >= 0"));
  }
  Tokenizer t;
  t.sp_ = std::move(sp);
  t.path_ = path;
  return t;
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  if (const auto s = sp_->Encode(text, &ids); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", path_, " cannot encode the text: ", s.ToString()));
  }
  return std::vector<int64_t>(ids.begin(), ids.end());
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
  std::string text;
  if (const auto s = sp_->Decode(narrow, &text); !s.ok()) {
    return absl::InternalError(absl::StrCat("tokenizer ", path_, ": ", s.ToString()));
  }
  return text;
}

int64_t Tokenizer::eos_id() const { return sp_->eos_id(); }
int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

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
