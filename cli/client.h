// sgtctl's connection to sgt-coordinator: the global options, and the client that turns them
// into a gRPC stub (plaintext, or TLS with --tls-ca), call contexts (deadline, bearer token) and
// the message of a failed call. The channel is made on first use, so that usage errors never
// wait on the network; nothing here connects before the first call. Tested in
// tests/cli/client_test.cc.
//
//   Client client(options);
//   absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
//   grpc::Status status = (*stub)->GetRun(client.Context().get(), request, &response);
#ifndef SGT_CLI_CLIENT_H_
#define SGT_CLI_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "sgt/v1/coordinator.grpc.pb.h"

namespace sgt::cli {

inline constexpr char kDefaultAddress[] = "localhost:7070";
inline constexpr double kDefaultTimeoutS = 30;

// sgtctl's global options (docs/cli.md), after the environment and the defaults.
struct Options {
  std::string address = kDefaultAddress;  // --coordinator, SGT_COORDINATOR
  std::string token_file;                 // --token-file, SGT_TOKEN_FILE
  std::string tls_ca_file;                // --tls-ca, SGT_TLS_CA
  double timeout_s = kDefaultTimeoutS;    // --timeout: the deadline of unary calls
  bool json = false;                      // --json: print the API's messages as JSON
};

// The coordinator connection of one command.
class Client {
 public:
  explicit Client(Options options);

  const Options& options() const { return options_; }

  // The stub, made on the first call; InvalidArgument naming the file and the fix when the token
  // or CA file cannot be read.
  absl::StatusOr<v1::CoordinatorService::Stub*> Stub();

  // A context with the bearer token (once Stub has read it) and, with `deadline`, the deadline
  // of --timeout (unary calls; the streams of watch and export have none).
  std::unique_ptr<grpc::ClientContext> Context(bool deadline = true) const;

  // The "sgtctl: ..." message of a failed call (without the prefix): DescribeRpcError
  // (cli/args.h) for this coordinator, token and deadline.
  std::string Describe(const grpc::Status& status) const;

 private:
  Options options_;
  std::string token_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;
};

}  // namespace sgt::cli

#endif  // SGT_CLI_CLIENT_H_
