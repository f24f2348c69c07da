// Token files: a raw little-endian uint16/uint32 array plus a JSON sidecar (`<path>.json`).
//
// The array stays a plain array so it can be memory-mapped and indexed without parsing; the
// sidecar carries what the array cannot say about itself (dtype, vocabulary, count, checksum),
// in the spirit of llm.c's data-file header. Everything a reader could get wrong (a truncated
// copy, a uint32 file read as uint16, a file from another tokenizer) is refused at Open with a
// message naming the file and the command that regenerates it.
#include "libsgt/core/token_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/sha256.h"
#include "nlohmann/json.hpp"

namespace sgt {

// The arrays are the in-memory representation written straight to disk; a big-endian host would
// read every token byte-swapped. All supported hosts (x86-64, aarch64 Linux) are little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token files are little-endian; this host is not");

namespace {

constexpr char kFormat[] = "sgt-tokens";
constexpr int kVersion = 1;
constexpr char kRegenerate[] = "regenerate it with `sgt-data prepare` (or `sgt-data encode`)";

absl::Status ErrnoStatus(int err, const std::string& message) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(message, ": ", std::strerror(err)));
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A new file under `path`'s directory that Commit() renames onto `path`. Until then the final
// name keeps whatever it had, so a crash never leaves a half-written file there.
class TempFile {
 public:
  explicit TempFile(std::string path)
      : path_(std::move(path)), temp_(absl::StrCat(path_, ".tmp.", getpid())) {}
  ~TempFile() {
    if (fd_ >= 0) close(fd_);
    if (!committed_) unlink(temp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  absl::Status Open() {
    fd_ = open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus(errno, absl::StrCat(temp_, ": cannot create"));
    return absl::OkStatus();
  }

  absl::Status Write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat(temp_, ": write failed"));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return absl::OkStatus();
  }

  // Flushes the data to disk and closes; the rename comes separately so that a pair of files can
  // both be complete on disk before either appears under its final name.
  absl::Status Finish() {
    if (fsync(fd_) != 0) return ErrnoStatus(errno, absl::StrCat(temp_, ": fsync failed"));
    const int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return ErrnoStatus(errno, absl::StrCat(temp_, ": close failed"));
    return absl::OkStatus();
  }

