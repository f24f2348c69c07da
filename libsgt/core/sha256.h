// SHA-256 of buffers and files (OpenSSL's libcrypto), as lowercase hex.
#ifndef SGT_CORE_SHA256_H_
#define SGT_CORE_SHA256_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sgt {

std::string Sha256Hex(const void* data, size_t n);
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Incremental hashing for data produced in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  void Update(const void* data, size_t n);
  std::string HexDigest();  // finishes; call once
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgt

#endif  // SGT_CORE_SHA256_H_
