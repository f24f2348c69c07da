// The run's SentencePiece tokenizer (the one `sgt-data prepare` trains), for the tools that turn
// text into tokens after training: task scoring (sgt-eval, a run's eval section) and sampling
// (sgt-generate). Torch-free, and SentencePiece stays out of this header.
//
// SentencePiece runs inside libsgt_spm.so (spm_shim.cc), loaded at the first Load with dlopen
// from beside the executable (or from $SGT_TOKENIZER_SHIM): Debian's libsentencepiece carries its
// own protobuf, which must not meet LibTorch's in the global symbol scope. Nothing links it.
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

  int64_t eos_id() const { return eos_id_; }
  int64_t vocab_size() const { return vocab_size_; }
  const std::string& path() const { return path_; }

  struct Shim;  // libsgt_spm.so's entry points (tokenizer.cc)

 private:
  const Shim* shim_ = nullptr;
  std::shared_ptr<void> model_;  // the shim's handle of the loaded model
  std::string path_;
  int64_t eos_id_ = -1, vocab_size_ = 0;
};

// The tokenizer a token file was made with: the path in its sidecar (`<token_file>.json`).
// `what` names the setting in errors ("data.train").
absl::StatusOr<std::string> TokenizerOfTokenFile(const std::string& token_file,
                                                 const std::string& what);

}  // namespace sgt

#endif  // SGT_TEXT_TOKENIZER_H_
