// The run's SentencePiece tokenizer (the one `sgt-data prepare` trains), for the tools that turn
// text into tokens after training: task scoring (sgt-eval, a run's eval section) and sampling
// (sgt-generate). Torch-free, and SentencePiece stays out of this header.
//
//   absl::StatusOr<Tokenizer> tok = Tokenizer::Load("data/brown/tokenizer.model");
//   absl::StatusOr<std::vector<int64_t>> ids = tok->Encode("The jury said");
#ifndef SGT_TEXT_TOKENIZER_H_
#define SGT_TEXT_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sgt {

class Tokenizer {
 public:
  // Loads a SentencePiece model. NotFound names the path; a model without an end-of-text piece
  // is refused (documents end with it in the token files, and scoring starts a text with it).
  static absl::StatusOr<Tokenizer> Load(const std::string& path);

  // The ids of `text`, as `sgt-data` encodes a sentence: SentencePiece's normalisation trims and
  // collapses whitespace and adds a leading word boundary, so Encode(" Paris") == Encode("Paris").
  absl::StatusOr<std::vector<int64_t>> Encode(std::string_view text) const;
  // The text of `ids`; ids outside the vocabulary are refused.
  absl::StatusOr<std::string> Decode(const std::vector<int64_t>& ids) const;

  int64_t eos_id() const;
  int64_t vocab_size() const;
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
};

// The tokenizer a token file was made with: the path in its sidecar (`<token_file>.json`).
// `what` names the setting in errors ("data.train").
absl::StatusOr<std::string> TokenizerOfTokenFile(const std::string& token_file,
                                                 const std::string& what);

}  // namespace sgt

#endif  // SGT_TEXT_TOKENIZER_H_
