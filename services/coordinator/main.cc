// sgt-coordinator: schedules SGT, Block Loop and vanilla runs over worker daemons, and keeps
// every sweep, run, state change and telemetry row in one SQLite file (docs/operations.md).
//
//   sgt-coordinator --listen 127.0.0.1:7070 --db sgt.db
#include <fcntl.h>
#include <pwd.h>
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
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "services/common/daemon_args.h"
#include "services/common/log.h"
#include "services/common/metrics.h"
#include "services/common/signals.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/metrics.h"
#include "services/coordinator/service.h"
#include "services/coordinator/slurm_autoscaler.h"
#include "services/coordinator/store.h"

namespace {

constexpr char kUsage[] = R"(usage: sgt-coordinator [options]

  --listen ADDR             host:port to serve on (default 127.0.0.1:7070; port 0 picks a free
                            port, printed on stdout and written to --port-file)
  --db PATH                 the SQLite store (default ./sgt.db; created if missing)
  --lease-seconds N         a worker that sends nothing for N seconds loses its runs (default 30)
  --log-level LEVEL         debug, info, warn, error (default info)
  --client-token-file F     bearer token sgtctl must send (with --worker-token-file)
  --worker-token-file F     bearer token workers must send (with --client-token-file)
  --tls-cert F --tls-key F  serve TLS with this certificate chain and private key (PEM)
  --allow-unauthenticated   listen on a non-loopback address without tokens
  --port-file F             write the port it listens on to F (for scripts and tests)
  --metrics-listen ADDR     serve Prometheus metrics at http://ADDR/metrics (docs/metrics.md;
                            port 0 picks a free port); off by default
  --metrics-port-file F     write the metrics port to F
  --check-args              check these arguments and exit (0 accepted, 2 not) without reading
                            the files they name, opening the store or listening

Autoscaling on Slurm (off by default; docs/operations.md, "Autoscaling on Slurm"): worker jobs
are submitted with sbatch while queued runs wait and no connected worker can take them.
  --slurm-autoscale         turn it on (needs --slurm-script)
  --slurm-script PATH       the worker batch script (deploy/slurm/sgt-workers.sbatch)
  --slurm-script-arg K=V    an argument of the script (SGT_COORDINATOR=host:port,
                            SGT_CHECKPOINT_ROOT=/shared/..., ...); repeat for each
  --slurm-max-jobs N        the most worker jobs alive at once, across restarts (default 1)
  --slurm-gpus-per-node G   GPU workers: --gres=gpu:G, a worker offers G GPUs (default 0: CPU)
  --slurm-cpu-slots-per-node N  CPU workers: --cpus-per-task=N, a worker offers cpu:N
                            (default 1)
  --slurm-nodes-per-job N   nodes (workers) per job (default 1)
  --slurm-partition P, --slurm-account A, --slurm-time-limit T   sbatch's, when given
  --slurm-sbatch-arg ARG    one more sbatch argument (--qos=low); repeat for each
  --slurm-job-name NAME     the jobs' name, how squeue finds them (default sgt-worker-autoscaled)
  --slurm-poll-seconds S    seconds between rounds (default 10)
  --slurm-start-seconds S   a running job counts as workers still coming this long (default 300)
  --slurm-command-timeout S sbatch, squeue, scancel are killed after S seconds (default 30)
  --sbatch P, --squeue P, --scancel P   the programs to run (default: from PATH)

SIGTERM or SIGINT: stop accepting calls, finish the ones in flight, close the store, exit 0.
exit status: 0 stopped cleanly, 1 runtime failure, 2 bad arguments or unusable files
)";

int Usage(const std::string& problem) {
  std::cerr << "sgt-coordinator: " << problem << "\n\n" << kUsage;
  return 2;
}

