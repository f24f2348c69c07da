// gRPC adapters of the coordinator: CoordinatorService (clients) and WorkerService (workers).
// Thin: each handler checks the caller's token, converts, and calls Coordinator.
#ifndef SGT_SERVICES_COORDINATOR_SERVICE_H_
#define SGT_SERVICES_COORDINATOR_SERVICE_H_

#include <string>

#include "grpcpp/grpcpp.h"
#include "services/coordinator/coordinator.h"
#include "sgt/v1/coordinator.grpc.pb.h"
#include "sgt/v1/worker.grpc.pb.h"

namespace sgt::coord {

// Bearer tokens per role. Both empty: no authentication (the loopback default).
struct AuthConfig {
  std::string client_token;
  std::string worker_token;
  bool enabled() const { return !client_token.empty() || !worker_token.empty(); }
};

enum class Role { kClient, kWorker };

// OK when the call's "authorization: Bearer <token>" metadata holds the token of `role`;
// UNAUTHENTICATED when it is missing or matches no token, PERMISSION_DENIED when it is the
// other role's token.
grpc::Status Authorize(const grpc::ServerContext& ctx, const AuthConfig& auth, Role role);

grpc::Status ToGrpc(const absl::Status& s);

class ClientApi final : public v1::CoordinatorService::Service {
 public:
  ClientApi(Coordinator* c, Store* store, AuthConfig auth)
      : c_(c), store_(store), auth_(std::move(auth)) {}

  grpc::Status SubmitSweep(grpc::ServerContext* ctx, const v1::SubmitSweepRequest* req,
                           v1::SubmitSweepResponse* resp) override;
  grpc::Status ListSweeps(grpc::ServerContext* ctx, const v1::ListSweepsRequest* req,
                          v1::ListSweepsResponse* resp) override;
  grpc::Status GetSweep(grpc::ServerContext* ctx, const v1::GetSweepRequest* req,
                        v1::GetSweepResponse* resp) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx, const v1::ListRunsRequest* req,
                        v1::ListRunsResponse* resp) override;
  grpc::Status GetRun(grpc::ServerContext* ctx, const v1::GetRunRequest* req,
                      v1::GetRunResponse* resp) override;
  grpc::Status Pause(grpc::ServerContext* ctx, const v1::ActionRequest* req,
                     v1::ActionResponse* resp) override;
  grpc::Status Resume(grpc::ServerContext* ctx, const v1::ActionRequest* req,
                      v1::ActionResponse* resp) override;
  grpc::Status Snapshot(grpc::ServerContext* ctx, const v1::ActionRequest* req,
                        v1::ActionResponse* resp) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::ActionRequest* req,
                      v1::ActionResponse* resp) override;
  grpc::Status Edit(grpc::ServerContext* ctx, const v1::EditRequest* req,
                    v1::EditResponse* resp) override;
  grpc::Status Fork(grpc::ServerContext* ctx, const v1::ForkRequest* req,
                    v1::ForkResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::WatchResponse>* writer) override;
  grpc::Status ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest* req,
                           v1::ListWorkersResponse* resp) override;
  grpc::Status QueryTelemetry(grpc::ServerContext* ctx, const v1::TelemetryQuery* req,
                              grpc::ServerWriter<v1::TelemetryPage>* writer) override;

 private:
  Coordinator* c_;
  Store* store_;
  AuthConfig auth_;
};

class WorkerApi final : public v1::WorkerService::Service {
 public:
  WorkerApi(Coordinator* c, AuthConfig auth) : c_(c), auth_(std::move(auth)) {}

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Session(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream) override;

 private:
  Coordinator* c_;
  AuthConfig auth_;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_SERVICE_H_
