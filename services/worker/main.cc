// sgt-worker: runs the training runs a coordinator gives it, one sgt-train child per run, on
// this node's devices (docs/worker.md).
//
//   sgt-worker --coordinator coord:7070 --devices cuda --checkpoint-root /shared/ckpt
//              --work-dir /var/lib/sgt-worker
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/common/daemon_args.h"
#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/common/signals.h"
#include "services/worker/attempt_files.h"
#include "services/worker/devices.h"
#include "services/worker/idle.h"
#include "services/worker/worker.h"

namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] = R"(usage: sgt-worker --checkpoint-root DIR --work-dir DIR [options]

  --coordinator ADDR        host:port of sgt-coordinator (default $SGT_COORDINATOR, else
                            localhost:7070)
  --devices SPEC            cpu:N (N CPU slots; a run gets one intra-op thread per slot),
                            cuda (every GPU) or cuda:0,1 (those GPUs) (default cpu:1)
  --checkpoint-root DIR     where checkpoints are written and the only place they are read
                            from; share it between workers so that any of them can resume a run
  --work-dir DIR            this worker's own files: runs/RUN/attempt-N (config, events.jsonl,
                            stdout.log, stderr.log) and spool/ (telemetry not yet acknowledged)
  --name NAME               stable name; a worker that restarts under it keeps its id
                            (default: the host name)
  --train-program PATH      the sgt-train to run (default: the one beside sgt-worker)
  --token-file F            bearer token for the coordinator's worker API
  --tls-ca F                talk TLS, trusting these root certificates (PEM)
  --cancel-grace-seconds S  SIGTERM, then SIGKILL after S seconds (default 10)
  --rendezvous-host H       where other workers reach a data-parallel run whose rank 0 runs
                            here (default: the host name)
  --rendezvous-ports B-E    the ports the coordinator may give such a run, both included
                            (default 29500-29599)
  --spool-max-mb N          telemetry kept on disk while the coordinator is away before the
                            children are made to wait (default 256)
  --exit-when-idle S        stop as on SIGTERM, exit 0, once no attempt has been held for S
                            seconds (batch allocations: give the nodes back when the queue is
                            empty); off by default
  --log-level LEVEL         debug, info, warn, error (default info)
  --metrics-listen ADDR     serve Prometheus metrics at http://ADDR/metrics (docs/metrics.md;
                            port 0 picks a free port); off by default
  --metrics-port-file F     write the metrics port to F
  --check-args              check these arguments and exit (0 accepted, 2 not) without reading
                            the files they name, probing GPUs, touching the directories or
                            connecting

SIGTERM or SIGINT: stop the children (their runs go back to the queue from their newest
checkpoint), hand in their last telemetry, exit 0.
exit status: 0 stopped cleanly, 2 bad arguments or unusable directories
)";

// The GPUs --check-args supposes (it probes none): more than any node has.
constexpr int kCheckArgsGpus = 1024;

int Usage(const std::string& problem) {
  std::cerr << "sgt-worker: " << problem << "\n\n" << kUsage;
  return 2;
}

int Fatal(const std::string& problem) {
  std::cerr << "sgt-worker: " << problem << "\n";
  return 2;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string HostName() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "worker";
  return buf;
}

