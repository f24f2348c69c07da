// Tests for token files: round trips in both dtypes and every way a file on disk can disagree with
// its sidecar, each of which must be refused with a message that names the file.
#include "libsgt/core/token_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "libsgt/core/sha256.h"
#include "nlohmann/json.hpp"

namespace sgt {
namespace {

// The tests link gtest without gmock, so substring checks are a predicate instead of HasSubstr.
::testing::AssertionResult Contains(absl::string_view text, absl::string_view part) {
  if (text.find(part) != absl::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/token_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void WriteAll(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }

  std::string dir_;
};

TEST_F(TokenFileTest, RoundTripUint16) {
  const std::vector<uint32_t> tokens = {0, 1, 65535, 300, 7, 42};
  const std::string path = Path("a.u16");
  ASSERT_TRUE(WriteTokenFile(path, tokens, 65536, "tok.model").ok());
  EXPECT_EQ(std::filesystem::file_size(path), tokens.size() * 2);

  auto f = TokenFile::Open(path, /*verify_contents=*/true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->info().dtype, TokenDtype::kUint16);
  EXPECT_EQ((*f)->info().vocab_size, 65536);
  EXPECT_EQ((*f)->info().tokenizer, "tok.model");
  EXPECT_EQ((*f)->info().sha256, Sha256File(path).value());
  ASSERT_EQ((*f)->size(), 6);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ((*f)->at(i), tokens[i]) << i;
}

TEST_F(TokenFileTest, RoundTripUint32) {
  const std::vector<uint32_t> tokens = {70000, 0, 65536, 99999, 5};
  const std::string path = Path("a.u32");
  ASSERT_TRUE(WriteTokenFile(path, tokens, 100000, "tok.model").ok());
  EXPECT_EQ(std::filesystem::file_size(path), tokens.size() * 4);

  auto f = TokenFile::Open(path, /*verify_contents=*/true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->info().dtype, TokenDtype::kUint32);
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ((*f)->at(i), tokens[i]) << i;

  const nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  EXPECT_EQ(sidecar["format"], "sgt-tokens");
  EXPECT_EQ(sidecar["version"], 1);
  EXPECT_EQ(sidecar["dtype"], "uint32");
  EXPECT_EQ(sidecar["count"], 5);
}

TEST_F(TokenFileTest, RewriteReplacesAndLeavesNoTempFiles) {
  const std::string path = Path("r.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2, 3}, 10, "t").ok());
  ASSERT_TRUE(WriteTokenFile(path, {4, 5}, 10, "t").ok());
  auto f = TokenFile::Open(path, true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->size(), 2);
  EXPECT_EQ((*f)->at(0), 4u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 2);
}

TEST_F(TokenFileTest, TruncatedFileRefusedWithPathAndSizes) {
  const std::string path = Path("t.u16");
  ASSERT_TRUE(WriteTokenFile(path, std::vector<uint32_t>(100, 3), 50, "t").ok());
  ASSERT_EQ(truncate(path.c_str(), 150), 0);
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(f.status().message(), path));
  EXPECT_TRUE(Contains(f.status().message(), "150 bytes"));
  EXPECT_TRUE(Contains(f.status().message(), "200 bytes"));
  EXPECT_TRUE(Contains(f.status().message(), "uint16"));
  EXPECT_TRUE(Contains(f.status().message(), "truncated"));
  EXPECT_TRUE(Contains(f.status().message(), "sgt-data prepare"));
}

TEST_F(TokenFileTest, WrongDtypeRefused) {
  // A uint32 array whose sidecar claims uint16 with the same count: twice the expected size.
  const std::string path = Path("w.bin");
  ASSERT_TRUE(WriteTokenFile(path, {70000, 1, 2, 3}, 80000, "t").ok());
  nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  sidecar["dtype"] = "uint16";
  sidecar["vocab_size"] = 60000;
  WriteAll(SidecarPath(path), sidecar.dump());
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(f.status().message(), "16 bytes"));
  EXPECT_TRUE(Contains(f.status().message(), "8 bytes"));
  EXPECT_TRUE(Contains(f.status().message(), "dtype"));
}

TEST_F(TokenFileTest, UnknownDtypeAndFormatRefused) {
  const std::string path = Path("d.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2}, 10, "t").ok());
  nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  sidecar["dtype"] = "int8";
  WriteAll(SidecarPath(path), sidecar.dump());
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(Contains(f.status().message(), "int8"));

  sidecar["dtype"] = "uint16";
  sidecar["format"] = "numpy";
  WriteAll(SidecarPath(path), sidecar.dump());
  EXPECT_TRUE(Contains(TokenFile::Open(path).status().message(), "format"));

  WriteAll(SidecarPath(path), "{not json");
  EXPECT_EQ(TokenFile::Open(path).status().code(), absl::StatusCode::kInvalidArgument);
}

// Found by fuzz/fuzz_token_file: the file size expected, count x bytes per token, overflowed
// (undefined behaviour) for a count near 2^63.
TEST_F(TokenFileTest, CountPastAnyFileSizeRefused) {
  const std::string path = Path("c.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2}, 10, "t").ok());
  nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  sidecar["count"] = int64_t{1} << 62;
  WriteAll(SidecarPath(path), sidecar.dump());
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(f.status().message(), "count 4611686018427387904 is more uint16 tokens"));
  EXPECT_TRUE(Contains(f.status().message(), SidecarPath(path)));
}

TEST_F(TokenFileTest, MissingSidecarRefused) {
  const std::string path = Path("m.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2, 3}, 10, "t").ok());
  ASSERT_EQ(std::remove(SidecarPath(path).c_str()), 0);
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(f.status().message(), path));
  EXPECT_TRUE(Contains(f.status().message(), "run `sgt-data prepare` to create it"));
}

TEST_F(TokenFileTest, MissingArrayRefused) {
  const std::string path = Path("n.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2, 3}, 10, "t").ok());
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_EQ(TokenFile::Open(path).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TokenFileTest, CorruptedByteDetectedOnlyWhenVerifying) {
  const std::string path = Path("c.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2, 3, 4, 5}, 10, "t").ok());
  std::string bytes = ReadAll(path);
  bytes[4] ^= 0x01;  // token 2 becomes 3: still in range, so only the checksum can tell
  WriteAll(path, bytes);
  EXPECT_TRUE(TokenFile::Open(path, /*verify_contents=*/false).ok());
  auto f = TokenFile::Open(path, /*verify_contents=*/true);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(f.status().message(), path));
  EXPECT_TRUE(Contains(f.status().message(), "sha256"));
}

TEST_F(TokenFileTest, TokenOutOfVocabInFileNamesOffset) {
  // A consistent checksum but a sidecar vocab that is too small: only the range scan catches it.
  const std::string path = Path("v.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2, 9, 3}, 10, "t").ok());
  nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  sidecar["vocab_size"] = 5;
  WriteAll(SidecarPath(path), sidecar.dump());
  auto f = TokenFile::Open(path, true);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(f.status().message(), "token 9 at offset 2"));
}

TEST_F(TokenFileTest, TokenOutOfVocabRefusedOnWrite) {
  const std::string path = Path("x.u16");
  absl::Status s = WriteTokenFile(path, {1, 2, 10, 3}, 10, "t");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "offset 2"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(SidecarPath(path)));
}

TEST_F(TokenFileTest, TooFewTokensRefused) {
  EXPECT_FALSE(WriteTokenFile(Path("s.u16"), {1}, 10, "t").ok());
  // A one-token file written by hand (sidecar consistent) is refused at open.
  const std::string path = Path("one.u16");
  ASSERT_TRUE(WriteTokenFile(path, {1, 2}, 10, "t").ok());
  nlohmann::json sidecar = nlohmann::json::parse(ReadAll(SidecarPath(path)));
  sidecar["count"] = 1;
  WriteAll(SidecarPath(path), sidecar.dump());
  ASSERT_EQ(truncate(path.c_str(), 2), 0);
  auto f = TokenFile::Open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(Contains(f.status().message(), "at least 2"));
}

TEST_F(TokenFileTest, CopyToWidens) {
  const std::string p16 = Path("w.u16");
  ASSERT_TRUE(WriteTokenFile(p16, {10, 65535, 20, 30}, 65536, "t").ok());
  auto f16 = TokenFile::Open(p16);
  ASSERT_TRUE(f16.ok()) << f16.status();
  std::vector<int64_t> out(3, -1);
  (*f16)->CopyTo(1, 3, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{65535, 20, 30}));

  const std::string p32 = Path("w.u32");
  ASSERT_TRUE(WriteTokenFile(p32, {4000000000u, 1, 2}, int64_t{1} << 32, "t").ok());
  auto f32 = TokenFile::Open(p32, true);
  ASSERT_TRUE(f32.ok()) << f32.status();
  std::vector<int64_t> out32(2, -1);
  (*f32)->CopyTo(0, 2, out32.data());
  EXPECT_EQ(out32, (std::vector<int64_t>{4000000000LL, 1}));
}

TEST(TokenFileSha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a", 1);
  h.Update("bc", 2);
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc", 3));
  EXPECT_EQ(Sha256File("/nonexistent/file").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sgt
