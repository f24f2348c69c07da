// The supervisor of a worker's attempts: start, commands, the relay of rank 0's events as
// telemetry, the ranks' ends and the attempt's final status, the shutdown of the children
// (supervisor.h).
#include "services/worker/supervisor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/log.h"
#include "services/common/telemetry.h"
#include "services/worker/attempt_files.h"
#include "services/worker/child.h"

namespace sgt::worker {

namespace v1 = sgt::v1;

namespace {

constexpr char kLog[] = "worker";
constexpr int64_t kBatchRows = 4096;   // a batch is sent once it has this many rows
constexpr double kBatchSeconds = 0.5;  // or once its first row is this old
constexpr double kResendSeconds = 10;  // an unacknowledged final status goes again
constexpr double kDrainSeconds = 5;    // on shutdown, for the last acknowledgements
// A child killed by an outside SIGTERM waits this long for the worker's own stop (Relay).
constexpr double kOutsideTermSeconds = 2;

double Mono() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// One local rank of an attempt: one sgt-train child, and the thread that waits for its exit.
struct Supervisor::Rank {
  int rank = 0;  // global
  std::unique_ptr<Child> child;
  std::string stderr_path;
  std::thread waiter;
  int wait_status = 0;  // once it exited; guarded by Supervisor::mu_
};

struct Supervisor::Attempt {
  // The status acknowledgement and the shutdown may both want the threads finished.
  void JoinRelay() {
    std::lock_guard<std::mutex> lock(join_mu);
    if (relay.joinable()) relay.join();
    for (Rank& r : ranks) {
      if (r.waiter.joinable()) r.waiter.join();
    }
  }
  // Sends `sig` to every rank not yet reaped. Under Supervisor::mu_ (the ranks are fixed).
  void SignalAll(int sig) {
    for (Rank& r : ranks) r.child->Signal(sig);
  }

  std::string run_id, key;
  int32_t attempt = 0;
  std::vector<std::string> devices;
  Ranks shape;
  std::vector<Rank> ranks;  // local rank 0 first; fixed once the threads start
  std::atomic<int64_t> step{0};
  int64_t next_sequence = 1;  // the relay thread's
  std::thread relay;          // reads local rank 0's events pipe
  std::mutex join_mu;
  // Guarded by Supervisor::mu_.
  bool cancel = false;  // the coordinator cancelled it
  // SIGTERM sent to every rank (cancel, shutdown, a failed rank, stragglers); SIGKILL after the
  // grace period.
  double term_at = 0;
  bool killed = false;
  int alive = 0;               // ranks not yet exited
  int failed = -1;             // the local rank that failed first on its own, or -1
  double rank0_exited_at = 0;  // global rank 0 exited (cleanly) while others ran
  bool ended = false;          // every rank is gone; final_status says how
  v1::WorkerMessage final_status;
  double final_sent_at = -1;  // < 0: not sent on the current session
  // The RUNNING status goes again (each new session, and every kResendSeconds) until the
  // coordinator acknowledges it: one sent on a session that broke would be lost.
  bool running_acked = false;
  double running_sent_at = -1;
};

namespace {

v1::WorkerMessage RunningStatus(const std::string& run_id, int32_t attempt) {
  v1::WorkerMessage running;
  running.mutable_status()->set_run_id(run_id);
  running.mutable_status()->set_attempt(attempt);
  running.mutable_status()->set_state(v1::RUN_STATE_RUNNING);
  return running;
}

}  // namespace

Supervisor::Supervisor(SupervisorOptions options, Spool& spool, Link& link)
    : o_(std::move(options)), spool_(spool), link_(link), idle_since_(Mono()) {
  timer_ = std::thread([this] { Tick(); });
}

Supervisor::~Supervisor() {
  Stop();
  bool stopped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped = stopped_children_;
  }
  if (!stopped) StopChildren();
  if (timer_.joinable()) timer_.join();
}

void Supervisor::Stop() {
  stopping_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// What the link asks and tells.

std::vector<v1::RunRef> Supervisor::Held(bool unreported_only) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::RunRef> out;
  for (const auto& [key, a] : attempts_) {
    if (unreported_only && a->final_sent_at >= 0) continue;
    v1::RunRef r;
    r.set_run_id(a->run_id);
    r.set_attempt(a->attempt);
    r.set_step(a->step);
    out.push_back(std::move(r));
  }
  return out;
}

void Supervisor::SessionOpened(const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mu_);
  worker_id_ = worker_id;
  session_open_ = true;
  // A new session has seen none of the final statuses.
  for (auto& [key, a] : attempts_) a->final_sent_at = -1;
}