  absl::Status Commit() {
    if (rename(temp_.c_str(), path_.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("cannot rename ", temp_, " to ", path_));
    }
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Makes the renames themselves durable.
void SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // Best effort: the data is already synced; only the name could be lost.
  fsync(fd);
  close(fd);
}

template <typename T>
absl::Status WriteArray(TempFile& file, Sha256& hash, const std::vector<uint32_t>& tokens) {
  // Converted a chunk at a time so writing a corpus does not need a second full copy of it.
  constexpr size_t kChunk = 1 << 20;
  std::vector<T> buf;
  buf.reserve(std::min(kChunk, tokens.size()));
  for (size_t begin = 0; begin < tokens.size(); begin += kChunk) {
    const size_t end = std::min(tokens.size(), begin + kChunk);
    buf.assign(tokens.begin() + static_cast<std::ptrdiff_t>(begin),
               tokens.begin() + static_cast<std::ptrdiff_t>(end));
    const size_t bytes = buf.size() * sizeof(T);
    hash.Update(buf.data(), bytes);
    if (absl::Status s = file.Write(buf.data(), bytes); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool IsLowerHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

const char* TokenDtypeName(TokenDtype dtype) {
  return dtype == TokenDtype::kUint16 ? "uint16" : "uint32";
}

int TokenDtypeBytes(TokenDtype dtype) { return dtype == TokenDtype::kUint16 ? 2 : 4; }

std::string SidecarPath(const std::string& token_path) { return token_path + ".json"; }

absl::Status WriteTokenFile(const std::string& path, const std::vector<uint32_t>& tokens,
                            int64_t vocab_size, const std::string& tokenizer) {
  if (vocab_size <= 0 || vocab_size > (int64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size ", vocab_size, " is outside [1, 2^32]"));
  }
  if (tokens.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": refusing to write ", tokens.size(),
                     " tokens; a token file needs at least 2 (an input and its target)"));
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (static_cast<int64_t>(tokens[i]) >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", tokens[i], " at offset ", i,
                                                     " is >= vocab_size ", vocab_size,
                                                     "; the tokenizer and vocab_size disagree"));
    }
  }
  const TokenDtype dtype = vocab_size <= 65536 ? TokenDtype::kUint16 : TokenDtype::kUint32;

  TempFile array(path);
  if (absl::Status s = array.Open(); !s.ok()) return s;
  Sha256 hash;
  absl::Status written = dtype == TokenDtype::kUint16 ? WriteArray<uint16_t>(array, hash, tokens)
                                                      : WriteArray<uint32_t>(array, hash, tokens);
  if (!written.ok()) return written;
  if (absl::Status s = array.Finish(); !s.ok()) return s;

  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["dtype"] = TokenDtypeName(dtype);
  j["vocab_size"] = vocab_size;
  j["count"] = static_cast<int64_t>(tokens.size());
  j["tokenizer"] = tokenizer;
  j["sha256"] = hash.HexDigest();
  const std::string text = j.dump(2) + "\n";
  const std::string sidecar_path = SidecarPath(path);
  TempFile sidecar(sidecar_path);
  if (absl::Status s = sidecar.Open(); !s.ok()) return s;
  if (absl::Status s = sidecar.Write(text.data(), text.size()); !s.ok()) return s;
  if (absl::Status s = sidecar.Finish(); !s.ok()) return s;

  // The old sidecar goes first: between the two renames a reader then sees "no sidecar" (refused
  // with the fix) rather than a new array described by the old sidecar.
  if (unlink(sidecar_path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat(sidecar_path, ": cannot remove the old sidecar"));
  }
  if (absl::Status s = array.Commit(); !s.ok()) return s;
  if (absl::Status s = sidecar.Commit(); !s.ok()) return s;
  SyncDir(ParentDir(path));
  return absl::OkStatus();
}

absl::StatusOr<TokenFileInfo> ReadTokenFileInfo(const std::string& token_path) {
  const std::string sidecar_path = SidecarPath(token_path);
  std::ifstream in(sidecar_path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        token_path, ": no sidecar ", sidecar_path,
        " (sgt-data writes every token file together with its sidecar); run `sgt-data prepare` "
        "to create it, or `sgt-data encode` for a single text file"));
  }
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(sidecar_path, ": ", what, "; ", kRegenerate));
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("format") || !j["format"].is_string() || j["format"] != kFormat) {
    return bad(absl::StrCat("\"format\" is not \"", kFormat, "\" (not an sgt token-file sidecar)"));
  }
  if (!j.contains("version") || !j["version"].is_number_integer()) {
    return bad("no integer \"version\"");
  }
  if (j["version"].get<int64_t>() != kVersion) {
    return bad(absl::StrCat("version ", j["version"].get<int64_t>(),
                            " is not supported (this build reads version ", kVersion, ")"));
  }
  TokenFileInfo info;
  if (!j.contains("dtype") || !j["dtype"].is_string()) return bad("no string \"dtype\"");
  const std::string dtype = j["dtype"].get<std::string>();
  if (dtype == "uint16") {
    info.dtype = TokenDtype::kUint16;
  } else if (dtype == "uint32") {
    info.dtype = TokenDtype::kUint32;
  } else {
    return bad(absl::StrCat("unknown dtype \"", dtype, "\" (expected uint16 or uint32)"));
  }
  if (!j.contains("vocab_size") || !j["vocab_size"].is_number_integer()) {
    return bad("no integer \"vocab_size\"");
  }
  info.vocab_size = j["vocab_size"].get<int64_t>();
  if (info.vocab_size <= 0) {
    return bad(absl::StrCat("vocab_size ", info.vocab_size, " is not positive"));
  }
  if (info.dtype == TokenDtype::kUint16 && info.vocab_size > 65536) {
    return bad(absl::StrCat("vocab_size ", info.vocab_size, " does not fit dtype uint16"));
  }
  if (!j.contains("count") || !j["count"].is_number_integer()) return bad("no integer \"count\"");
  info.count = j["count"].get<int64_t>();
  if (info.count < 0) return bad(absl::StrCat("count ", info.count, " is negative"));
  // The array's size in bytes must be a number: count x bytes per token must not overflow.
  const int64_t max_count = std::numeric_limits<int64_t>::max() / TokenDtypeBytes(info.dtype);
  if (info.count > max_count) {
    return bad(absl::StrCat("count ", info.count, " is more ", dtype,
                            " tokens than a file can hold (at most ", max_count, ")"));
  }
  if (!j.contains("tokenizer") || !j["tokenizer"].is_string()) {
    return bad("no string \"tokenizer\"");
  }
  info.tokenizer = j["tokenizer"].get<std::string>();
  if (!j.contains("sha256") || !j["sha256"].is_string()) return bad("no string \"sha256\"");
  info.sha256 = j["sha256"].get<std::string>();
  if (info.sha256.size() != 64 || !IsLowerHex(info.sha256)) {
    return bad("\"sha256\" is not 64 lowercase hex digits");
  }
  return info;
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(const std::string& path,
                                                           bool verify_contents) {
  absl::StatusOr<TokenFileInfo> info = ReadTokenFileInfo(path);
  if (!info.ok()) return info.status();
  const int width = TokenDtypeBytes(info->dtype);

  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file (its sidecar ",
                                              SidecarPath(path), " exists); ", kRegenerate));
    }
    return ErrnoStatus(err, absl::StrCat(path, ": cannot open"));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat(path, ": cannot stat"));
  }
  const int64_t actual = st.st_size;
  const int64_t expected = info->count * width;
  if (actual != expected) {
    close(fd);
    std::string hint;
    const int other = 6 - width;  // the other dtype's width
    if (info->count <= std::numeric_limits<int64_t>::max() / other &&
        actual == info->count * other) {
      hint =
          absl::StrCat(" (the size is exactly ", info->count, " ", other == 2 ? "uint16" : "uint32",
                       " tokens: the array and sidecar disagree on dtype)");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file is ", actual, " bytes but its sidecar says ", info->count, " ",
        TokenDtypeName(info->dtype), " tokens = ", expected,
        " bytes; the file is truncated or of the wrong dtype", hint, ". ", kRegenerate));
  }
  if (info->count < 2) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds ", info->count,
                     " tokens; training needs at least 2 (an input and its target)"));
  }

  void* data = mmap(nullptr, static_cast<size_t>(actual), PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  close(fd);  // the mapping keeps its own reference
  if (data == MAP_FAILED) return ErrnoStatus(err, absl::StrCat(path, ": mmap failed"));
  // Training windows are drawn at random offsets, so read-ahead would mostly fetch unused pages.
  madvise(data, static_cast<size_t>(actual), MADV_RANDOM);

  std::unique_ptr<TokenFile> file(new TokenFile());
  file->path_ = path;
  file->info_ = *std::move(info);
  file->data_ = data;
  file->mapped_bytes_ = static_cast<size_t>(actual);

  if (verify_contents) {
    const std::string sha = Sha256Hex(file->data_, file->mapped_bytes_);
    if (sha != file->info_.sha256) {
      return absl::DataLossError(absl::StrCat(
          path, ": sha256 ", sha, " does not match its sidecar's ", file->info_.sha256,
          "; the file is corrupted or was modified after it was written. ", kRegenerate));
    }
    for (int64_t i = 0; i < file->info_.count; ++i) {
      const uint32_t t = file->at(i);
      if (static_cast<int64_t>(t) >= file->info_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": token ", t, " at offset ", i,
                                                       " is >= the sidecar's vocab_size ",
                                                       file->info_.vocab_size, "; ", kRegenerate));
      }
    }
  }
  return file;
}

