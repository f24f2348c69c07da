// Token files: raw little-endian uint16 or uint32 arrays (like OLMo's memmap files) with a JSON
// sidecar `<path>.json` holding dtype, vocabulary size, tokenizer, token count and sha256.
//
// TokenFile::Open memory-maps the array and checks it against its sidecar, so a file of the
// wrong dtype or size is refused at open with a message that says how to regenerate it.
//
//   auto f = TokenFile::Open("data/brown/train.u16");
//   if (!f.ok()) return f.status();
//   uint32_t t = (*f)->at(17);
#ifndef SGT_CORE_TOKEN_FILE_H_
#define SGT_CORE_TOKEN_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sgt {

enum class TokenDtype { kUint16, kUint32 };

// "uint16" / "uint32", as written in the sidecar.
const char* TokenDtypeName(TokenDtype dtype);
// Bytes per token: 2 or 4.
int TokenDtypeBytes(TokenDtype dtype);

struct TokenFileInfo {
  TokenDtype dtype = TokenDtype::kUint16;
  int64_t vocab_size = 0;
  int64_t count = 0;       // tokens in the file
  std::string tokenizer;   // path of the tokenizer model, as written by sgt-data
  std::string sha256;      // of the raw array bytes, lowercase hex
};

// "<path>.json"
std::string SidecarPath(const std::string& token_path);

// Writes the array (uint16 if vocab_size <= 65536, else uint32) and its sidecar, each through a
// temporary file and a rename. Fails if a token is >= vocab_size.
absl::Status WriteTokenFile(const std::string& path, const std::vector<uint32_t>& tokens,
                            int64_t vocab_size, const std::string& tokenizer);

// Reads only the sidecar.
absl::StatusOr<TokenFileInfo> ReadTokenFileInfo(const std::string& token_path);

class TokenFile {
 public:
  // Maps the file and checks its size against the sidecar's dtype and count. With
  // `verify_contents`, also checks the sha256 and that every token is < vocab_size.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(const std::string& path,
                                                         bool verify_contents = false);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const TokenFileInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  int64_t size() const { return info_.count; }
  uint32_t at(int64_t i) const;
  // Copies tokens [begin, begin + n) widened to int64 (what embedding lookups take).
  void CopyTo(int64_t begin, int64_t n, int64_t* out) const;

 private:
  TokenFile() = default;
  std::string path_;
  TokenFileInfo info_;
  const void* data_ = nullptr;
  size_t mapped_bytes_ = 0;
};

}  // namespace sgt

#endif  // SGT_CORE_TOKEN_FILE_H_