void Supervisor::SessionClosed() {
  std::lock_guard<std::mutex> lock(mu_);
  session_open_ = false;
  cv_.notify_all();
}

void Supervisor::Replayed() {
  std::vector<std::string> keys;
  std::vector<v1::WorkerMessage> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const double now = Mono();
    for (const auto& [key, a] : attempts_) {
      keys.push_back(key);
      if (!a->ended && !a->running_acked) {
        running.push_back(RunningStatus(a->run_id, a->attempt));
        a->running_sent_at = now;
      }
    }
  }
  for (const v1::WorkerMessage& m : running) link_.Send(m);
  for (const std::string& k : keys) MaybeSendFinal(k);
}

void Supervisor::Handle(const v1::CoordinatorMessage& m) {
  switch (m.kind_case()) {
    case v1::CoordinatorMessage::kStart:
      Start(m.start());
      break;
    case v1::CoordinatorMessage::kCommand:
      Command(m.command());
      break;
    case v1::CoordinatorMessage::kAck: {
      const v1::TelemetryAck& a = m.ack();
      if (!a.error().empty()) {
        log::Warn(kLog, "the coordinator refused telemetry batch ", a.sequence(), " of ",
                  a.run_id(), " attempt ", a.attempt(), ": ", a.error());
      }
      spool_.Ack(a.run_id(), a.attempt(), a.sequence());
      if (o_.metrics) o_.metrics->Acked(a);
      MaybeSendFinal(AttemptKey(a.run_id(), a.attempt()));
      break;
    }
    case v1::CoordinatorMessage::kStatusAck: {
      const v1::StatusAck& a = m.status_ack();
      std::shared_ptr<Attempt> done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = attempts_.find(AttemptKey(a.run_id(), a.attempt()));
        if (it != attempts_.end() && a.state() == v1::RUN_STATE_RUNNING) {
          it->second->running_acked = true;
        }
        if (it != attempts_.end() && it->second->ended &&
            it->second->final_status.status().state() == a.state()) {
          done = std::move(it->second);
          attempts_.erase(it);
          if (attempts_.empty()) idle_since_ = Mono();
          cv_.notify_all();
        }
      }
      if (!a.error().empty()) {
        log::Warn(kLog, "the coordinator did not take the status of ", a.run_id(), " attempt ",
                  a.attempt(), ": ", a.error());
      }
      if (done) done->JoinRelay();
      break;
    }
    case v1::CoordinatorMessage::kLease:
    case v1::CoordinatorMessage::KIND_NOT_SET:
      break;
  }
}

Supervisor::Load Supervisor::CurrentLoad() {
  Load l;
  std::lock_guard<std::mutex> lock(mu_);
  for (const v1::Device& d : o_.devices) l.devices.emplace_back(d.kind(), busy_.count(d.id()) > 0);
  for (const auto& [key, a] : attempts_) l.children += a->alive;
  l.attempts = static_cast<int>(attempts_.size());
  l.idle_since = idle_since_;
  return l;
}