bool ReadSecret(const std::string& path, const char* flag, std::string* out, std::string* err) {
  std::ifstream in(path);
  if (!in) {
    *err = absl::StrCat(flag, " ", path, ": cannot read it; check the path and permissions");
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  *out = std::string(absl::StripAsciiWhitespace(ss.str()));
  if (out->empty()) {
    *err = absl::StrCat(flag, " ", path, ": the file is empty; write the secret into it");
    return false;
  }
  return true;
}

// One coordinator per store: a second one on the same file would schedule the same runs twice.
// An flock on "<db>.lock", held for the life of the process (the kernel drops it at exit, even
// after kill -9). Returns "" or the problem.
std::string LockStore(const std::string& db) {
  const std::string path = db + ".lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::StrCat("--db ", db, ": cannot create its lock file ", path,
                        "; check that the directory exists and is writable");
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    return absl::StrCat("--db ", db, " is in use by another sgt-coordinator",
                        n > 0 ? absl::StrCat(" (pid ", absl::StripAsciiWhitespace(buf), ")") : "",
                        "; stop it, or point --db at another file");
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; the pid only makes the message above friendlier.
  }
  return "";  // fd stays open: the lock lives as long as the process
}

bool IsLoopback(const std::string& addr) {
  const std::string host = addr.substr(0, addr.rfind(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" ||
         host.rfind("127.", 0) == 0;
}

// The fleet gauges of docs/metrics.md.
std::vector<prometheus::MetricFamily> FleetFamilies(const sgt::coord::FleetCounts& c) {
  sgt::metrics::Families f;
  f.Gauge("sgt_workers_connected", "Workers holding a session.", {}, c.workers_connected);
  f.Gauge("sgt_workers_registered", "Workers the store knows.", {}, c.workers_registered);
  for (const auto& [key, n] : c.devices) {
    f.Gauge("sgt_devices", "Devices of connected workers, by kind and state (free, busy).",
            {{"kind", key.first}, {"state", key.second}}, n);
  }
  for (const auto& [state, n] : c.runs) {
    f.Gauge("sgt_runs", "Runs in each state.", {{"state", state}}, n);
  }
  f.Gauge("sgt_queue_depth", "Runs waiting in the queue.", {}, c.queue_depth);
  return f.Take();
}

// The autoscaler's flags (docs/operations.md, "Autoscaling on Slurm"), as given.
struct SlurmFlags {
  bool on = false;
  std::string first;  // the first --slurm-* flag given, other than --slurm-autoscale
  bool cpu_slots_given = false;
  sgt::coord::AutoscaleConfig config;
  sgt::coord::SlurmCommands commands;
  double poll_s = 10;
};

// A number flag's value in [lo, hi] (whole when `whole`); *problem names the flag, the value
// and the fix otherwise.
void TakeNumber(sgt::DaemonArgs& args, const char* flag, double lo, double hi, bool whole,
                const char* example, double* out, std::string* problem) {
  std::string v;
  double x = 0;
  if (args.Value(&v) && absl::SimpleAtod(v, &x) && std::isfinite(x) && x >= lo && x <= hi &&
      (!whole || x == std::floor(x))) {
    *out = x;
    return;
  }
  *problem = absl::StrCat(flag, " ", v.empty() ? "(no value)" : absl::StrCat("'", v, "'"),
                          ": needs ", whole ? "a whole number" : "a number of seconds", " from ",
                          lo, " to ", hi, ", e.g. ", flag, " ", example);
}

void TakeInt(sgt::DaemonArgs& args, const char* flag, int32_t lo, int32_t hi, const char* example,
             int32_t* out, std::string* problem) {
  double x = *out;
  TakeNumber(args, flag, lo, hi, /*whole=*/true, example, &x, problem);
  *out = static_cast<int32_t>(x);
}

// Takes the current argument when it is one of the autoscaler's: true, with *problem set when
// its value is missing or bad.
bool TakeSlurmFlag(sgt::DaemonArgs& args, SlurmFlags* f, std::string* problem) {
  sgt::coord::AutoscaleConfig& c = f->config;
  std::string v;
  auto text = [&](const char* flag, const char* what, std::string* out) {
    if (!args.Value(out) || out->empty()) {
      *problem = absl::StrCat(flag, " needs ", what);
    }
  };
  if (args.Is("--slurm-autoscale")) {
    f->on = true;
    return true;
  }
  static constexpr const char* kFlags[] = {"--slurm-script",
                                           "--slurm-script-arg",
                                           "--slurm-max-jobs",
                                           "--slurm-gpus-per-node",
                                           "--slurm-cpu-slots-per-node",
                                           "--slurm-nodes-per-job",
                                           "--slurm-partition",
                                           "--slurm-account",
                                           "--slurm-time-limit",
                                           "--slurm-sbatch-arg",
                                           "--slurm-job-name",
                                           "--slurm-poll-seconds",
                                           "--slurm-start-seconds",
                                           "--slurm-command-timeout",
                                           "--sbatch",
                                           "--squeue",
                                           "--scancel"};
  const char* flag = nullptr;
  for (const char* k : kFlags) {
    if (args.Is(k)) flag = k;
  }
  if (flag == nullptr) return false;
  if (f->first.empty()) f->first = flag;
  const std::string name = flag;
  if (name == "--slurm-script") {
    text(flag, "the path of the worker batch script (deploy/slurm/sgt-workers.sbatch)", &c.script);
  } else if (name == "--slurm-script-arg") {
    text(flag, "KEY=VALUE", &v);
    if (problem->empty() && (v.find('=') == std::string::npos || v.find('=') == 0)) {
      *problem = absl::StrCat(flag, " '", v,
                              "': needs KEY=VALUE, e.g. --slurm-script-arg "
                              "SGT_COORDINATOR=coord.example:7070 (one argument per flag)");
    }
    c.script_args.push_back(v);
  } else if (name == "--slurm-max-jobs") {
    TakeInt(args, flag, 1, 10000, "4", &c.max_jobs, problem);
  } else if (name == "--slurm-gpus-per-node") {
    TakeInt(args, flag, 0, 1024, "8", &c.gpus_per_node, problem);
  } else if (name == "--slurm-cpu-slots-per-node") {
    f->cpu_slots_given = true;
    TakeInt(args, flag, 1, 4096, "4", &c.cpu_slots_per_node, problem);
  } else if (name == "--slurm-nodes-per-job") {
    TakeInt(args, flag, 1, 10000, "2", &c.nodes_per_job, problem);
  } else if (name == "--slurm-partition") {
    text(flag, "a partition name (sinfo lists them)", &c.partition);
  } else if (name == "--slurm-account") {
    text(flag, "an account name", &c.account);
  } else if (name == "--slurm-time-limit") {
    text(flag, "a time limit in sbatch's form (minutes, HH:MM:SS, D-HH:MM)", &c.time_limit);
    if (problem->empty() && c.time_limit.find_first_not_of("0123456789:-") != std::string::npos) {
      *problem = absl::StrCat(flag, " '", c.time_limit,
                              "': not a time limit sbatch takes; write minutes (90), HH:MM:SS "
                              "(12:00:00) or D-HH:MM (2-00:00)");
    }
  } else if (name == "--slurm-sbatch-arg") {
    text(flag, "an sbatch argument, e.g. --slurm-sbatch-arg --qos=low", &v);
    c.sbatch_args.push_back(v);
  } else if (name == "--slurm-job-name") {
    text(flag, "a job name", &c.job_name);
    if (problem->empty() && c.job_name.find_first_of(" \t,") != std::string::npos) {
      *problem = absl::StrCat(flag, " '", c.job_name,
                              "': a job name squeue can look for has no spaces or commas; "
                              "write e.g. sgt-worker-lab1");
    }
  } else if (name == "--slurm-poll-seconds") {
    TakeNumber(args, flag, 0.2, 3600, false, "10", &f->poll_s, problem);
  } else if (name == "--slurm-start-seconds") {
    TakeNumber(args, flag, 1, 86400, false, "300", &c.start_s, problem);
  } else if (name == "--slurm-command-timeout") {
    TakeNumber(args, flag, 1, 600, false, "30", &f->commands.timeout_s, problem);
  } else if (name == "--sbatch") {
    text(flag, "the path of sbatch", &f->commands.sbatch);
  } else if (name == "--squeue") {
    text(flag, "the path of squeue", &f->commands.squeue);
  } else if (name == "--scancel") {
    text(flag, "the path of scancel", &f->commands.scancel);
  }
  return true;
}

// Where `program` runs from: itself when it has a slash, else its place on PATH; "" when it is
// not an executable file.
std::string FindProgram(const std::string& program) {
  auto executable = [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) return executable(program) ? program : "";
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    const std::string p = absl::StrCat(dir.empty() ? "." : dir, "/", program);
    if (executable(p)) return p;
  }
  return "";
}

// The flags together: "" or the problem and its fix.
std::string CheckSlurmFlags(SlurmFlags* f) {
  sgt::coord::AutoscaleConfig& c = f->config;
  if (!f->on) {
    if (f->first.empty()) return "";
    return absl::StrCat(f->first,
                        " is a setting of the Slurm autoscaler, which is off; add "
                        "--slurm-autoscale (and --slurm-script) to turn it on, or drop ",
                        f->first);
  }
  if (c.script.empty()) {
    return "--slurm-autoscale needs --slurm-script PATH, the worker batch script "
           "(deploy/slurm/sgt-workers.sbatch, on a file system sbatch reads)";
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(c.script, ec) || ::access(c.script.c_str(), R_OK) != 0) {
    return absl::StrCat("--slurm-script ", c.script,
                        ": not a readable file; pass the path of "
                        "deploy/slurm/sgt-workers.sbatch");
  }
  c.script = std::filesystem::absolute(c.script).lexically_normal().string();
  if (c.gpus_per_node > 0 && f->cpu_slots_given) {
    return absl::StrCat("--slurm-gpus-per-node ", c.gpus_per_node,
                        " and --slurm-cpu-slots-per-node ", c.cpu_slots_per_node,
                        ": a worker offers GPUs or CPU slots, not both; drop one");
  }
  for (auto [flag, program] :
       {std::pair<const char*, std::string*>{"--sbatch", &f->commands.sbatch},
        {"--squeue", &f->commands.squeue},
        {"--scancel", &f->commands.scancel}}) {
    const std::string found = FindProgram(*program);
    if (found.empty()) {
      return absl::StrCat(flag, " ", *program,
                          ": not an executable file (nor on PATH); install Slurm's client "
                          "commands (Debian: slurm-client) or pass their path with ",
                          flag);
    }
    *program = found;
  }
  const passwd* pw = ::getpwuid(::geteuid());
  f->commands.user = pw != nullptr ? pw->pw_name : std::to_string(::geteuid());
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with mutex deadlock detection on, which makes every lock of the
  // coordinator's mutex update a global lock graph (35 ns against 6.5 ns uncontended, measured;
  // telemetry ingestion 8-15 % slower). The unit tests keep it and so check the lock order;
  // the daemon does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string listen = "127.0.0.1:7070", db = "sgt.db";
  std::string client_token_file, worker_token_file, tls_cert, tls_key, port_file;
  int64_t lease = 30;
  bool allow_unauthenticated = false;
  SlurmFlags slurm;
  sgt::DaemonArgs args(argc, argv);
  for (; args.More(); args.Next()) {
    std::string v, problem;
    if (args.TakeCommon(&problem)) {
      if (!problem.empty()) return Usage(problem);
    } else if (args.Is("--listen")) {
      if (!args.Value(&listen)) return Usage("--listen needs host:port");
    } else if (args.Is("--db")) {
      if (!args.Value(&db)) return Usage("--db needs a path");
    } else if (args.Is("--lease-seconds")) {
      if (!args.Value(&v) || !absl::SimpleAtoi(v, &lease) || lease < 1 || lease > 3600) {
        return Usage("--lease-seconds needs a number of seconds in 1..3600");
      }
    } else if (args.Is("--client-token-file")) {
      if (!args.Value(&client_token_file)) return Usage("--client-token-file needs a file");
    } else if (args.Is("--worker-token-file")) {
      if (!args.Value(&worker_token_file)) return Usage("--worker-token-file needs a file");
    } else if (args.Is("--tls-cert")) {
      if (!args.Value(&tls_cert)) return Usage("--tls-cert needs a PEM file");
    } else if (args.Is("--tls-key")) {
      if (!args.Value(&tls_key)) return Usage("--tls-key needs a PEM file");
    } else if (args.Is("--port-file")) {
      if (!args.Value(&port_file)) return Usage("--port-file needs a file");
    } else if (args.Is("--allow-unauthenticated")) {
      allow_unauthenticated = true;
    } else if (TakeSlurmFlag(args, &slurm, &problem)) {
      if (!problem.empty()) return Usage(problem);
    } else {
      return Usage(args.Unknown());
    }
  }
  if (args.help()) {
    std::cout << kUsage;
    return 0;
  }
  if (std::string problem = args.Finish(); !problem.empty()) return Usage(problem);
  if (std::string problem = CheckSlurmFlags(&slurm); !problem.empty()) return Usage(problem);

  // The rules between flags first: they need no file, so --check-args checks them too.
  if (client_token_file.empty() != worker_token_file.empty()) {
    return Usage("--client-token-file and --worker-token-file go together: give both or neither");
  }
  const bool tokens = !client_token_file.empty();
  if (!tokens && !IsLoopback(listen) && !allow_unauthenticated) {
    return Usage(absl::StrCat("--listen ", listen,
                              " is not a loopback address and no tokens are set; pass "
                              "--client-token-file and --worker-token-file (docs/operations.md), "
                              "or --allow-unauthenticated on a trusted network"));
  }
  if (tls_cert.empty() != tls_key.empty()) return Usage("--tls-cert and --tls-key go together");
  if (args.check_args()) return sgt::DaemonArgs::Checked("sgt-coordinator");

  sgt::coord::AuthConfig auth;
  std::string err;
  if (tokens) {
    if (!ReadSecret(client_token_file, "--client-token-file", &auth.client_token, &err) ||
        !ReadSecret(worker_token_file, "--worker-token-file", &auth.worker_token, &err)) {
      return Usage(err);
    }
    if (auth.client_token == auth.worker_token) {
      return Usage("the client and worker tokens are the same; give each role its own secret");
    }
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadSecret(tls_key, "--tls-key", &pair.private_key, &err) ||
        !ReadSecret(tls_cert, "--tls-cert", &pair.cert_chain, &err)) {
      return Usage(err);
    }
    ssl.pem_key_cert_pairs.push_back(pair);
    creds = grpc::SslServerCredentials(ssl);
  }

  // Signals are taken by one thread; blocked before any thread starts.
  sgt::signals::BlockStopSignals();

  if (std::string problem = LockStore(db); !problem.empty()) {
    std::cerr << "sgt-coordinator: " << problem << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<sgt::coord::Store>> store = sgt::coord::Store::Open(db);
  if (!store.ok()) {
    std::cerr << "sgt-coordinator: " << store.status().message() << "\n";
    return 2;
  }
  // Metrics first: a port that cannot be had stops the start before anything is scheduled.
  std::unique_ptr<sgt::metrics::Endpoint> metrics;
  std::unique_ptr<sgt::coord::CoordinatorMetrics> coord_metrics;
  if (!args.metrics_flags().listen.empty()) {
    absl::StatusOr<std::unique_ptr<sgt::metrics::Endpoint>> ep =
        sgt::metrics::Endpoint::Start(args.metrics_flags().listen, "--metrics-listen");
    if (!ep.ok()) {
      std::cerr << "sgt-coordinator: " << ep.status().message() << "\n";
      return 2;
    }
    metrics = std::move(*ep);
    coord_metrics = std::make_unique<sgt::coord::CoordinatorMetrics>(metrics->registry());
    (*store)->SetWriteObserver(
        [m = coord_metrics.get()](const char* op, double seconds) { m->StoreWrite(op, seconds); });
  }
  sgt::coord::CoordinatorOptions opts;
  opts.lease_seconds = static_cast<int32_t>(lease);
  opts.metrics = coord_metrics.get();
  absl::StatusOr<std::unique_ptr<sgt::coord::Coordinator>> coord =
      sgt::coord::Coordinator::Create(store->get(), opts);
  if (!coord.ok()) {
    std::cerr << "sgt-coordinator: " << coord.status().message() << "\n";
    return 1;
  }
  if (metrics) {
    sgt::coord::Coordinator* c = coord->get();
    metrics->Add(
        std::make_shared<sgt::metrics::Collector>([c] { return FleetFamilies(c->Fleet()); }));
    sgt::coord::RunScience* science = &coord_metrics->science();
    metrics->Add(
        std::make_shared<sgt::metrics::Collector>([science] { return science->Collect(); }));
  }
  sgt::coord::ClientApi client_api(coord->get(), store->get(), auth);
  sgt::coord::WorkerApi worker_api(coord->get(), auth);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  // Without this gRPC binds with SO_REUSEPORT and a second coordinator on the same port would
  // start and share the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&client_api);
  builder.RegisterService(&worker_api);
  builder.SetMaxReceiveMessageSize(16 << 20);  // sweep files and telemetry batches are far smaller
  if (coord_metrics) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> timers;
    timers.push_back(coord_metrics->RpcInterceptor());
    builder.experimental().SetInterceptorCreators(std::move(timers));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "sgt-coordinator: cannot listen on " << listen
              << "; the port may be in use or the address invalid; pick another --listen\n";
    return 2;
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus("sgt.v1.CoordinatorService", true);
  health->SetServingStatus("sgt.v1.WorkerService", true);
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::cout << "sgt-coordinator: listening on " << host << ":" << port << " (store " << db
            << ", lease " << lease << " s" << (auth.enabled() ? ", tokens required" : "")
            << (tls_cert.empty() ? "" : ", TLS") << ")" << std::endl;
  if (metrics) {
    std::cout << "sgt-coordinator: metrics at http://"
              << args.metrics_flags().listen.substr(0, args.metrics_flags().listen.rfind(':'))
              << ":" << metrics->port() << "/metrics" << std::endl;
  }
  // The metrics port first: a script that sees the gRPC port file finds both.
  for (const auto& [file, p] :
       {std::pair{args.metrics_flags().port_file, metrics ? metrics->port() : 0},
        std::pair{port_file, port}}) {
    if (file.empty()) continue;
    if (std::string problem = sgt::metrics::WritePortFile(file, p); !problem.empty()) {
      std::cerr << "sgt-coordinator: " << problem << "\n";
    }
  }

  std::atomic<bool> stopping{false};
  std::thread ticker([&] {
    while (!stopping) {
      (*coord)->Tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  // The Slurm autoscaler's rounds, on their own thread: sbatch and squeue never hold the
  // coordinator's lock, and a slow one delays only the next round.
  std::unique_ptr<sgt::coord::SlurmAutoscaler> autoscaler;
  std::thread scaler;
  if (slurm.on) {
    autoscaler = std::make_unique<sgt::coord::SlurmAutoscaler>(
        slurm.config, slurm.commands, coord->get(), store->get(),
        metrics ? &metrics->registry() : nullptr);
    if (absl::Status s = autoscaler->Load(); !s.ok()) {
      std::cerr << "sgt-coordinator: " << s.message() << "\n";
      stopping = true;
      ticker.join();
      return 1;
    }
    scaler = std::thread([&] {
      while (!stopping) {
        autoscaler->Round();
        for (double waited = 0; waited < slurm.poll_s && !stopping; waited += 0.05) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
  }

  const int sig = sgt::signals::WaitForStop();
  sgt::log::Info("coordinator", "signal ", sig, ": shutting down");
  stopping = true;
  (*coord)->Shutdown();
  health->Shutdown();
  // Calls in flight get two seconds; long-lived streams (watch, worker sessions) are cancelled.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  ticker.join();
  if (scaler.joinable()) scaler.join();  // a round in progress ends first (its time limits)
  autoscaler.reset();
  metrics.reset();  // no scrape may reach the coordinator from here on
  coord->reset();
  store->reset();
  sgt::log::Info("coordinator", "stopped");
  return 0;
}
