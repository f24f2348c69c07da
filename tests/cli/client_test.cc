// Tests for sgtctl's connection (cli/client.h): unreadable token and CA files are usage errors
// with the fix, the stub is made once, contexts carry the --timeout deadline, and the message
// of a failed call depends on whether a token was sent. No coordinator is needed: channels
// connect on the first call, and no call is made.
#include "cli/client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"

namespace sgt::cli {
namespace {

namespace fs = std::filesystem;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sgt_client_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ClientTest, APlaintextStubIsMadeOnceWithoutConnecting) {
  Options options;
  options.address = "127.0.0.1:1";  // nothing listens there; no call is made
  Client client(options);
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
  ASSERT_TRUE(stub.ok()) << stub.status();
  ASSERT_NE(*stub, nullptr);
  absl::StatusOr<v1::CoordinatorService::Stub*> again = client.Stub();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *stub);
  EXPECT_EQ(client.options().address, "127.0.0.1:1");
}

TEST_F(ClientTest, UnreadableTokenOrCaFilesAreErrorsThatSayWhatToFix) {
  Options token_options;
  token_options.token_file = (dir_ / "missing-token").string();
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = Client(token_options).Stub();
  EXPECT_EQ(stub.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(stub.status().message(), "token file: ")) << stub.status();
  EXPECT_TRUE(absl::EndsWith(stub.status().message(), "; fix --token-file or SGT_TOKEN_FILE"))
      << stub.status();

  Options ca_options;
  ca_options.tls_ca_file = (dir_ / "missing-ca.pem").string();
  stub = Client(ca_options).Stub();
  EXPECT_EQ(stub.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(stub.status().message(), "CA certificate: ")) << stub.status();
  EXPECT_TRUE(absl::StrContains(stub.status().message(), "missing-ca.pem")) << stub.status();
  EXPECT_TRUE(absl::EndsWith(stub.status().message(), "; fix --tls-ca or SGT_TLS_CA"))
      << stub.status();
}

TEST_F(ClientTest, ContextsCarryTheTimeoutDeadlineOnlyWhenAsked) {
  Options options;
  options.timeout_s = 7.5;
  Client client(options);
  auto before = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point deadline = client.Context()->deadline();
  auto after = std::chrono::system_clock::now();
  EXPECT_GE(deadline, before + std::chrono::milliseconds(7500));
  EXPECT_LE(deadline, after + std::chrono::milliseconds(7500));
  // Streams (watch, export) have no deadline.
  EXPECT_GT(client.Context(/*deadline=*/false)->deadline(), after + std::chrono::hours(24 * 365));
}

TEST_F(ClientTest, FailedCallsAreDescribedForThisCoordinatorAndToken) {
  Options options;
  options.address = "gpu-box:7070";
  Client no_token(options);
  EXPECT_TRUE(absl::StrContains(
      no_token.Describe(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused")),
      "cannot reach the coordinator at gpu-box:7070 (connection refused)"));
  EXPECT_TRUE(absl::StrContains(
      no_token.Describe(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "")), "no token was sent"));

  std::ofstream(dir_ / "token") << "s3cret\n";
  options.token_file = (dir_ / "token").string();
  Client with_token(options);
  ASSERT_TRUE(with_token.Stub().ok());  // reads the token
  EXPECT_TRUE(absl::StrContains(
      with_token.Describe(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token")),
      "the token sent was refused"));
  EXPECT_EQ(with_token.Describe(grpc::Status(grpc::StatusCode::NOT_FOUND, "run r9 not found")),
            "run r9 not found");
}

}  // namespace
}  // namespace sgt::cli