// Cancel grace periods, and final and RUNNING statuses left unacknowledged, until Stop.
void Supervisor::Tick() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    const double now = Mono();
    std::vector<std::string> finals;
    std::vector<v1::WorkerMessage> running;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const double grace = o_.attempt.cancel_grace_s;
      for (auto& [key, a] : attempts_) {
        if (a->term_at > 0 && !a->ended && !a->killed && now - a->term_at >= grace) {
          log::Warn(kLog, a->run_id, " attempt ", a->attempt, " still runs ", grace,
                    " s after SIGTERM; sending SIGKILL");
          a->SignalAll(SIGKILL);
          a->killed = true;
        }
        if (a->rank0_exited_at > 0 && a->term_at == 0 && a->alive > 0 &&
            now - a->rank0_exited_at >= o_.straggler_s) {
          log::Warn(kLog, a->run_id, " attempt ", a->attempt, ": ", a->alive, " rank(s) still run ",
                    o_.straggler_s, " s after rank 0 exited; stopping them (SIGTERM)");
          a->term_at = now;
          a->SignalAll(SIGTERM);
        }
        if (a->ended && a->final_sent_at >= 0 && now - a->final_sent_at > kResendSeconds) {
          a->final_sent_at = -1;
          finals.push_back(key);
        }
        if (!a->ended && !a->running_acked && now - a->running_sent_at > kResendSeconds) {
          running.push_back(RunningStatus(a->run_id, a->attempt));
          a->running_sent_at = now;
        }
      }
    }
    for (const v1::WorkerMessage& m : running) link_.Send(m);
    for (const std::string& k : finals) MaybeSendFinal(k);
  }
}

// ---------------------------------------------------------------------------------------------
// Attempts.

void Supervisor::Reject(const v1::StartRun& s, v1::RunState state, const std::string& reason) {
  log::Warn(kLog, s.run_id(), " attempt ", s.attempt(), ": ", reason);
  v1::WorkerMessage m;
  v1::RunStatus* st = m.mutable_status();
  st->set_run_id(s.run_id());
  st->set_attempt(s.attempt());
  st->set_state(state);
  st->set_reason(reason);
  link_.Send(m);
}

namespace {

// A port on 127.0.0.1 that is free now: the rendezvous of a run whose ranks are all on this
// worker. Another process may take it before rank 0 listens on it; the attempt then fails.
absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", std::strerror(err)));
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

}  // namespace

void Supervisor::Start(const v1::StartRun& s) {
  if (!ValidRunId(s.run_id()) || s.attempt() < 1) {
    log::Warn(kLog, "StartRun for run '", s.run_id(), "' attempt ", s.attempt(),
              " ignored: not a run id and attempt a coordinator gives");
    return;
  }
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempts_.count(AttemptKey(s.run_id(), s.attempt()))) return;  // already running it
    id = worker_id_;
  }
  if (stopping_) return Reject(s, v1::RUN_STATE_LOST, absl::StrCat(id, " is shutting down"));
  if (absl::Status c = CheckStartRun(s); !c.ok()) {
    return Reject(s, v1::RUN_STATE_FAILED, std::string(c.message()));
  }
  absl::StatusOr<std::string> kind = RunDeviceKind(s.config_json());
  if (!kind.ok()) return Reject(s, v1::RUN_STATE_FAILED, std::string(kind.status().message()));
  // Devices: the coordinator's bookkeeping says they are free; check.
  const int want = s.devices();
  std::vector<std::string> picked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    picked = PickDevices(o_.devices, busy_, *kind, want);
  }
  if (static_cast<int>(picked.size()) < want) {
    return Reject(s, v1::RUN_STATE_LOST,
                  absl::StrCat(id, " has ", picked.size(), " free ", *kind,
                               " device(s), the run needs ", want, "; back to the queue"));
  }
  const AttemptOptions& o = o_.attempt;
  const Ranks shape = RanksOf(s);
  // Only rank 0 reads the checkpoint; a node without it has nothing to resolve.
  std::string resume;
  if (!s.resume_checkpoint().empty() && shape.node_rank == 0) {
    absl::StatusOr<std::string> p = ResolveResume(o.checkpoint_root, s.resume_checkpoint(), id);
    if (!p.ok()) return Reject(s, v1::RUN_STATE_FAILED, std::string(p.status().message()));
    resume = *p;
  }
  int port = 0;
  if (!shape.single() && shape.nodes == 1) {
    absl::StatusOr<int> p = FreeLoopbackPort();
    if (!p.ok()) {
      return Reject(
          s, v1::RUN_STATE_FAILED,
          absl::StrCat("cannot pick a rendezvous port on ", id, ": ", p.status().message()));
    }
    port = *p;
  }
  const AttemptLaunch launch = PlanLaunch(s, o, picked, resume, port);
  if (absl::Status f = PrepareAttemptFiles(launch, s.config_json(), o.checkpoint_root, id);
      !f.ok()) {
    return Reject(s, v1::RUN_STATE_FAILED, std::string(f.message()));
  }
  auto a = std::make_shared<Attempt>();
  a->run_id = s.run_id();
  a->attempt = s.attempt();
  a->key = AttemptKey(s.run_id(), s.attempt());
  a->devices = picked;
  a->shape = shape;
  // Every rank or none: a rank that cannot start takes the started ones down with it (the
  // Child destructor kills and reaps).
  for (size_t i = 0; i < launch.children.size(); ++i) {
    absl::StatusOr<std::unique_ptr<Child>> child = Child::Spawn(launch.children[i]);
    if (!child.ok()) {
      return Reject(
          s, v1::RUN_STATE_FAILED,
          absl::StrCat("cannot start ", o.train_program,
                       shape.single() ? "" : absl::StrCat(" (rank ", shape.first() + i, ")"),
                       " on ", id, ": ", child.status().message()));
    }
    Rank r;
    r.rank = shape.first() + static_cast<int>(i);
    r.child = std::move(*child);
    r.stderr_path = launch.children[i].stderr_path;
    a->ranks.push_back(std::move(r));
  }
  a->alive = static_cast<int>(a->ranks.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& d : picked) busy_[d] = a->key;
    attempts_[a->key] = a;
  }
  std::vector<std::string> pids;
  for (const Rank& r : a->ranks) pids.push_back(absl::StrCat(r.child->pid()));
  log::Info(kLog, s.run_id(), " attempt ", s.attempt(), " (", s.name(), ") started as pid ",
            absl::StrJoin(pids, ","), " on ", absl::StrJoin(picked, ","),
            shape.single() ? std::string()
                           : absl::StrCat(", ranks ", shape.first(), "-",
                                          shape.first() + shape.local - 1, " of ", shape.world()),
            resume.empty() ? std::string() : absl::StrCat(", resuming ", resume));
  {
    std::lock_guard<std::mutex> lock(mu_);
    a->running_sent_at = Mono();
  }
  link_.Send(RunningStatus(a->run_id, a->attempt));
  for (size_t i = 0; i < a->ranks.size(); ++i) {
    a->ranks[i].waiter = std::thread([this, a, i] { WaitRank(a, i); });
  }
  a->relay = std::thread([this, a] { Relay(a); });
}

