// The worker's link to the coordinator over gRPC (docs/worker.md, "Leases, reconnects and
// shutdown"): Register with backoff, one bidirectional Session stream at a time (Hello,
// heartbeats, a coordinator gone silent given up), the replay of the telemetry spool on every
// new session and for batches left unacknowledged, and reconnects, until stopped.
//
//   GrpcLink link(options, spool);
//   link.Run(handler);   // on the main thread; returns after Stop(), once the session is over
//   (another thread) link.Stop(); ... drain ...; link.Close();
#ifndef SGT_SERVICES_WORKER_GRPC_LINK_H_
#define SGT_SERVICES_WORKER_GRPC_LINK_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/worker/devices.h"
#include "services/worker/link.h"
#include "services/worker/metrics.h"
#include "services/worker/spool.h"
#include "sgt/v1/worker.grpc.pb.h"

namespace sgt::worker {

struct LinkOptions {
  std::string coordinator;               // host:port
  std::string name, hostname;            // name: stable across restarts (keeps the worker id)
  std::vector<sgt::v1::Device> devices;  // offered at Register
  RendezvousOffer rendezvous;            // offered at Register (data-parallel runs)
  std::string token;                     // bearer token ("" = none)
  std::string tls_ca_pem;                // root certificates ("" = plaintext)
  double max_backoff_s = 5;              // reconnect backoff ceiling
  WorkerMetrics* metrics = nullptr;      // null: none; outlives the link
};

class GrpcLink : public Link {
 public:
  // `spool` (replayed on every session) outlives the link. Connects nothing yet.
  GrpcLink(LinkOptions options, Spool& spool);
  ~GrpcLink() override;
  GrpcLink(const GrpcLink&) = delete;
  GrpcLink& operator=(const GrpcLink&) = delete;

  // Connects (with backoff), serves the session, delivering every CoordinatorMessage to
  // `handler` on the calling thread, and reconnects, until Stop(); then returns once no session
  // is open (Close() ends the one that stays open for the drain).
  void Run(LinkHandler& handler);
  // No session opens from now on: a Register in flight is cancelled, heartbeats stop. The
  // current session stays open. Safe from any thread (not from a signal handler).
  void Stop();
  // Stop(), and end the current session (and one that opens after this, if any).
  void Close();

  bool Send(const sgt::v1::WorkerMessage& m) override;
  // Whether a session is open now (for the gauges).
  bool Connected();

 private:
  struct Conn;

  std::shared_ptr<Conn> Connect(std::string* error);
  void Serve(const std::shared_ptr<Conn>& conn);
  void StartReplay();
  void Replay();
  void Tick();

  const LinkOptions o_;
  Spool& spool_;
  std::shared_ptr<grpc::Channel> channel_;
  LinkHandler* handler_ = nullptr;  // set by Run
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;  // stopping_
  std::shared_ptr<Conn> conn_;
  bool closed_ = false;  // Close was called: no session may stay open
  std::string worker_id_;
  int heartbeat_s_ = 10;
  double last_received_ = 0;  // monotonic seconds of the last message from the coordinator
  double last_heartbeat_ = 0;
  double last_resend_ = 0;
  grpc::ClientContext* registering_ = nullptr;  // a Register in flight (Stop cancels it)
  bool replaying_ = false;
  std::thread replay_thread_;  // sends the spool while the session reads acks
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_GRPC_LINK_H_
