// The daemons' Prometheus endpoint (metrics.h): the registry, the process collectors read at
// each scrape, and the HTTP exposer.
#include "services/common/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "prometheus/exposer.h"

#ifndef SGT_VERSION
#define SGT_VERSION "unknown"
#endif

namespace sgt::metrics {

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
}

prometheus::ClientMetric& Families::Add(const std::string& name, const std::string& help,
                                        prometheus::MetricType type,
                                        const std::map<std::string, std::string>& labels) {
  auto [it, fresh] = index_.emplace(name, families_.size());
  if (fresh) families_.push_back({name, help, type, {}});
  prometheus::MetricFamily& f = families_[it->second];
  prometheus::ClientMetric& m = f.metric.emplace_back();
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  return m;
}

void Families::Gauge(const std::string& name, const std::string& help,
                     const std::map<std::string, std::string>& labels, double value) {
  Add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
}

void Families::Counter(const std::string& name, const std::string& help,
                       const std::map<std::string, std::string>& labels, double value) {
  Add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
}

std::vector<prometheus::MetricFamily> Families::Take() {
  index_.clear();
  return std::move(families_);
}

namespace {

// Seconds since the epoch at which the system booted (/proc/stat btime), 0 if unknown.
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    double t = 0;
    if (line.rfind("btime ", 0) == 0 && absl::SimpleAtod(line.substr(6), &t)) return t;
  }
  return 0;
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessFamilies() {
  Families f;
  // /proc/self/stat: fields after the command name (which may hold spaces) are split by ' '.
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> v = absl::StrSplit(stat.substr(close + 2), ' ');
    // v[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    auto field = [&](size_t n) {
      double x = 0;
      return n - 3 < v.size() && absl::SimpleAtod(v[n - 3], &x) ? x : 0.0;
    };
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    f.Counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", {},
              (field(14) + field(15)) / tick);
    f.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}, field(23));
    f.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", {},
            field(24) * page);
    if (static double boot = BootTime(); boot > 0) {
      f.Gauge("process_start_time_seconds", "Start time of the process since the epoch, in seconds.",
              {}, boot + field(22) / tick);
    }
  }
  int fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) fds += e->d_name[0] != '.';
    closedir(d);
    f.Gauge("process_open_fds", "Number of open file descriptors.", {}, fds - 1);  // less the DIR's
  }
  f.Gauge("sgt_build_info", "The SGT build serving these metrics (always 1).",
          {{"version", SGT_VERSION}}, 1);
  return f.Take();
}

std::string CheckListenAddress(const std::string& address, const std::string& flag) {
  const size_t colon = address.rfind(':');
  const std::string fix = " give host:port, e.g. 127.0.0.1:9464, [::]:9464, or port 0 to pick one";
  if (colon == std::string::npos || colon == 0) {
    return absl::StrCat(flag, " '", address, "': not host:port;", fix);
  }
  int port = -1;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::StrCat(flag, " '", address, "': the port must be a number in 0..65535;", fix);
  }
  const std::string host = address.substr(0, colon);
  if (host.find(':') != std::string::npos && (host.front() != '[' || host.back() != ']')) {
    return absl::StrCat(flag, " '", address, "': an IPv6 host goes in brackets;", fix);
  }
  return "";
}

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Start(const std::string& address,
                                                          const std::string& flag) {
  if (std::string problem = CheckListenAddress(address, flag); !problem.empty()) {
    return absl::InvalidArgumentError(problem);
  }
  std::unique_ptr<Endpoint> ep(new Endpoint());
  try {
    // Two threads serve scrapes; a scrape never waits on training.
    ep->exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", address, ": cannot listen there (", e.what(),
                     "); the port may be in use or the address not on this host; pick another"));
  }
  const std::vector<int> ports = ep->exposer_->GetListeningPorts();
  ep->port_ = ports.empty() ? 0 : ports.front();
  ep->registry_ = std::make_shared<prometheus::Registry>();
  ep->exposer_->RegisterCollectable(ep->registry_);
  ep->Add(std::make_shared<Collector>(ProcessFamilies));
  return ep;
}

Endpoint::~Endpoint() {
  exposer_.reset();  // stops serving before the collectables (and what they read) go
}

void Endpoint::Add(std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  collectables_.push_back(std::move(collectable));
}

bool MetricsFlags::Take(const std::vector<std::string>& args, size_t* i, std::string* problem) {
  const std::string& a = args[*i];
  if (a != "--metrics-listen" && a != "--metrics-port-file") return false;
  if (*i + 1 >= args.size()) {
    *problem = a == "--metrics-listen" ? "--metrics-listen needs host:port"
                                       : "--metrics-port-file needs a file";
    return true;
  }
  const std::string& v = args[++*i];
  if (a == "--metrics-port-file") {
    port_file = v;
    return true;
  }
  listen = v;
  *problem = CheckListenAddress(listen, "--metrics-listen");
  return true;
}

std::string MetricsFlags::Check() const {
  return !port_file.empty() && listen.empty() ? "--metrics-port-file needs --metrics-listen" : "";
}

std::string WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (!out) return absl::StrCat(path, ": cannot write the port file; check the directory");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::StrCat(path, ": cannot write the port file: ", ec.message());
  return "";
}

}  // namespace sgt::metrics