// Waits for one rank's exit. The first rank to fail on its own ends the attempt: the others are
// stopped (SIGTERM, SIGKILL after the grace period), and the final status names it.
void Supervisor::WaitRank(std::shared_ptr<Attempt> a, size_t i) {
  Rank& r = a->ranks[i];
  const int st = r.child->Wait();
  std::lock_guard<std::mutex> lock(mu_);
  r.wait_status = st;
  --a->alive;
  const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (!clean && a->term_at == 0 && a->failed < 0) {
    a->failed = static_cast<int>(i);
    if (a->alive > 0) {
      log::Warn(kLog, a->run_id, " attempt ", a->attempt, ": rank ", r.rank, " ended (",
                Child::DescribeExit(st), "); stopping the other ranks (SIGTERM)");
      a->term_at = Mono();
      a->SignalAll(SIGTERM);
    }
  } else if (r.rank == 0 && a->alive > 0 && a->term_at == 0) {
    a->rank0_exited_at = Mono();
  }
  cv_.notify_all();
}

void Supervisor::Command(const v1::RunCommand& c) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = attempts_.find(AttemptKey(c.run_id(), c.attempt()));
  if (it == attempts_.end() || it->second->ended) {
    log::Debug(kLog, "command for ", c.run_id(), " attempt ", c.attempt(), " ignored: not running");
    return;
  }
  Attempt& a = *it->second;
  // Every rank gets the signal: the ranks agree on it at the boundary.
  switch (c.kind()) {
    case v1::RunCommand::KIND_PAUSE:
      log::Info(kLog, a.run_id, ": pause at the next growth boundary (SIGUSR2)");
      a.SignalAll(SIGUSR2);
      break;
    case v1::RunCommand::KIND_SNAPSHOT:
      log::Info(kLog, a.run_id, ": snapshot at the next growth boundary (SIGUSR1)");
      a.SignalAll(SIGUSR1);
      break;
    case v1::RunCommand::KIND_CANCEL:
      if (a.cancel) break;
      log::Info(kLog, a.run_id, ": cancelled (SIGTERM; SIGKILL after ", o_.attempt.cancel_grace_s,
                " s)");
      a.cancel = true;
      a.term_at = Mono();
      a.SignalAll(SIGTERM);
      break;
    default:
      log::Warn(kLog, "unknown command kind ", static_cast<int>(c.kind()), " for ", a.run_id);
  }
}

