// The coordinator's Prometheus metrics (docs/metrics.md).
//
// RunScience keeps the newest values of each active run (step, loss, entropies, loop depths,
// ...) and turns them into gauge families at scrape time; a run's series go when it stops being
// active. CoordinatorMetrics adds the fleet's counters and histograms on a prometheus-cpp
// registry. Neither serves HTTP: the daemon registers them with a metrics::Endpoint.
//
//   prometheus::Registry registry;
//   CoordinatorMetrics m(registry);
//   m.science().Track(run_id, info, past_decisions);   // the run became active
//   m.science().Ingest(run_id, batch);                 // a stored telemetry batch
//   std::vector<prometheus::MetricFamily> f = m.science().Collect();
#ifndef SGT_SERVICES_COORDINATOR_METRICS_H_
#define SGT_SERVICES_COORDINATOR_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "sgt/v1/types.pb.h"

namespace sgt::coord {

// What labels a run's series and what its growth starts from.
struct RunInfo {
  std::string sweep, run, name, variant;
  int64_t target_steps = 0;
  int64_t step = 0;  // where the attempt starts
  int layers = 0;    // model.layers (0: learnt from telemetry)
  int heads = 0;     // model.heads (0: learnt from telemetry)
};

// Reads model.layers and model.heads of a run's canonical configuration JSON into `info`
// (left 0 when absent or unreadable).
void ReadModelShape(const std::string& config_json, RunInfo* info);

class RunScience {
 public:
  // Starts (or restarts) the series of a run that became active. `past` are the growth
  // decisions it already made (a resumed run, or a coordinator restarted mid-run), oldest
  // first: loop depths and decision counts start from them.
  void Track(int64_t run_id, RunInfo info, const std::vector<v1::GrowthDecision>& past);
  bool Tracked(int64_t run_id) const;
  // A stored telemetry batch of a tracked run (others are ignored).
  void Ingest(int64_t run_id, const v1::TelemetryBatch& batch);
  // The run is no longer active: its series go.
  void Drop(int64_t run_id);
  std::vector<prometheus::MetricFamily> Collect() const;

 private:
  struct Entropy {
    int64_t step = -1;
    std::vector<double> heads;  // base pass, by head index
  };
  struct Run {
    RunInfo info;
    int64_t step = 0;
    std::map<std::string, std::pair<int64_t, double>> scalars;  // name -> (step, value)
    std::map<std::pair<int, int>, Entropy> entropy;             // (signal, layer) -> newest
    std::vector<int> loop_depth, looped_heads;                  // by layer
    std::map<std::string, int64_t> decisions;                   // action -> count
  };
  static void Apply(Run& r, const v1::GrowthDecision& d);
  static void Grow(Run& r, int layers);

  mutable std::mutex mu_;
  std::map<int64_t, Run> runs_;
};

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  RunScience& science() { return science_; }

  // result: "stored", "duplicate" or "refused"; rows are counted for stored batches only.
  void TelemetryBatch(const char* result, const v1::TelemetryBatch& b);
  void Scheduled(double waited_s) { scheduling_.Observe(waited_s); }
  void StoreWrite(const char* op, double seconds);
  void WorkerMessage(const char* kind, double seconds);
  void Rpc(const std::string& service, const std::string& method, const std::string& code,
           double seconds);

  // Times unary gRPC calls into sgt_rpc_duration_seconds. Give it to
  // ServerBuilder::experimental().SetInterceptorCreators; it must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcInterceptor();

 private:
  RunScience science_;
  prometheus::Family<prometheus::Counter>& rows_;
  prometheus::Family<prometheus::Counter>& batches_;
  prometheus::Histogram& scheduling_;
  prometheus::Family<prometheus::Histogram>& store_write_;
  prometheus::Family<prometheus::Histogram>& worker_message_;
  prometheus::Family<prometheus::Histogram>& rpc_;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_METRICS_H_
