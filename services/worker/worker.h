// The sgt-worker daemon (docs/worker.md): registers with a coordinator, holds its session,
// runs each attempt it is given as an sgt-train child, relays the child's events as telemetry
// through an on-disk spool, and reports how each attempt ended.
//
//   sgt::worker::Worker w(options);
//   std::thread t([&] { w.Run(); });   // returns after Stop()
//   ... w.Stop();
#ifndef SGT_SERVICES_WORKER_WORKER_H_
#define SGT_SERVICES_WORKER_WORKER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/worker/child.h"
#include "services/worker/events.h"
#include "services/worker/spool.h"
#include "prometheus/metric_family.h"
#include "sgt/v1/worker.grpc.pb.h"

namespace prometheus {
class Registry;
}

namespace sgt::worker {

// "" when `dir` can be created and written in, else why not (for the startup checks).
std::string CheckWritable(const std::string& dir);

struct WorkerOptions {
  std::string coordinator;     // host:port
  std::string name, hostname;  // name: stable across restarts (keeps the worker id)
  std::vector<sgt::v1::Device> devices;
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

 private:
  struct Conn;
  struct Attempt;
  struct Counters;

  // Session.
  std::shared_ptr<Conn> Connect(std::string* error);
  void Serve(const std::shared_ptr<Conn>& conn);
  bool Send(const sgt::v1::WorkerMessage& m);
  void Handle(const sgt::v1::CoordinatorMessage& m);
  // The attempts this worker holds (until their final status is acknowledged); with
  // unreported_only, not those whose final status went on the current session.
  std::vector<sgt::v1::RunRef> Held(bool unreported_only = false);
  void Replay();
  void StartReplay();
  void Tick();

  // Attempts.
  void Start(const sgt::v1::StartRun& s);
  void Command(const sgt::v1::RunCommand& c);
  void Relay(std::shared_ptr<Attempt> a);
  void Flush(Attempt& a, sgt::v1::TelemetryBatch& batch);
  void Ended(Attempt& a, int wait_status, const EventTranslator& t);
  void MaybeSendFinal(const std::string& key);
  void Reject(const sgt::v1::StartRun& s, sgt::v1::RunState state, const std::string& reason);
  void StopChildren();

  const WorkerOptions o_;
  std::unique_ptr<Spool> spool_;
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> stopping_{false};
  std::thread ticker_;

  std::mutex mu_;
  std::condition_variable cv_;  // stopping_, attempts_ changes
  std::shared_ptr<Conn> conn_;
  std::string worker_id_;
  int heartbeat_s_ = 10;
  double last_received_ = 0;  // monotonic seconds of the last message from the coordinator
  double last_heartbeat_ = 0;
  double last_resend_ = 0;
  std::map<std::string, std::shared_ptr<Attempt>> attempts_;  // "r3/2"
  std::map<std::string, std::string> busy_;                   // device id -> attempt key
  bool shut_down_ = false;  // the children are stopped: no session may stay open
  grpc::ClientContext* registering_ = nullptr;  // a Register in flight (Stop cancels it)
  bool replaying_ = false;
  std::unique_ptr<Counters> counters_;  // null without options.metrics
  std::thread replay_thread_;  // sends the spool while the session reads acks
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_WORKER_H_