// Reads local rank 0's events until it is gone, sending them as batches through the spool; then
// waits for every rank to exit, and reports the attempt's end. (A node without global rank 0
// has an events pipe that stays silent.)
void Supervisor::Relay(std::shared_ptr<Attempt> a) {
  EventTranslator t(o_.attempt.checkpoint_root);
  v1::TelemetryBatch batch;
  double first_row_at = 0;
  std::string buf;
  std::vector<char> chunk(1 << 16);
  const int fd = a->ranks.front().child->events_fd();
  auto add = [&](std::string_view line) {
    if (line.empty()) return;
    if (absl::Status s = t.Add(line, &batch); !s.ok()) {
      log::Warn(kLog, a->run_id, " attempt ", a->attempt, ": event skipped: ", s.message());
    }
    a->step = t.step();
    if (telemetry::RowCount(batch) > 0 && first_row_at == 0) first_row_at = Mono();
    if (t.flush_now() || telemetry::RowCount(batch) >= kBatchRows) {
      Flush(*a, batch);
      first_row_at = 0;
    }
  };
  while (true) {
    int timeout_ms = -1;
    if (first_row_at > 0) {
      timeout_ms = std::max(0, static_cast<int>(1000 * (first_row_at + kBatchSeconds - Mono())));
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR) break;
    if (r > 0) {
      const ssize_t n = ::read(fd, chunk.data(), chunk.size());
      if (n == 0) break;  // every writer is gone: the child exited
      if (n < 0 && errno != EINTR && errno != EAGAIN) break;
      if (n > 0) {
        buf.append(chunk.data(), static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
          add(std::string_view(buf).substr(start, nl - start));
        }
        buf.erase(0, start);
      }
    }
    if (first_row_at > 0 && Mono() - first_row_at >= kBatchSeconds) {
      Flush(*a, batch);
      first_row_at = 0;
    }
  }
  add(buf);  // a last line without its newline
  Flush(*a, batch);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return a->alive == 0; });
    // A rank killed by a SIGTERM the worker did not send: a batch system that ends the job
    // (scancel, a time limit) signals every process of it at once, this worker too. Wait a
    // moment for the worker's own stop, so that the run is reported LOST like the others and
    // not FAILED for a crash.
    if (a->failed >= 0) {
      const int st = a->ranks[static_cast<size_t>(a->failed)].wait_status;
      if (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) {
        cv_.wait_for(lock, std::chrono::duration<double>(kOutsideTermSeconds),
                     [&] { return stopping_.load(); });
      }
    }
  }
  Ended(*a, t);
  MaybeSendFinal(a->key);
}

void Supervisor::Flush(Attempt& a, v1::TelemetryBatch& batch) {
  if (telemetry::RowCount(batch) == 0) return;
  batch.set_run_id(a.run_id);
  batch.set_attempt(a.attempt);
  batch.set_sequence(a.next_sequence++);
  // Waits while the spool is full (the child then waits on its pipe); gives up on shutdown.
  absl::Status s = spool_.Append(batch, [this] { return stopping_.load(); });
  if (!s.ok() && !absl::IsCancelled(s)) {
    log::Error(kLog, "spool: ", s.message(), "; sending batch ", batch.sequence(), " of ", a.run_id,
               " unspooled");
  }
  if (o_.metrics) o_.metrics->Rows(telemetry::RowCount(batch));
  v1::WorkerMessage m;
  *m.mutable_telemetry() = std::move(batch);
  // Not sent now: it goes with the next replay.
  if (!absl::IsCancelled(s)) {
    if (o_.metrics) o_.metrics->Sending(m.telemetry());
    link_.Send(m);
  }
  batch.Clear();
}

