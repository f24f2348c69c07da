// The sgt-worker daemon (docs/worker.md), put together: the gRPC link to the coordinator
// (grpc_link.h) delivering to the supervisor of attempts (supervisor.h), both sharing the
// telemetry spool, and the shutdown that stops the children before the session closes.
//
//   sgt::worker::Worker w(options, std::move(spool));
//   w.Run();   // on the main thread; returns after Stop() (from another thread)
#ifndef SGT_SERVICES_WORKER_WORKER_H_
#define SGT_SERVICES_WORKER_WORKER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "prometheus/metric_family.h"
#include "services/worker/attempt_files.h"
#include "services/worker/devices.h"
#include "services/worker/grpc_link.h"
#include "services/worker/metrics.h"
#include "services/worker/spool.h"
#include "services/worker/supervisor.h"

namespace prometheus {
class Registry;
}

namespace sgt::worker {

struct WorkerOptions {
  std::string coordinator;     // host:port
  std::string name, hostname;  // name: stable across restarts (keeps the worker id)
  std::vector<sgt::v1::Device> devices;
  RendezvousOffer rendezvous;   // --rendezvous-host (default: hostname), --rendezvous-ports
  std::string checkpoint_root;  // absolute, resolved, writable
  std::string work_dir;         // absolute: runs/ (per attempt) and spool/
  std::string train_program;    // sgt-train
  std::string token;            // bearer token ("" = none)
  std::string tls_ca_pem;       // root certificates ("" = plaintext)
  double cancel_grace_s = 10;   // SIGTERM, then SIGKILL after this long
  double max_backoff_s = 5;     // reconnect backoff ceiling
  // Where the worker's counters and histograms go (docs/metrics.md); null: none. Outlives it.
  prometheus::Registry* metrics = nullptr;
};

class Worker {
 public:
  Worker(WorkerOptions options, std::unique_ptr<Spool> spool);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Connects (with backoff), serves the session, reconnects, until Stop(). Then stops the
  // children it still runs (reported lost, so that the coordinator re-queues them at once) and
  // gives their telemetry a few seconds to be acknowledged. Spawns children from the calling
  // thread, which must therefore be the one that lives longest (the main thread).
  void Run();
  // Asks Run to return. Safe from any thread (not from a signal handler).
  void Stop();

  // The worker's state gauges of docs/metrics.md (connected, devices, children, spool), read
  // at a scrape. Safe from any thread.
  std::vector<prometheus::MetricFamily> Gauges();
  // What the supervisor holds now (--exit-when-idle). Safe from any thread.
  Supervisor::Load Load() { return supervisor_.CurrentLoad(); }

 private:
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<WorkerMetrics> metrics_;  // null without options.metrics
  GrpcLink link_;
  Supervisor supervisor_;  // after link_ and spool_: it uses them until destroyed
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_WORKER_H_
