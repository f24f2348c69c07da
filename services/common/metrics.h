// The daemons' Prometheus endpoint (docs/metrics.md): a prometheus-cpp registry for counters
// and histograms, plus collectors that read a daemon's state at each scrape, served at
// http://ADDR/metrics.
//
//   auto ep = metrics::Endpoint::Start("127.0.0.1:0", "--metrics-listen");
//   prometheus::Family<prometheus::Counter>& f = prometheus::BuildCounter()...Register(
//       (*ep)->registry());
//   (*ep)->Add(std::make_shared<metrics::Collector>([] { return families; }));
#ifndef SGT_SERVICES_COMMON_METRICS_H_
#define SGT_SERVICES_COMMON_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}

namespace sgt::metrics {

// Buckets for latencies from 100 us to 10 s.
std::vector<double> LatencyBuckets();

// A collectable that builds its families by calling `fn` at every scrape.
class Collector : public prometheus::Collectable {
 public:
  explicit Collector(std::function<std::vector<prometheus::MetricFamily>()> fn)
      : fn_(std::move(fn)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return fn_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> fn_;
};

// Builds gauge or counter families sample by sample, for collectors.
class Families {
 public:
  void Gauge(const std::string& name, const std::string& help,
             const std::map<std::string, std::string>& labels, double value);
  void Counter(const std::string& name, const std::string& help,
               const std::map<std::string, std::string>& labels, double value);
  std::vector<prometheus::MetricFamily> Take();

 private:
  prometheus::ClientMetric& Add(const std::string& name, const std::string& help,
                                prometheus::MetricType type,
                                const std::map<std::string, std::string>& labels);
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, size_t> index_;
};

// process_* metrics of this process, read from /proc (CPU, memory, open fds, start time), and
// sgt_build_info.
std::vector<prometheus::MetricFamily> ProcessFamilies();

// Checks "host:port" (port 0..65535; IPv6 hosts in brackets). "" or what is wrong, naming `flag`.
std::string CheckListenAddress(const std::string& address, const std::string& flag);

class Endpoint {
 public:
  // Serves /metrics on `address` ("host:port"; port 0 picks a free one). Errors name `flag`.
  // The process metrics are always included.
  static absl::StatusOr<std::unique_ptr<Endpoint>> Start(const std::string& address,
                                                         const std::string& flag);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }
  // Served until the endpoint is destroyed.
  void Add(std::shared_ptr<prometheus::Collectable> collectable);

 private:
  Endpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  int port_ = 0;
};

// The daemons' --metrics-listen ADDR and --metrics-port-file F flags.
struct MetricsFlags {
  std::string listen, port_file;
  // Takes args[*i] (and its value, advancing *i) when it is one of the two flags: returns true,
  // with *problem set when the value is missing or bad. False for any other argument.
  bool Take(const std::vector<std::string>& args, size_t* i, std::string* problem);
  // After all flags: "" or what is wrong with the combination.
  std::string Check() const;
};

// Writes `port` to `path` atomically (write a temporary file, rename). "" or the problem.
std::string WritePortFile(const std::string& path, int port);

}  // namespace sgt::metrics

#endif  // SGT_SERVICES_COMMON_METRICS_H_