void Supervisor::Ended(Attempt& a, const EventTranslator& t) {
  AttemptEnd e;
  e.run_id = a.run_id;
  e.attempt = a.attempt;
  e.cancel_grace_s = o_.attempt.cancel_grace_s;
  e.ranks = a.shape;
  e.stderr_tail = Child::Tail(a.ranks.front().stderr_path, kStderrTailBytes);
  int failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed = a.failed;
  }
  if (failed >= 0) {
    e.failed_stderr_tail =
        Child::Tail(a.ranks[static_cast<size_t>(failed)].stderr_path, kStderrTailBytes);
  }
  std::lock_guard<std::mutex> lock(mu_);
  e.wait_status = a.ranks.front().wait_status;
  for (size_t i = 1; i < a.ranks.size(); ++i) {
    const int w = a.ranks[i].wait_status;
    e.others_clean = e.others_clean && WIFEXITED(w) && WEXITSTATUS(w) == 0;
  }
  if (failed >= 0) {
    e.failed_rank = a.ranks[static_cast<size_t>(failed)].rank;
    e.failed_wait_status = a.ranks[static_cast<size_t>(failed)].wait_status;
  }
  for (const std::string& d : a.devices) busy_.erase(d);
  e.worker_id = worker_id_;
  e.cancelled = a.cancel;
  e.killed = a.killed;
  e.shutting_down = stopping_;
  v1::WorkerMessage m;
  *m.mutable_status() = FinalStatus(e, t);
  if (o_.metrics) o_.metrics->Exit(m.status().state());
  std::vector<std::string> exits;
  for (const Rank& r : a.ranks) {
    exits.push_back(a.shape.single()
                        ? Child::DescribeExit(r.wait_status)
                        : absl::StrCat("rank ", r.rank, ": ", Child::DescribeExit(r.wait_status)));
  }
  log::Info(kLog, a.run_id, " attempt ", a.attempt,
            " ended: ", v1::RunState_Name(m.status().state()), " at step ", t.step(), " (",
            absl::StrJoin(exits, ", "), ")");
  a.final_status = std::move(m);
  a.ended = true;
  cv_.notify_all();
}

// The final status goes once every batch of the attempt is acknowledged, so that the
// coordinator has the attempt's telemetry before it hears how it ended.
void Supervisor::MaybeSendFinal(const std::string& key) {
  v1::WorkerMessage m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(key);
    if (it == attempts_.end()) return;
    Attempt& a = *it->second;
    if (!a.ended || a.final_sent_at >= 0 || spool_.Pending(a.run_id, a.attempt) > 0) return;
    a.final_sent_at = Mono();
    m = a.final_status;
  }
  if (!link_.Send(m)) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(key);
    if (it != attempts_.end()) it->second->final_sent_at = -1;
  }
}

void Supervisor::StopChildren() {
  v1::WorkerMessage drain;
  drain.mutable_heartbeat()->set_draining(true);
  for (const v1::RunRef& r : Held(/*unreported_only=*/true))
    *drain.mutable_heartbeat()->add_runs() = r;
  link_.Send(drain);  // before the lost statuses below free its devices at the coordinator
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, a] : attempts_) {
      if (a->ended) continue;
      log::Info(kLog, "stopping ", a->run_id, " attempt ", a->attempt, " (SIGTERM)");
      a->term_at = Mono();
      a->SignalAll(SIGTERM);
    }
  }
  auto wait_for = [&](double seconds, const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(seconds), done);
  };
  wait_for(o_.attempt.cancel_grace_s, [&] {
    return std::all_of(attempts_.begin(), attempts_.end(),
                       [](auto& kv) { return kv.second->ended; });
  });
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, a] : attempts_) {
      if (!a->ended) a->SignalAll(SIGKILL);
    }
  }
  wait_for(kDrainSeconds, [&] { return attempts_.empty() || !session_open_; });
  std::map<std::string, std::shared_ptr<Attempt>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_children_ = true;
    left = attempts_;
  }
  for (auto& [key, a] : left) a->JoinRelay();
}

}  // namespace sgt::worker