TokenFile::~TokenFile() {
  if (data_ != nullptr) munmap(const_cast<void*>(data_), mapped_bytes_);
}

uint32_t TokenFile::at(int64_t i) const {
  // Cheap next to the page fault it may cause, and an out-of-range read would return garbage from
  // beyond the mapping instead of failing.
  if (i < 0 || i >= info_.count) {
    std::fprintf(stderr, "sgt: TokenFile::at(%lld) out of range [0, %lld) in %s\n",
                 static_cast<long long>(i), static_cast<long long>(info_.count), path_.c_str());
    std::abort();
  }
  if (info_.dtype == TokenDtype::kUint16) return static_cast<const uint16_t*>(data_)[i];
  return static_cast<const uint32_t*>(data_)[i];
}

void TokenFile::CopyTo(int64_t begin, int64_t n, int64_t* out) const {
  if (begin < 0 || n < 0 || begin > info_.count - n) {
    std::fprintf(stderr, "sgt: TokenFile::CopyTo(%lld, %lld) out of range [0, %lld) in %s\n",
                 static_cast<long long>(begin), static_cast<long long>(n),
                 static_cast<long long>(info_.count), path_.c_str());
    std::abort();
  }
  if (info_.dtype == TokenDtype::kUint16) {
    const uint16_t* src = static_cast<const uint16_t*>(data_) + begin;
    std::copy(src, src + n, out);
  } else {
    const uint32_t* src = static_cast<const uint32_t*>(data_) + begin;
    std::copy(src, src + n, out);
  }
}

}  // namespace sgt
