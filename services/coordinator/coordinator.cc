// The coordinator (coordinator.h): creation from the store, the read-only queries (sweeps,
// runs, workers, watches), the tick, and Flush, which does after the lock what changes under
// it left to do. Actions, the worker protocol, ingestion and dispatch are in their own files.
#include "services/coordinator/coordinator.h"

#include <chrono>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/common/ids.h"
#include "services/common/log.h"

namespace sgt::coord {

namespace {

constexpr char kLog[] = "coordinator";

CoordinatorOptions WithDefaultClock(CoordinatorOptions o) {
  if (!o.clock) {
    o.clock = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  return o;
}

}  // namespace

Coordinator::Coordinator(Store* store, CoordinatorOptions options)
    : store_(store),
      options_(WithDefaultClock(std::move(options))),
      book_(store, options_.metrics, options_.clock),
      fleet_(store, options_.lease_seconds, options_.clock) {}

Coordinator::~Coordinator() = default;

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(Store* store,
                                                                 CoordinatorOptions options) {
  std::unique_ptr<Coordinator> c(new Coordinator(store, std::move(options)));
  c->started_at_ = c->Now();
  Outbox out;
  {
    absl::MutexLock lock(&c->mu_);
    if (absl::Status s = c->book_.Load(); !s.ok()) return s;
    if (absl::Status s = c->fleet_.Load(c->book_, c->started_at_); !s.ok()) return s;
    // Runs active before a restart: their series start from every decision stored so far.
    for (const auto& [id, r] : c->book_.runs()) c->book_.TrackMetrics(r, -1, out);
    log::Info(kLog, "loaded ", c->book_.sweeps().size(), " sweeps, ", c->book_.runs().size(),
              " runs, ", c->fleet_.workers().size(), " workers from ", store->path());
  }
  c->Flush(out);
  return c;
}

void Coordinator::Flush(Outbox& out) {
  for (auto& [sink, message] : out.messages) {
    if (!sink->Send(message)) {
      log::Warn(kLog, "a worker session closed before a message reached it; its lease decides");
    }
  }
  out.messages.clear();
  for (const std::function<void()>& observe : out.observe) observe();
  out.observe.clear();
}

void Coordinator::Tick() {
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    fleet_.ExpireLeases(book_, out);
    RecoverStranded(out);
    Schedule(out);
  }
  Flush(out);
}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;  // waiting watches see it as the lock is released
}

FleetCounts Coordinator::Fleet() {
  absl::MutexLock lock(&mu_);
  FleetCounts f;
  fleet_.Count(&f);
  for (v1::RunState s : {v1::RUN_STATE_QUEUED, v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_RUNNING,
                         v1::RUN_STATE_PAUSING, v1::RUN_STATE_PAUSED, v1::RUN_STATE_LOST,
                         v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_FAILED, v1::RUN_STATE_CANCELLED}) {
    f.runs[RunStateName(s)] = 0;
  }
  for (const auto& [id, r] : book_.runs()) f.runs[RunStateName(r.state)] += 1;
  f.queue_depth = f.runs["queued"];
  return f;
}

// ---------------------------------------------------------------------------------------------
// Queries.

v1::ListSweepsResponse Coordinator::ListSweeps() {
  absl::MutexLock lock(&mu_);
  v1::ListSweepsResponse resp;
  for (const auto& [id, s] : book_.sweeps()) *resp.add_sweeps() = book_.ToProto(s);
  return resp;
}

absl::StatusOr<v1::GetSweepResponse> Coordinator::GetSweep(const v1::GetSweepRequest& req) {
  const int64_t sid = ParseId(req.sweep_id(), 's');
  if (sid == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sweep_id '", req.sweep_id(), "': not a sweep id; write s<N> (`sgtctl ls` lists them)"));
  }
  absl::MutexLock lock(&mu_);
  auto it = book_.sweeps().find(sid);
  if (it == book_.sweeps().end()) {
    return absl::NotFoundError(
        absl::StrCat("sweep ", req.sweep_id(), " not found; `sgtctl ls` lists the sweeps"));
  }
  v1::GetSweepResponse resp;
  *resp.mutable_sweep() = book_.ToProto(it->second);
  for (const auto& [id, r] : book_.runs()) {
    if (r.sweep_id == sid) *resp.add_runs() = book_.ToProto(r);
  }
  return resp;
}