// The steady clock's seconds, the supervisor's clock (Supervisor::Load::idle_since).
double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string SelfDir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  sgt::worker::WorkerOptions o;
  o.coordinator = "localhost:7070";
  if (const char* env = std::getenv("SGT_COORDINATOR"); env != nullptr && *env != 0) {
    o.coordinator = env;
  }
  std::string devices = "cpu:1", token_file, tls_ca;
  int64_t spool_mb = 256;
  double exit_when_idle_s = 0;
  sgt::DaemonArgs args(argc, argv);
  for (; args.More(); args.Next()) {
    std::string v, problem;
    if (args.TakeCommon(&problem)) {
      if (!problem.empty()) return Usage(problem);
    } else if (args.Is("--coordinator")) {
      if (!args.Value(&o.coordinator)) return Usage("--coordinator needs host:port");
    } else if (args.Is("--devices")) {
      if (!args.Value(&devices)) return Usage("--devices needs cpu:N, cuda or cuda:0,1");
    } else if (args.Is("--checkpoint-root")) {
      if (!args.Value(&o.checkpoint_root)) return Usage("--checkpoint-root needs a directory");
    } else if (args.Is("--work-dir")) {
      if (!args.Value(&o.work_dir)) return Usage("--work-dir needs a directory");
    } else if (args.Is("--name")) {
      if (!args.Value(&o.name) || o.name.empty()) return Usage("--name needs a name");
    } else if (args.Is("--train-program")) {
      if (!args.Value(&o.train_program)) return Usage("--train-program needs a path");
    } else if (args.Is("--token-file")) {
      if (!args.Value(&token_file)) return Usage("--token-file needs a file");
    } else if (args.Is("--tls-ca")) {
      if (!args.Value(&tls_ca)) return Usage("--tls-ca needs a PEM file");
    } else if (args.Is("--cancel-grace-seconds")) {
      if (!args.Value(&v) || !absl::SimpleAtod(v, &o.cancel_grace_s) ||
          !std::isfinite(o.cancel_grace_s) || o.cancel_grace_s < 0 || o.cancel_grace_s > 3600) {
        return Usage("--cancel-grace-seconds needs seconds from 0 to 3600");
      }
    } else if (args.Is("--rendezvous-host")) {
      if (!args.Value(&o.rendezvous.host)) return Usage("--rendezvous-host needs a host name");
      if (absl::Status s = sgt::worker::CheckRendezvousHost(o.rendezvous.host); !s.ok()) {
        return Usage(std::string(s.message()));
      }
    } else if (args.Is("--rendezvous-ports")) {
      if (!args.Value(&v)) return Usage("--rendezvous-ports needs BASE-END, e.g. 29500-29599");
      if (absl::Status s = sgt::worker::ParseRendezvousPorts(v, &o.rendezvous); !s.ok()) {
        return Usage(std::string(s.message()));
      }
    } else if (args.Is("--spool-max-mb")) {
      if (!args.Value(&v) || !absl::SimpleAtoi(v, &spool_mb) || spool_mb < 1 ||
          spool_mb > (1 << 20)) {
        return Usage("--spool-max-mb needs megabytes from 1 to 1048576");
      }
    } else if (args.Is("--exit-when-idle")) {
      if (!args.Value(&v) || !absl::SimpleAtod(v, &exit_when_idle_s) ||
          !std::isfinite(exit_when_idle_s) || exit_when_idle_s < 1 ||
          exit_when_idle_s > 30 * 86400) {
        return Usage(absl::StrCat("--exit-when-idle ", v,
                                  ": needs seconds from 1 to 2592000 (30 days), e.g. "
                                  "--exit-when-idle 300; leave it out to never exit when idle"));
      }
    } else {
      return Usage(args.Unknown());
    }
  }
  if (args.help()) {
    std::cout << kUsage;
    return 0;
  }
  if (std::string problem = args.Finish(); !problem.empty()) return Usage(problem);
  if (o.checkpoint_root.empty()) return Usage("--checkpoint-root is required");
  if (o.work_dir.empty()) return Usage("--work-dir is required");

  std::string cuda_why;
  int cuda = -1;
  if (devices.rfind("cuda", 0) == 0) {
    // --check-args checks the form of the spec, not this machine's GPUs: any index is taken.
    cuda = args.check_args() ? kCheckArgsGpus : sgt::worker::CudaDeviceCount(&cuda_why);
  }
  absl::StatusOr<std::vector<sgt::v1::Device>> devs =
      sgt::worker::ParseDevices(devices, cuda, cuda_why);
  if (!devs.ok()) return Fatal(std::string(devs.status().message()));
  o.devices = *devs;
  if (args.check_args()) return sgt::DaemonArgs::Checked("sgt-worker");

  // Both directories must be usable now: a worker that cannot write checkpoints would take runs
  // only to fail them.
  for (auto [flag, dir] :
       {std::pair<const char*, std::string*>{"--checkpoint-root", &o.checkpoint_root},
        {"--work-dir", &o.work_dir}}) {
    if (std::string why = sgt::worker::CheckWritable(*dir); !why.empty()) {
      return Fatal(absl::StrCat(flag, " ", *dir, ": ", why,
                                "; fix its permissions or choose another directory"));
    }
    *dir = fs::canonical(*dir).string();
  }
  // One worker per work directory: the spool and the attempt directories are its alone.
  const std::string lock_path = (fs::path(o.work_dir) / ".lock").string();
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fatal(absl::StrCat("--work-dir ", o.work_dir, " is in use by another sgt-worker (",
                              lock_path, " is locked); give each worker its own --work-dir"));
  }
  if (o.train_program.empty()) o.train_program = (fs::path(SelfDir()) / "sgt-train").string();
  std::error_code ec;
  if (!fs::is_regular_file(o.train_program, ec) || ::access(o.train_program.c_str(), X_OK) != 0) {
    return Fatal(absl::StrCat("--train-program ", o.train_program,
                              ": not an executable file; pass the path of sgt-train"));
  }
  o.hostname = HostName();
  if (o.name.empty()) o.name = o.hostname;
  if (o.rendezvous.host.empty()) o.rendezvous.host = o.hostname;
  if (!token_file.empty()) {
    if (!ReadFile(token_file, &o.token)) {
      return Fatal("--token-file " + token_file + ": not a readable file; check the path");
    }
    o.token = std::string(absl::StripAsciiWhitespace(o.token));
    if (o.token.empty()) return Fatal("--token-file " + token_file + ": the file is empty");
  }
  if (!tls_ca.empty()) {
    if (!ReadFile(tls_ca, &o.tls_ca_pem)) {
      return Fatal("--tls-ca " + tls_ca + ": not a readable file; check the path");
    }
    // An empty set of roots would make gRPC trust the system's instead, silently.
    if (o.tls_ca_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return Fatal("--tls-ca " + tls_ca +
                   ": holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the CA "
                   "certificate that signed the coordinator's");
    }
  }

  sgt::worker::Spool::Options so;
  so.dir = (fs::path(o.work_dir) / "spool").string();
  so.max_bytes = spool_mb << 20;
  absl::StatusOr<std::unique_ptr<sgt::worker::Spool>> spool = sgt::worker::Spool::Open(so);
  if (!spool.ok()) return Fatal(std::string(spool.status().message()));
  if ((*spool)->Pending() > 0) {
    sgt::log::Info("worker", "spool holds ", (*spool)->Pending(),
                   " telemetry batch(es) from before this start; they go first");
  }

  // Signals are taken by one thread; blocked before any thread starts. A child's pipe that
  // closes must not kill the worker.
  signal(SIGPIPE, SIG_IGN);
  sgt::signals::BlockStopSignals();

  // After the signals are blocked: the endpoint's threads inherit the mask.
  std::unique_ptr<sgt::metrics::Endpoint> metrics;
  if (!args.metrics_flags().listen.empty()) {
    absl::StatusOr<std::unique_ptr<sgt::metrics::Endpoint>> ep =
        sgt::metrics::Endpoint::Start(args.metrics_flags().listen, "--metrics-listen");
    if (!ep.ok()) return Fatal(std::string(ep.status().message()));
    metrics = std::move(*ep);
    o.metrics = &metrics->registry();
  }
  sgt::worker::Worker worker(o, std::move(*spool));
  if (metrics) {
    metrics->Add(std::make_shared<sgt::metrics::Collector>([&worker] { return worker.Gauges(); }));
    sgt::log::Info("worker", "metrics at http://",
                   args.metrics_flags().listen.substr(0, args.metrics_flags().listen.rfind(':')),
                   ":", metrics->port(), "/metrics");
    if (!args.metrics_flags().port_file.empty()) {
      if (std::string problem =
              sgt::metrics::WritePortFile(args.metrics_flags().port_file, metrics->port());
          !problem.empty()) {
        return Fatal(problem);
      }
    }
  }
  std::thread waiter([&] {
    const int sig = sgt::signals::WaitForStop();
    sgt::log::Info("worker", "signal ", sig, ": stopping");
    worker.Stop();
  });
  // --exit-when-idle: the stop a SIGTERM would make, so that it drains the same way.
  std::atomic<bool> ran{false};
  std::thread idler;
  if (exit_when_idle_s > 0) {
    idler = std::thread([&] {
      while (!ran) {
        const sgt::worker::Supervisor::Load load = worker.Load();
        if (sgt::worker::IdleExpired(load.attempts, load.idle_since, SteadySeconds(),
                                     exit_when_idle_s)) {
          sgt::log::Info("worker", "no run for ", exit_when_idle_s,
                         " s (--exit-when-idle): stopping");
          ::kill(::getpid(), SIGTERM);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    });
  }
  worker.Run();  // on the main thread: children die with the thread that started them
  ran = true;
  if (idler.joinable()) idler.join();
  // Run returns only after Stop: the waiter has its signal.
  waiter.join();
  metrics.reset();  // no scrape may reach the worker from here on
  sgt::log::Info("worker", "stopped");
  return 0;
}
