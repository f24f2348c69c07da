// sgtctl's connection to sgt-coordinator (cli/client.h).
#include "cli/client.h"

#include <chrono>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/args.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace sgt::cli {

Client::Client(Options options) : options_(std::move(options)) {}

absl::StatusOr<v1::CoordinatorService::Stub*> Client::Stub() {
  if (stub_ != nullptr) return stub_.get();
  if (!options_.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(options_.token_file);
    if (!token.ok()) return token.status();
    token_ = *token;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!options_.tls_ca_file.empty()) {
    absl::StatusOr<std::string> pem = ReadWholeFile(options_.tls_ca_file);
    if (!pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CA certificate: ", pem.status().message(), "; fix --tls-ca or SGT_TLS_CA"));
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *pem;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments arguments;
  // A sweep of thousands of runs, each with its configuration, is more than gRPC's 4 MiB
  // default.
  arguments.SetMaxReceiveMessageSize(-1);
  stub_ = v1::CoordinatorService::NewStub(
      grpc::CreateCustomChannel(options_.address, credentials, arguments));
  return stub_.get();
}

std::unique_ptr<grpc::ClientContext> Client::Context(bool deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (deadline) {
    context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000)));
  }
  if (!token_.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  return context;
}

std::string Client::Describe(const grpc::Status& status) const {
  return DescribeRpcError(status, options_.address, !token_.empty(), options_.timeout_s);
}

}  // namespace sgt::cli