absl::StatusOr<v1::ListRunsResponse> Coordinator::ListRuns(const v1::ListRunsRequest& req) {
  int64_t sid = 0;
  if (!req.sweep_id().empty()) {
    sid = ParseId(req.sweep_id(), 's');
    if (sid == 0) {
      return absl::InvalidArgumentError(absl::StrCat("sweep_id '", req.sweep_id(),
                                                     "': not a sweep id; write s<N> or leave it "
                                                     "empty for every sweep"));
    }
  }
  if (req.page_size() < 0 || req.page_size() > kMaxPageRuns) {
    return absl::InvalidArgumentError(absl::StrCat("page_size ", req.page_size(), ": 0 (", kDefaultPageRuns,
                                                   " runs) to ", kMaxPageRuns));
  }
  const int page_size = req.page_size() == 0 ? kDefaultPageRuns : req.page_size();
  // The token is the id of the last run of the previous page: "after:r<N>".
  int64_t after = 0;
  if (!req.page_token().empty()) {
    const std::string prefix = "after:";
    if (req.page_token().rfind(prefix, 0) != 0 ||
        (after = ParseId(req.page_token().substr(prefix.size()), 'r')) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page_token '", req.page_token(),
          "': not a token ListRuns gave; pass next_page_token as it came, or \"\" for the first "
          "page"));
    }
  }
  const std::set<int> states(req.states().begin(), req.states().end());
  absl::MutexLock lock(&mu_);
  if (sid != 0 && !book_.sweeps().count(sid)) {
    return absl::NotFoundError(
        absl::StrCat("sweep ", req.sweep_id(), " not found; `sgtctl ls` lists the sweeps"));
  }
  v1::ListRunsResponse resp;
  size_t bytes = 0;
  int64_t last = 0;  // the id of the page's last run
  for (auto it = book_.runs().upper_bound(after); it != book_.runs().end(); ++it) {
    const RunRow& r = it->second;
    if (sid != 0 && r.sweep_id != sid) continue;
    if (!states.empty() && !states.count(r.state)) continue;
    if (resp.runs_size() >= page_size || (resp.runs_size() > 0 && bytes >= kPageBytes)) {
      resp.set_next_page_token(absl::StrCat("after:", RunId(last)));
      break;
    }
    v1::Run* p = resp.add_runs();
    *p = book_.ToProto(r);
    bytes += p->ByteSizeLong();
    last = it->first;
  }
  return resp;
}

std::vector<v1::WatchResponse> Coordinator::WatchPages(std::vector<v1::Run> runs, bool done) {
  std::vector<v1::WatchResponse> pages(1);
  size_t bytes = 0;
  for (v1::Run& r : runs) {
    v1::WatchResponse* page = &pages.back();
    if (page->runs_size() >= kDefaultPageRuns || (page->runs_size() > 0 && bytes >= kPageBytes)) {
      page->set_more(true);
      pages.emplace_back();
      page = &pages.back();
      bytes = 0;
    }
    bytes += r.ByteSizeLong();
    *page->add_runs() = std::move(r);
  }
  pages.back().set_done(done);
  return pages;
}

absl::StatusOr<v1::GetRunResponse> Coordinator::GetRun(const v1::GetRunRequest& req) {
  const int64_t rid = ParseId(req.run_id(), 'r');
  if (rid == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run_id '", req.run_id(), "': not a run id; write r<N> (`sgtctl ls SWEEP` lists them)"));
  }
  v1::GetRunResponse resp;
  {
    absl::MutexLock lock(&mu_);
    const RunRow* r = book_.Find(rid);
    if (r == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("run ", req.run_id(), " not found; `sgtctl ls SWEEP` lists the runs"));
    }
    *resp.mutable_run() = book_.ToProto(*r);
  }
  // Store reads use their own connection: no need to hold the coordinator's lock.
  absl::StatusOr<std::vector<RunEventRow>> events = store_->RunEvents(rid);
  if (!events.ok()) return FromStore(events.status());
  for (const RunEventRow& e : *events) {
    v1::RunEvent* p = resp.add_events();
    p->set_run_id(RunId(e.run_id));
    p->set_time(e.time);
    p->set_attempt(e.attempt);
    p->set_from_state(e.from_state);
    p->set_to_state(e.to_state);
    p->set_reason(e.reason);
  }
  absl::StatusOr<std::vector<v1::CheckpointRecord>> cks = store_->Checkpoints(rid);
  if (!cks.ok()) return FromStore(cks.status());
  for (v1::CheckpointRecord& c : *cks) {
    c.set_run_id(RunId(rid));
    *resp.add_checkpoints() = std::move(c);
  }
  absl::StatusOr<RunCounts> counts = store_->Counts(rid);
  if (!counts.ok()) return FromStore(counts.status());
  resp.set_decisions(counts->decisions);
  resp.set_entropy_rows(counts->entropy_rows);
  resp.set_scalar_rows(counts->scalar_rows);
  return resp;
}

v1::ListWorkersResponse Coordinator::ListWorkers() {
  absl::MutexLock lock(&mu_);
  v1::ListWorkersResponse resp;
  for (const auto& [id, w] : fleet_.workers()) *resp.add_workers() = fleet_.ToProto(*w);
  return resp;
}

absl::StatusOr<std::vector<v1::Run>> Coordinator::WatchRuns(const std::string& target,
                                                            uint64_t* seen, double timeout_s,
                                                            bool* done) {
  absl::MutexLock lock(&mu_);
  if (*seen != 0) {
    const uint64_t after = *seen;
    auto changed = [this, after] {
      mu_.AssertHeld();
      return shutdown_ || book_.version() > after;
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Seconds(timeout_s));
  }
  if (shutdown_) {
    return absl::UnavailableError("sgt-coordinator is shutting down; watch again once it is back");
  }
  absl::StatusOr<std::vector<RunRow*>> targets = book_.Targets(target);
  if (!targets.ok()) return targets.status();
  std::vector<v1::Run> out;
  bool all_ended = true;
  for (RunRow* r : *targets) {
    all_ended = all_ended && IsEnded(r->state);
    if (*seen == 0 || book_.version_of(r->id) > *seen) out.push_back(book_.ToProto(*r));
  }
  *seen = book_.version();
  *done = all_ended;
  return out;
}

absl::StatusOr<std::vector<int64_t>> Coordinator::ResolveRuns(const std::string& target) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<RunRow*>> targets = book_.Targets(target);
  if (!targets.ok()) return targets.status();
  std::vector<int64_t> ids;
  for (RunRow* r : *targets) ids.push_back(r->id);
  return ids;
}

}  // namespace sgt::coord
