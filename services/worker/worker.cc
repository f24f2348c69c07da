// The sgt-worker daemon put together: link, supervisor, spool, metrics, shutdown (worker.h).
#include "services/worker/worker.h"

#include <thread>
#include <utility>

namespace sgt::worker {

namespace {

LinkOptions LinkOptionsOf(const WorkerOptions& o, WorkerMetrics* metrics) {
  LinkOptions l;
  l.coordinator = o.coordinator;
  l.name = o.name;
  l.hostname = o.hostname;
  l.devices = o.devices;
  l.rendezvous = o.rendezvous;
  if (l.rendezvous.host.empty()) l.rendezvous.host = o.hostname;
  l.token = o.token;
  l.tls_ca_pem = o.tls_ca_pem;
  l.max_backoff_s = o.max_backoff_s;
  l.metrics = metrics;
  return l;
}

SupervisorOptions SupervisorOptionsOf(const WorkerOptions& o, WorkerMetrics* metrics) {
  SupervisorOptions s;
  s.devices = o.devices;
  s.attempt.checkpoint_root = o.checkpoint_root;
  s.attempt.work_dir = o.work_dir;
  s.attempt.train_program = o.train_program;
  s.attempt.cancel_grace_s = o.cancel_grace_s;
  s.metrics = metrics;
  return s;
}

std::unique_ptr<WorkerMetrics> MetricsOf(const WorkerOptions& o) {
  return o.metrics == nullptr ? nullptr : std::make_unique<WorkerMetrics>(*o.metrics);
}

}  // namespace

Worker::Worker(WorkerOptions options, std::unique_ptr<Spool> spool)
    : spool_(std::move(spool)),
      metrics_(MetricsOf(options)),
      link_(LinkOptionsOf(options, metrics_.get()), *spool_),
      supervisor_(SupervisorOptionsOf(options, metrics_.get()), *spool_, link_) {}

Worker::~Worker() { Stop(); }

void Worker::Stop() {
  link_.Stop();
  supervisor_.Stop();
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void Worker::Run() {
  // The shutdown: the children are stopped (and their statuses drained) while the session is
  // still served here; only then is it closed.
  std::thread shutdown([this] {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_; });
    }
    supervisor_.StopChildren();
    link_.Close();
  });
  link_.Run(supervisor_);
  shutdown.join();
}

std::vector<prometheus::MetricFamily> Worker::Gauges() {
  const Supervisor::Load load = supervisor_.CurrentLoad();
  WorkerState s;
  s.connected = link_.Connected();
  s.devices = load.devices;
  s.children = load.children;
  s.spool_bytes = spool_->Bytes();
  s.spool_max_bytes = spool_->MaxBytes();
  s.spool_batches = spool_->Pending();
  return WorkerGauges(s);
}

}  // namespace sgt::worker
