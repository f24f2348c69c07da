// SHA-256 through OpenSSL's EVP interface, used to fingerprint token files so that a corrupted or
// silently replaced data file is caught before it trains a model.
#include "libsgt/core/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sgt {
namespace {

// Failures of EVP_* on SHA-256 mean libcrypto itself is broken or out of memory; there is no
// caller that could recover, so they abort with a message instead of returning a status.
void CheckEvp(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "sgt: OpenSSL %s failed for SHA-256\n", what);
    std::abort();
  }
}

std::string ToHex(const unsigned char* bytes, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    hex[2 * i] = kDigits[bytes[i] >> 4];
    hex[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return hex;
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  bool finished = false;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr) CheckEvp(0, "EVP_MD_CTX_new");
  CheckEvp(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(const void* data, size_t n) {
  if (impl_->finished) {
    std::fprintf(stderr, "sgt: Sha256::Update after HexDigest\n");
    std::abort();
  }
  if (n > 0) CheckEvp(EVP_DigestUpdate(impl_->ctx, data, n), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  if (impl_->finished) {
    std::fprintf(stderr, "sgt: Sha256::HexDigest called twice\n");
    std::abort();
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CheckEvp(EVP_DigestFinal_ex(impl_->ctx, digest, &len), "EVP_DigestFinal_ex");
  impl_->finished = true;
  return ToHex(digest, len);
}

std::string Sha256Hex(const void* data, size_t n) {
  Sha256 h;
  h.Update(data, n);
  return h.HexDigest();
}

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(path, ": cannot open for hashing: ", std::strerror(err)));
  }
  // 1 MiB chunks: large enough that the syscall count does not matter, small enough that hashing
  // a multi-GB corpus does not need the corpus in memory.
  std::vector<unsigned char> buf(1 << 20);
  Sha256 h;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.Update(buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    return absl::DataLossError(
        absl::StrCat(path, ": read error while hashing: ", std::strerror(err)));
  }
  return h.HexDigest();
}

}  // namespace sgt
