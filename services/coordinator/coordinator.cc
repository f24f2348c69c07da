#include "services/coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"
#include "libsgt/core/sha256.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"
#include "services/common/log.h"
#include "services/common/sweep.h"

namespace sgt::coord {

using json = nlohmann::json;

namespace {

constexpr char kLog[] = "coordinator";

// Rows in one telemetry batch. sgt-train's events come in batches of a few hundred rows; a
// bigger one would hold the store's writer (and every state change behind it) for seconds.
constexpr int64_t kMaxBatchRows = 65536;

// Attempts one worker may list in a hello or heartbeat (a worker runs a few at once).
constexpr int kMaxHeldRuns = 1024;

bool IsActive(v1::RunState s) {
  return s == v1::RUN_STATE_ASSIGNED || s == v1::RUN_STATE_RUNNING || s == v1::RUN_STATE_PAUSING;
}
bool IsEnded(v1::RunState s) {
  return s == v1::RUN_STATE_SUCCEEDED || s == v1::RUN_STATE_FAILED || s == v1::RUN_STATE_CANCELLED;
}

std::string HashOf(const std::string& canonical) {
  return Sha256Hex(canonical.data(), canonical.size());
}

// The whole configuration a worker needs: the canonical JSON (what changes the losses) plus the
// run's name and checkpoint schedule, which CanonicalJson leaves out. RunConfigFromJson reads it.
std::string WorkerConfigJson(const RunConfig& cfg) {
  json j = json::parse(CanonicalJson(cfg));
  j["name"] = cfg.name;
  j["checkpoint"] = {{"at_boundaries", cfg.checkpoint.at_boundaries},
                     {"every", cfg.checkpoint.every},
                     {"keep", cfg.checkpoint.keep},
                     {"final", cfg.checkpoint.final}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string DeviceKindOf(const std::string& config_json) {
  json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("train") && j["train"].is_object() &&
      j["train"].contains("device") && j["train"]["device"].is_string()) {
    return j["train"]["device"].get<std::string>();
  }
  return "cpu";
}

// How RunMetrics fields are named in a `scalars` event and in summary.json (docs/events.md).
struct MetricName {
  const char* scalar;  // "" when scalars events do not carry it
  const char* summary;
  void (*set)(v1::RunMetrics*, double);
};
constexpr MetricName kMetricNames[] = {
    {"loss", "final_loss", [](v1::RunMetrics* m, double v) { m->set_loss(v); }},
    {"val_loss", "val_loss", [](v1::RunMetrics* m, double v) { m->set_val_loss(v); }},
    {"val_ppl", "val_ppl", [](v1::RunMetrics* m, double v) { m->set_val_ppl(v); }},
    {"tokens_per_s", "tokens_per_s", [](v1::RunMetrics* m, double v) { m->set_tokens_per_s(v); }},
    {"flops", "train_flops", [](v1::RunMetrics* m, double v) { m->set_train_flops(v); }},
    {"vanilla_flops", "vanilla_flops",
     [](v1::RunMetrics* m, double v) { m->set_vanilla_flops(v); }},
    {"overhead", "overhead_vs_vanilla", [](v1::RunMetrics* m, double v) { m->set_overhead(v); }},
    {"tokens", "tokens",
     [](v1::RunMetrics* m, double v) { m->set_tokens(static_cast<int64_t>(v)); }},
    {"", "train_seconds", [](v1::RunMetrics* m, double v) { m->set_train_seconds(v); }},
};

void MetricsFromSummary(const json& s, v1::RunMetrics* m) {
  for (const MetricName& n : kMetricNames) {
    if (s.contains(n.summary) && s[n.summary].is_number()) n.set(m, s[n.summary].get<double>());
  }
}

void MetricFromScalar(const std::string& name, double v, v1::RunMetrics* m) {
  for (const MetricName& n : kMetricNames) {
    if (*n.scalar != 0 && name == n.scalar) n.set(m, v);
  }
}

// A pause, snapshot or cancel of one attempt.
v1::CoordinatorMessage CommandMessage(v1::RunCommand::Kind kind, const std::string& run_id,
                                      int32_t attempt) {
  v1::CoordinatorMessage m;
  v1::RunCommand* c = m.mutable_command();
  c->set_kind(kind);
  c->set_run_id(run_id);
  c->set_attempt(attempt);
  return m;
}

// A store failure as the caller should see it: the coordinator's own trouble (INTERNAL, or
// UNAVAILABLE when SQLite is busy), never a code that means something else on the wire
// (FAILED_PRECONDITION from a constraint, PERMISSION_DENIED from a read-only file).
absl::Status FromStore(const absl::Status& s) {
  if (s.ok()) return s;
  if (s.code() == absl::StatusCode::kUnavailable) return s;
  return absl::InternalError(s.message());
}

absl::Status BadTarget(const std::string& target) {
  return absl::InvalidArgumentError(
      absl::StrCat("target '", target,
                   "': not a run or sweep id; write r<N> for a run or s<N> for a sweep "
                   "(`sgtctl ls` lists them)"));
}

}  // namespace

struct Coordinator::WorkerState {
  WorkerRow row;
  std::shared_ptr<WorkerSink> sink;  // null while disconnected
  uint64_t session = 0;
  double lease_expires = 0;
  struct Held {
    int32_t attempt = 0;
    int32_t devices = 0;
    std::string kind;
    double since = 0;  // when it was assigned (or, after a restart, loaded)
  };
  std::map<int64_t, Held> held;  // run id -> the attempt this worker holds
  bool draining = false;         // shutting down (its heartbeat says): nothing new for it
  // Attempts the worker still runs that the coordinator cancelled on it (superseded after a
  // lost lease, say): their devices stay busy until the worker stops listing them or reports
  // how they ended.
  std::map<std::pair<int64_t, int32_t>, Held> stopping;

  std::map<std::string, int32_t> Total() const {
    std::map<std::string, int32_t> t;
    for (const v1::Device& d : row.devices) t[d.kind()] += 1;
    return t;
  }
  std::map<std::string, int32_t> Free() const {
    std::map<std::string, int32_t> f = Total();
    for (const auto& [id, h] : held) f[h.kind] -= h.devices;
    for (const auto& [key, h] : stopping) f[h.kind] -= h.devices;
    return f;
  }
};

struct Coordinator::Outbox {
  std::vector<std::pair<std::shared_ptr<WorkerSink>, v1::CoordinatorMessage>> messages;
  void Add(const std::shared_ptr<WorkerSink>& sink, v1::CoordinatorMessage m) {
    if (sink) messages.emplace_back(sink, std::move(m));
  }
};

Coordinator::Coordinator(Store* store, CoordinatorOptions options)
    : store_(store), options_(std::move(options)) {
  if (!options_.clock) {
    options_.clock = [] {
      return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

Coordinator::~Coordinator() = default;

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(Store* store,
                                                                 CoordinatorOptions options) {
  std::unique_ptr<Coordinator> c(new Coordinator(store, std::move(options)));
  c->started_at_ = c->Now();
  absl::StatusOr<std::vector<SweepRow>> sweeps = store->LoadSweeps();
  if (!sweeps.ok()) return sweeps.status();
  for (SweepRow& s : *sweeps) c->sweeps_[s.id] = std::move(s);
  absl::StatusOr<std::vector<RunRow>> runs = store->LoadRuns();
  if (!runs.ok()) return runs.status();
  for (RunRow& r : *runs) c->runs_[r.id] = std::move(r);
  absl::StatusOr<std::vector<WorkerRow>> workers = store->LoadWorkers();
  if (!workers.ok()) return workers.status();
  for (WorkerRow& w : *workers) {
    auto ws = std::make_unique<WorkerState>();
    // A grace period: a worker that was connected before the restart has one lease to come
    // back before its runs count as lost.
    ws->lease_expires = c->started_at_ + c->options_.lease_seconds;
    c->next_worker_ = std::max(c->next_worker_, ParseId(w.id, 'w') + 1);
    ws->row = std::move(w);
    c->workers_[ws->row.id] = std::move(ws);
  }
  for (auto& [id, r] : c->runs_) {
    c->run_version_[id] = c->version_;
    if (!IsActive(r.state)) continue;
    auto w = c->workers_.find(r.worker_id);
    if (w == c->workers_.end()) continue;  // Tick() finds it orphaned and re-queues it
    w->second->held[id] = {r.attempt, r.devices, DeviceKindOf(r.config_json), c->started_at_};
  }
  // Runs active before a restart: their series start from every decision stored so far.
  for (const auto& [id, r] : c->runs_) c->TrackMetrics(r, -1);
  log::Info(kLog, "loaded ", c->sweeps_.size(), " sweeps, ", c->runs_.size(), " runs, ",
            c->workers_.size(), " workers from ", store->path());
  return c;
}

double Coordinator::Now() const { return options_.clock(); }

void Coordinator::Bump(int64_t run_id) {
  ++version_;
  run_version_[run_id] = version_;
  changed_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Conversions.

v1::Run Coordinator::ToProto(const RunRow& r) const {
  v1::Run p;
  p.set_id(RunId(r.id));
  p.set_sweep_id(SweepId(r.sweep_id));
  p.set_name(r.name);
  p.set_variant(r.variant);
  p.set_state(r.state);
  p.set_reason(r.reason);
  p.set_priority(r.priority);
  p.set_devices(r.devices);
  p.set_step(r.step);
  p.set_steps(r.steps);
  p.set_attempt(r.attempt);
  p.set_restarts(r.restarts);
  p.set_worker_id(r.worker_id);
  p.set_config_json(r.config_json);
  p.set_config_hash(r.config_hash);
  for (const auto& [k, v] : r.settings) {
    v1::Setting* s = p.add_settings();
    s->set_key(k);
    s->set_value(v);
  }
  if (r.parent_run_id > 0) p.set_parent_run_id(RunId(r.parent_run_id));
  p.set_parent_step(r.parent_step);
  p.set_resume_checkpoint(r.resume_checkpoint);
  *p.mutable_metrics() = r.metrics;
  p.set_summary_json(r.summary_json);
  p.set_created_at(r.created_at);
  p.set_updated_at(r.updated_at);
  return p;
}

v1::Sweep Coordinator::ToProto(const SweepRow& s) const {
  v1::Sweep p;
  p.set_id(SweepId(s.id));
  p.set_name(s.name);
  p.set_priority(s.priority);
  p.set_max_concurrent(s.max_concurrent);
  p.set_max_restarts(s.max_restarts);
  p.set_source_name(s.source_name);
  p.set_source_yaml(s.source_yaml);
  p.set_created_at(s.created_at);
  std::map<v1::RunState, int32_t> counts;
  int32_t n = 0;
  for (const auto& [id, r] : runs_) {
    if (r.sweep_id != s.id) continue;
    ++counts[r.state];
    ++n;
  }
  for (const auto& [state, count] : counts) {
    v1::StateCount* c = p.add_runs_by_state();
    c->set_state(state);
    c->set_count(count);
  }
  p.set_runs(n);
  return p;
}

v1::Worker Coordinator::ToProto(const WorkerState& w) const {
  v1::Worker p;
  p.set_id(w.row.id);
  p.set_name(w.row.name);
  p.set_hostname(w.row.hostname);
  for (const v1::Device& d : w.row.devices) *p.add_devices() = d;
  int32_t free = 0;
  for (const auto& [kind, n] : w.Free()) free += n;
  p.set_free_devices(free);
  p.set_connected(w.sink != nullptr);
  p.set_registered_at(w.row.registered_at);
  p.set_last_seen(w.row.last_seen);
  p.set_lease_expires_at(w.lease_expires);
  for (const auto& [id, h] : w.held) p.add_run_ids(RunId(id));
  return p;
}

// ---------------------------------------------------------------------------------------------
// State changes. Every one goes through the store first.

absl::Status Coordinator::Transition(RunRow& run, v1::RunState to, const std::string& reason) {
  RunRow next = run;
  RunEventRow ev;
  ev.run_id = run.id;
  ev.time = Now();
  ev.attempt = run.attempt;
  ev.from_state = run.state;
  ev.to_state = to;
  ev.reason = reason;
  next.state = to;
  next.reason = reason;
  next.updated_at = ev.time;
  if (absl::Status s = store_->TransitionRun(next, ev); !s.ok()) {
    log::Error(kLog, "store: ", s.message());
    return FromStore(s);
  }
  log::Info(kLog, RunId(run.id), " ", RunStateName(run.state), " -> ", RunStateName(to), ": ",
            reason);
  run = std::move(next);
  Bump(run.id);
  if (options_.metrics != nullptr) {
    // A run's series live while it is active; a resumed one starts from its checkpoint's growth.
    if (IsActive(to)) {
      TrackMetrics(run, run.resume_step);
    } else {
      options_.metrics->science().Drop(run.id);
    }
  }
  return absl::OkStatus();
}

void Coordinator::TrackMetrics(const RunRow& run, int64_t past_to_step) {
  if (options_.metrics == nullptr || !IsActive(run.state) ||
      options_.metrics->science().Tracked(run.id)) {
    return;
  }
  RunInfo info;
  auto sweep = sweeps_.find(run.sweep_id);
  info.sweep = sweep != sweeps_.end() ? sweep->second.name : SweepId(run.sweep_id);
  info.run = RunId(run.id);
  info.name = run.name;
  info.variant = run.variant;
  info.target_steps = run.steps;
  info.step = run.step;
  ReadModelShape(run.config_json, &info);
  std::vector<v1::GrowthDecision> past;
  if (past_to_step != 0) {
    TelemetryFilter f;
    f.run_id = run.id;
    f.to_step = std::max<int64_t>(past_to_step, 0);
    for (;;) {
      absl::StatusOr<DecisionPage> page = store_->QueryDecisions(f);
      if (!page.ok()) {  // the series start without the past; the run is unaffected
        log::Warn(kLog, RunId(run.id), ": metrics start without its past decisions: ",
                  page.status().message());
        break;
      }
      past.insert(past.end(), page->rows.begin(), page->rows.end());
      if (page->next == 0) break;
      f.cursor = page->next;
    }
  }
  options_.metrics->science().Track(run.id, std::move(info), past);
}

FleetCounts Coordinator::Fleet() {
  std::lock_guard<std::mutex> lock(mu_);
  FleetCounts f;
  const double now = Now();
  f.workers_registered = static_cast<int>(workers_.size());
  for (const auto& [id, w] : workers_) {
    if (w->sink == nullptr || w->lease_expires < now) continue;
    f.workers_connected += 1;
    const std::map<std::string, int32_t> total = w->Total(), free = w->Free();
    for (const auto& [kind, n] : total) {
      auto fr = free.find(kind);
      const int nfree = std::clamp(fr == free.end() ? 0 : fr->second, 0, n);
      f.devices[{kind, "free"}] += nfree;
      f.devices[{kind, "busy"}] += n - nfree;
    }
  }
  for (v1::RunState s :
       {v1::RUN_STATE_QUEUED, v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_RUNNING, v1::RUN_STATE_PAUSING,
        v1::RUN_STATE_PAUSED, v1::RUN_STATE_LOST, v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_FAILED,
        v1::RUN_STATE_CANCELLED}) {
    f.runs[RunStateName(s)] = 0;
  }
  for (const auto& [id, r] : runs_) f.runs[RunStateName(r.state)] += 1;
  f.queue_depth = f.runs["queued"];
  return f;
}

// A run whose worker went away (via = LOST) goes back to the queue from its newest checkpoint,
// or fails once it has used its restarts.
absl::Status Coordinator::Requeue(RunRow& run, v1::RunState via, const std::string& reason,
                                  bool count_restart) {
  const bool was_pausing = run.state == v1::RUN_STATE_PAUSING;
  if (absl::Status s = Transition(run, via, reason); !s.ok()) return s;
  run.worker_id.clear();
  return AfterLoss(run, was_pausing, reason, count_restart);
}

// Where a lost run goes next. Changes go to a copy, kept only once stored: a failed write leaves
// the run `lost` as it was, for RecoverStranded to finish.
absl::Status Coordinator::AfterLoss(RunRow& run, bool was_pausing, const std::string& reason,
                                    bool count_restart) {
  RunRow next = run;
  absl::Status s;
  if (was_pausing) {  // the user asked it to stop: it stays stopped, at its newest checkpoint
    s = Transition(
        next, v1::RUN_STATE_PAUSED,
        next.resume_checkpoint.empty()
            ? std::string("paused: its worker was lost while pausing, before any checkpoint; "
                          "resume starts it from the beginning")
            : absl::StrCat("paused: its worker was lost while pausing; resume continues from its "
                           "checkpoint at step ",
                           next.resume_step));
  } else if (!count_restart) {
    s = Transition(next, v1::RUN_STATE_QUEUED,
                   "back in the queue (the attempt never started; no restart counted)");
  } else if (const SweepRow& sweep = sweeps_[next.sweep_id]; next.restarts >= sweep.max_restarts) {
    s = Transition(
        next, v1::RUN_STATE_FAILED,
        absl::StrCat(reason, "; restart limit reached (max_restarts ", sweep.max_restarts,
                     "); raise max_restarts with a new sweep or fork the run"));
  } else {
    next.restarts += 1;
    const std::string from = next.resume_checkpoint.empty()
                                 ? std::string("from the start (no checkpoint yet)")
                                 : absl::StrCat("from its checkpoint at step ", next.resume_step);
    s = Transition(next, v1::RUN_STATE_QUEUED,
                   absl::StrCat("re-queued ", from, " (restart ", next.restarts, " of ",
                                sweep.max_restarts, ")"));
  }
  if (s.ok()) run = std::move(next);
  return s;
}

// Runs that a failed store write left half-way, finished on a later tick: lost but not yet
// re-queued, or active on a worker that does not hold them (the loss itself was not stored).
void Coordinator::RecoverStranded() {
  for (auto& [rid, r] : runs_) {
    if (r.state == v1::RUN_STATE_LOST) {
      (void)AfterLoss(r, /*was_pausing=*/false, "lost", /*count_restart=*/true);
      continue;
    }
    if (!IsActive(r.state)) continue;
    auto w = workers_.find(r.worker_id);
    if (w == workers_.end()) continue;  // ExpireLeases loses those
    auto h = w->second->held.find(rid);
    if (h == w->second->held.end() || h->second.attempt != r.attempt) {
      (void)Requeue(r, v1::RUN_STATE_LOST,
                    absl::StrCat("worker ", r.worker_id, " no longer holds attempt ", r.attempt,
                                 " (its loss could not be stored at the time)"));
    }
  }
}

bool Coordinator::BoundaryAhead(const RunRow& r) const {
  absl::StatusOr<RunConfig> cfg = RunConfigFromJson(r.config_json);
  if (!cfg.ok() || cfg->variant == Variant::kVanilla) return false;
  // The first boundary after r.step in closed form (train.steps may be huge; no step loop), then
  // confirmed by the rule itself.
  const GrowthConfig& g = cfg->growth;
  const int64_t after = std::max<int64_t>(r.step, 0);
  int64_t next = 0;
  if (g.schedule == GrowthSchedule::kFixed) {
    next = g.fixed_from_step;
  } else if (cfg->variant == Variant::kBlockLoop || g.delta_t <= 0 || after < g.t_start) {
    next = g.t_start;
  } else {
    next = g.t_start + ((after - g.t_start) / g.delta_t + 1) * g.delta_t;
  }
  return next > after && next <= cfg->train.steps && IsGrowthBoundary(*cfg, next);
}

void Coordinator::Release(const std::string& worker_id, int64_t run_id) {
  auto w = workers_.find(worker_id);
  if (w != workers_.end()) w->second->held.erase(run_id);
}

void Coordinator::Command(Outbox& out, const RunRow& run, v1::RunCommand::Kind kind) {
  auto w = workers_.find(run.worker_id);
  if (w == workers_.end()) return;
  out.Add(w->second->sink, CommandMessage(kind, RunId(run.id), run.attempt));
}

// Cancels an attempt the worker runs but should not, and counts its devices busy meanwhile.
void Coordinator::StopUnwanted(WorkerState& w, const v1::RunRef& ref, Outbox& out) {
  out.Add(w.sink, CommandMessage(v1::RunCommand::KIND_CANCEL, ref.run_id(), ref.attempt()));
  const int64_t rid = ParseId(ref.run_id(), 'r');
  auto r = runs_.find(rid);
  if (r == runs_.end()) return;
  // A cancelled run's attempt is still held (its devices counted) until its status comes.
  if (auto h = w.held.find(rid); h != w.held.end() && h->second.attempt == ref.attempt()) return;
  w.stopping[{rid, ref.attempt()}] = {ref.attempt(), r->second.devices,
                                      DeviceKindOf(r->second.config_json), Now()};
}

bool Coordinator::Wants(const WorkerState& w, const v1::RunRef& ref) const {
  auto r = runs_.find(ParseId(ref.run_id(), 'r'));
  return r != runs_.end() && IsActive(r->second.state) && r->second.worker_id == w.row.id &&
         r->second.attempt == ref.attempt();
}

void Coordinator::Flush(Outbox& out) {
  for (auto& [sink, message] : out.messages) {
    if (!sink->Send(message)) {
      log::Warn(kLog, "a worker session closed before a message reached it; its lease decides");
    }
  }
  out.messages.clear();
}

absl::StatusOr<std::vector<RunRow*>> Coordinator::Targets(const std::string& target) {
  std::vector<RunRow*> out;
  if (int64_t sid = ParseId(target, 's'); sid > 0) {
    if (!sweeps_.count(sid)) {
      return absl::NotFoundError(
          absl::StrCat("sweep ", target, " not found; `sgtctl ls` lists the sweeps"));
    }
    for (auto& [id, r] : runs_) {
      if (r.sweep_id == sid) out.push_back(&r);
    }
    return out;
  }
  if (int64_t rid = ParseId(target, 'r'); rid > 0) {
    auto it = runs_.find(rid);
    if (it == runs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("run ", target, " not found; `sgtctl ls SWEEP` lists a sweep's runs"));
    }
    out.push_back(&it->second);
    return out;
  }
  return BadTarget(target);
}

// ---------------------------------------------------------------------------------------------
// Client API.

absl::StatusOr<v1::SubmitSweepResponse> Coordinator::SubmitSweep(
    const v1::SubmitSweepRequest& req) {
  if (req.yaml().empty()) {
    return absl::InvalidArgumentError(
        "yaml: empty; the sweep file's text is required (docs/sweep.md; examples/)");
  }
  const std::string source = req.source_name().empty() ? "<sweep>" : req.source_name();
  absl::StatusOr<SweepSpec> spec = ParseSweep(req.yaml(), source);
  if (!spec.ok()) return spec.status();

  std::unique_lock<std::mutex> lock(mu_);
  const double now = Now();
  SweepRow sweep;
  sweep.name = spec->name;
  sweep.priority = spec->priority;
  sweep.max_concurrent = spec->max_concurrent;
  sweep.max_restarts = spec->max_restarts;
  sweep.source_name = source;
  sweep.source_yaml = req.yaml();
  sweep.created_at = now;
  std::vector<RunRow> rows;
  for (const SweepRun& sr : spec->runs) {
    RunRow r;
    r.name = sr.config.name;
    r.variant = VariantName(sr.config.variant);
    r.state = v1::RUN_STATE_QUEUED;
    r.reason = "submitted";
    r.priority = spec->priority;
    r.devices = spec->devices;
    r.steps = sr.config.train.steps;
    r.config_json = WorkerConfigJson(sr.config);
    r.config_hash = sr.config_hash;
    r.settings = sr.settings;
    r.created_at = now;
    r.updated_at = now;
    rows.push_back(std::move(r));
  }
  if (absl::Status s = store_->InsertSweep(sweep, rows, now); !s.ok()) return FromStore(s);
  v1::SubmitSweepResponse resp;
  sweeps_[sweep.id] = sweep;
  for (RunRow& r : rows) {
    runs_[r.id] = r;
    Bump(r.id);
    *resp.add_runs() = ToProto(r);
  }
  *resp.mutable_sweep() = ToProto(sweeps_[sweep.id]);
  log::Info(kLog, "sweep ", SweepId(sweep.id), " '", sweep.name, "' submitted from ", source, ": ",
            rows.size(), " runs");
  ScheduleAndFlush(lock);
  return resp;
}

v1::ListSweepsResponse Coordinator::ListSweeps() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::ListSweepsResponse resp;
  for (const auto& [id, s] : sweeps_) *resp.add_sweeps() = ToProto(s);
  return resp;
}

absl::StatusOr<v1::GetSweepResponse> Coordinator::GetSweep(const v1::GetSweepRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t sid = ParseId(req.sweep_id(), 's');
  if (sid == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sweep_id '", req.sweep_id(), "': not a sweep id; write s<N> (`sgtctl ls` lists them)"));
  }
  auto it = sweeps_.find(sid);
  if (it == sweeps_.end()) {
    return absl::NotFoundError(
        absl::StrCat("sweep ", req.sweep_id(), " not found; `sgtctl ls` lists the sweeps"));
  }
  v1::GetSweepResponse resp;
  *resp.mutable_sweep() = ToProto(it->second);
  for (const auto& [id, r] : runs_) {
    if (r.sweep_id == sid) *resp.add_runs() = ToProto(r);
  }
  return resp;
}

absl::StatusOr<v1::ListRunsResponse> Coordinator::ListRuns(const v1::ListRunsRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t sid = 0;
  if (!req.sweep_id().empty()) {
    sid = ParseId(req.sweep_id(), 's');
    if (sid == 0) {
      return absl::InvalidArgumentError(absl::StrCat("sweep_id '", req.sweep_id(),
                                                     "': not a sweep id; write s<N> or leave it "
                                                     "empty for every sweep"));
    }
    if (!sweeps_.count(sid)) {
      return absl::NotFoundError(
          absl::StrCat("sweep ", req.sweep_id(), " not found; `sgtctl ls` lists the sweeps"));
    }
  }
  std::set<int> states(req.states().begin(), req.states().end());
  v1::ListRunsResponse resp;
  for (const auto& [id, r] : runs_) {
    if (sid != 0 && r.sweep_id != sid) continue;
    if (!states.empty() && !states.count(r.state)) continue;
    *resp.add_runs() = ToProto(r);
  }
  return resp;
}

absl::StatusOr<v1::GetRunResponse> Coordinator::GetRun(const v1::GetRunRequest& req) {
  const int64_t rid = ParseId(req.run_id(), 'r');
  if (rid == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run_id '", req.run_id(), "': not a run id; write r<N> (`sgtctl ls SWEEP` lists them)"));
  }
  v1::GetRunResponse resp;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = runs_.find(rid);
    if (it == runs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("run ", req.run_id(), " not found; `sgtctl ls SWEEP` lists the runs"));
    }
    *resp.mutable_run() = ToProto(it->second);
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

namespace {

// For a single-run target that an action does not apply to: why not, as FAILED_PRECONDITION.
absl::Status NotApplicable(const std::string& action, const RunRow& r, const std::string& need) {
  return absl::FailedPreconditionError(absl::StrCat("cannot ", action, " run ", RunId(r.id),
                                                    ": it is ", RunStateName(r.state), "; ", need));
}

std::string ReasonOr(const v1::ActionRequest& req, const std::string& fallback) {
  return req.reason().empty() ? fallback : absl::StrCat(fallback, ": ", req.reason());
}

}  // namespace

absl::StatusOr<v1::ActionResponse> Coordinator::Act(
    const v1::ActionRequest& req, const char* verb, const char* need,
    const std::function<bool(const RunRow&)>& applies,
    const std::function<absl::Status(RunRow&, Outbox&)>& act) {
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<std::vector<RunRow*>> targets = Targets(req.target());
  if (!targets.ok()) return targets.status();
  v1::ActionResponse resp;
  Outbox out;
  for (RunRow* r : *targets) {
    if (!applies(*r)) {
      if (targets->size() == 1 && ParseId(req.target(), 'r') > 0) {
        return NotApplicable(verb, *r, need);
      }
      *resp.add_unchanged() = ToProto(*r);
      continue;
    }
    // Each run's change is stored on its own: a store failure part-way through a sweep leaves
    // the runs before it changed, and says so.
    if (absl::Status s = act(*r, out); !s.ok()) return s;
    *resp.add_changed() = ToProto(*r);
  }
  Schedule(out);
  lock.unlock();
  Flush(out);
  return resp;
}

absl::StatusOr<v1::ActionResponse> Coordinator::Pause(const v1::ActionRequest& req) {
  return Act(
      req, "pause",
      "only queued runs, and assigned or running runs with a growth boundary still ahead, can "
      "pause (pauses happen at growth boundaries, sgt-method §8; vanilla has none: cancel it or "
      "let it finish)",
      [&](const RunRow& r) {
        return r.state == v1::RUN_STATE_QUEUED ||
               ((r.state == v1::RUN_STATE_ASSIGNED || r.state == v1::RUN_STATE_RUNNING) &&
                BoundaryAhead(r));
      },
      [&](RunRow& r, Outbox& out) {
        if (r.state == v1::RUN_STATE_QUEUED) {
          return Transition(r, v1::RUN_STATE_PAUSED, ReasonOr(req, "paused before it started"));
        }
        absl::Status s =
            Transition(r, v1::RUN_STATE_PAUSING,
                       ReasonOr(req, "pause requested; it stops at its next growth boundary"));
        if (s.ok()) Command(out, r, v1::RunCommand::KIND_PAUSE);
        return s;
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Resume(const v1::ActionRequest& req) {
  return Act(
      req, "resume", "only paused runs resume",
      [](const RunRow& r) { return r.state == v1::RUN_STATE_PAUSED; },
      [&](RunRow& r, Outbox&) {
        const std::string from = r.resume_checkpoint.empty()
                                     ? std::string("from the start")
                                     : absl::StrCat("from its checkpoint at step ", r.resume_step);
        return Transition(r, v1::RUN_STATE_QUEUED, ReasonOr(req, "resumed " + from));
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Snapshot(const v1::ActionRequest& req) {
  return Act(
      req, "snapshot",
      "only assigned and running runs on a connected worker, with a growth boundary still "
      "ahead, take snapshots (snapshots happen at growth boundaries, sgt-method §8)",
      [&](const RunRow& r) {
        auto w = workers_.find(r.worker_id);
        return (r.state == v1::RUN_STATE_ASSIGNED || r.state == v1::RUN_STATE_RUNNING) &&
               w != workers_.end() && w->second->sink != nullptr && BoundaryAhead(r);
      },
      [&](RunRow& r, Outbox& out) {
        Command(out, r, v1::RunCommand::KIND_SNAPSHOT);
        log::Info(kLog, RunId(r.id), " snapshot requested", req.reason().empty() ? "" : ": ",
                  req.reason());
        return absl::OkStatus();
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Cancel(const v1::ActionRequest& req) {
  return Act(
      req, "cancel", "it has already ended", [](const RunRow& r) { return !IsEnded(r.state); },
      [&](RunRow& r, Outbox& out) {
        const bool on_worker = IsActive(r.state);
        // The worker keeps the devices until it reports the child gone (Release on its status).
        absl::Status s = Transition(r, v1::RUN_STATE_CANCELLED, ReasonOr(req, "cancelled"));
        if (s.ok() && on_worker) Command(out, r, v1::RunCommand::KIND_CANCEL);
        return s;
      });
}

absl::StatusOr<v1::EditResponse> Coordinator::Edit(const v1::EditRequest& req) {
  if (!req.has_priority() && !req.has_max_concurrent() && !req.has_steps()) {
    return absl::InvalidArgumentError(
        "edit: nothing to change; set priority, max_concurrent or steps");
  }
  if (req.has_priority() && (req.priority() < 0 || req.priority() > 1000)) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority: ", req.priority(), " is out of range; 0..1000, higher runs first"));
  }
  if (req.has_max_concurrent() && req.max_concurrent() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_concurrent: ", req.max_concurrent(),
                                                   " is out of range; >= 0 (0: no limit)"));
  }
  if (req.has_steps() && req.steps() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps: ", req.steps(), " is out of range; >= 1"));
  }
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<std::vector<RunRow*>> targets = Targets(req.target());
  if (!targets.ok()) return targets.status();
  const bool sweep_target = ParseId(req.target(), 's') > 0;
  if (req.has_max_concurrent() && !sweep_target) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_concurrent: applies to a sweep, not to run ", req.target(),
                     "; edit the run's sweep (", SweepId(targets->front()->sweep_id), ") instead"));
  }

  // Plan every change first, then write them: a bad value for one run changes nothing.
  std::vector<RunRow> next;
  for (RunRow* r : *targets) {
    const bool editable = r->state == v1::RUN_STATE_QUEUED || r->state == v1::RUN_STATE_PAUSED;
    if (!editable) {
      if (!sweep_target) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot edit run ", RunId(r->id), ": it is ", RunStateName(r->state),
                         "; only queued and paused runs can be edited (pause it first)"));
      }
      continue;
    }
    RunRow n = *r;
    if (req.has_priority()) n.priority = req.priority();
    if (req.has_steps()) {
      if (req.steps() <= r->resume_step) {
        return absl::FailedPreconditionError(absl::StrCat("steps: run ", RunId(r->id),
                                                          " resumes from step ", r->resume_step,
                                                          "; steps must be greater than that"));
      }
      absl::StatusOr<RunConfig> cfg = RunConfigFromJson(r->config_json);
      if (!cfg.ok()) return cfg.status();
      cfg->train.steps = req.steps();
      if (absl::Status s = ValidateRunConfig(*cfg); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("steps: ", req.steps(), " does not fit run ",
                                                       RunId(r->id), ": ", s.message()));
      }
      n.steps = req.steps();
      n.config_json = WorkerConfigJson(*cfg);
      n.config_hash = HashOf(CanonicalJson(*cfg));
    }
    n.updated_at = Now();
    next.push_back(std::move(n));
  }
  v1::EditResponse resp;
  if (sweep_target) {
    SweepRow s =
        sweeps_[targets->empty() ? ParseId(req.target(), 's') : targets->front()->sweep_id];
    if (req.has_priority()) s.priority = req.priority();
    if (req.has_max_concurrent()) s.max_concurrent = req.max_concurrent();
    if (absl::Status st = store_->UpdateSweep(s); !st.ok()) return FromStore(st);
    sweeps_[s.id] = s;
  }
  for (RunRow& n : next) {
    if (absl::Status st = store_->UpdateRun(n); !st.ok()) return FromStore(st);
    runs_[n.id] = n;
    Bump(n.id);
    *resp.add_changed() = ToProto(n);
  }
  if (sweep_target) *resp.mutable_sweep() = ToProto(sweeps_[ParseId(req.target(), 's')]);
  ScheduleAndFlush(lock);
  return resp;
}

absl::StatusOr<v1::ForkResponse> Coordinator::Fork(const v1::ForkRequest& req) {
  const int64_t rid = ParseId(req.run_id(), 'r');
  if (rid == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("run_id '", req.run_id(), "': not a run id; write r<N>"));
  }
  if (req.from_step() < 1) {
    return absl::InvalidArgumentError(
        "from_step: required; a step with a recorded checkpoint (`sgtctl show RUN` lists them)");
  }
  RunRow parent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = runs_.find(rid);
    if (it == runs_.end()) {
      return absl::NotFoundError(absl::StrCat("run ", req.run_id(), " not found"));
    }
    parent = it->second;
  }
  absl::StatusOr<std::vector<v1::CheckpointRecord>> cks = store_->Checkpoints(rid);
  if (!cks.ok()) return FromStore(cks.status());
  const v1::CheckpointRecord* from = nullptr;
  std::vector<std::string> steps;
  for (const v1::CheckpointRecord& c : *cks) {
    steps.push_back(absl::StrCat(c.step()));
    if (c.step() == req.from_step() && (from == nullptr || c.attempt() > from->attempt())) {
      from = &c;
    }
  }
  if (from == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "from_step: run ", req.run_id(), " has no checkpoint at step ", req.from_step(), "; ",
        steps.empty() ? std::string("it has no checkpoints yet (snapshot or pause it first)")
                      : absl::StrCat("its checkpoints are at steps ", absl::StrJoin(steps, ", "))));
  }
  absl::StatusOr<RunConfig> cfg = RunConfigFromJson(parent.config_json);
  if (!cfg.ok()) return cfg.status();
  std::vector<std::pair<std::string, std::string>> settings;
  for (const v1::Setting& s : req.set()) {
    if (s.key().rfind("model.", 0) == 0 || s.key() == "model") {
      return absl::InvalidArgumentError(
          absl::StrCat("set ", s.key(),
                       ": a fork keeps the checkpoint's model; its weights fit "
                       "only that shape; submit a new sweep to change model.*"));
    }
    if (s.key() == "name") {
      return absl::InvalidArgumentError("set name: use the fork's name field instead");
    }
    if (absl::Status st = SetConfigValue(*cfg, s.key(), s.value()); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("set ", st.message()));
    }
    settings.emplace_back(s.key(), s.value());
  }
  if (cfg->train.steps <= req.from_step()) {
    return absl::InvalidArgumentError(absl::StrCat("train.steps: ", cfg->train.steps,
                                                   " is not after the fork step ", req.from_step(),
                                                   "; set train.steps higher"));
  }
  cfg->name = req.name().empty() ? absl::StrCat(parent.name, "-fork", req.from_step()) : req.name();
  if (absl::Status st = ValidateRunConfig(*cfg); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("after the fork's settings: ", st.message()));
  }

  std::unique_lock<std::mutex> lock(mu_);
  RunRow r;
  r.sweep_id = parent.sweep_id;
  r.name = cfg->name;
  r.variant = VariantName(cfg->variant);
  r.state = v1::RUN_STATE_QUEUED;
  r.priority = parent.priority;
  r.devices = parent.devices;
  r.steps = cfg->train.steps;
  r.config_json = WorkerConfigJson(*cfg);
  r.config_hash = HashOf(CanonicalJson(*cfg));
  r.settings = parent.settings;
  for (const auto& kv : settings) {
    auto same = std::find_if(r.settings.begin(), r.settings.end(),
                             [&](const auto& p) { return p.first == kv.first; });
    if (same != r.settings.end()) {
      same->second = kv.second;
    } else {
      r.settings.push_back(kv);
    }
  }
  r.parent_run_id = rid;
  r.parent_step = req.from_step();
  r.resume_checkpoint = from->path();
  r.resume_step = from->step();
  r.created_at = r.updated_at = Now();
  std::vector<std::string> changes;
  for (const auto& [k, v] : settings) changes.push_back(absl::StrCat(k, "=", v));
  r.reason = absl::StrCat("forked from ", req.run_id(), " at step ", req.from_step(),
                          changes.empty() ? "" : " with ", absl::StrJoin(changes, ","));
  RunEventRow ev;
  ev.time = r.created_at;
  ev.from_state = v1::RUN_STATE_UNSPECIFIED;
  ev.to_state = v1::RUN_STATE_QUEUED;
  ev.reason = r.reason;
  if (absl::Status st = store_->InsertRun(r, ev); !st.ok()) return FromStore(st);
  runs_[r.id] = r;
  Bump(r.id);
  v1::ForkResponse resp;
  *resp.mutable_run() = ToProto(r);
  log::Info(kLog, RunId(r.id), " ", r.reason);
  ScheduleAndFlush(lock);
  return resp;
}

v1::ListWorkersResponse Coordinator::ListWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::ListWorkersResponse resp;
  for (const auto& [id, w] : workers_) *resp.add_workers() = ToProto(*w);
  return resp;
}

absl::StatusOr<std::vector<v1::Run>> Coordinator::WatchRuns(const std::string& target,
                                                            uint64_t* seen, double timeout_s,
                                                            bool* done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (*seen != 0) {
    changed_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                      [&] { return shutdown_ || version_ > *seen; });
  }
  if (shutdown_) {
    return absl::UnavailableError("sgt-coordinator is shutting down; watch again once it is back");
  }
  absl::StatusOr<std::vector<RunRow*>> targets = Targets(target);
  if (!targets.ok()) return targets.status();
  std::vector<v1::Run> out;
  bool all_ended = true;
  for (RunRow* r : *targets) {
    all_ended = all_ended && IsEnded(r->state);
    if (*seen == 0 || run_version_[r->id] > *seen) out.push_back(ToProto(*r));
  }
  *seen = version_;
  *done = all_ended;
  return out;
}

absl::StatusOr<std::vector<int64_t>> Coordinator::ResolveRuns(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<std::vector<RunRow*>> targets = Targets(target);
  if (!targets.ok()) return targets.status();
  std::vector<int64_t> ids;
  for (RunRow* r : *targets) ids.push_back(r->id);
  return ids;
}

void Coordinator::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  changed_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Worker API.

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& req) {
  if (req.name().empty()) {
    return absl::InvalidArgumentError(
        "name: required; the worker's stable name (sgt-worker uses the host name)");
  }
  if (req.devices().empty()) {
    return absl::InvalidArgumentError(
        "devices: empty; a worker needs at least one device (sgt-worker --devices cpu:N|cuda)");
  }
  std::set<std::string> ids;
  for (const v1::Device& d : req.devices()) {
    if (d.kind() != "cpu" && d.kind() != "cuda") {
      return absl::InvalidArgumentError(
          absl::StrCat("devices: device '", d.id(), "' has kind '", d.kind(), "'; cpu or cuda"));
    }
    if (d.id().empty() || !ids.insert(d.id()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "devices: device id '", d.id(), "' is empty or repeated; ids like cpu:0, cuda:1"));
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  const double now = Now();
  WorkerState* existing = nullptr;
  for (auto& [id, w] : workers_) {
    if (w->row.name == req.name()) existing = w.get();
  }
  WorkerRow row = existing ? existing->row : WorkerRow{};
  if (!existing) {
    row.id = WorkerId(next_worker_);
    row.registered_at = now;
  }
  row.name = req.name();
  row.hostname = req.hostname();
  row.devices.assign(req.devices().begin(), req.devices().end());
  row.last_seen = now;
  if (absl::Status s = store_->UpsertWorker(row); !s.ok()) return FromStore(s);
  if (!existing) {
    ++next_worker_;
    auto ws = std::make_unique<WorkerState>();
    existing = ws.get();
    workers_[row.id] = std::move(ws);
  }
  existing->row = row;
  existing->lease_expires = now + options_.lease_seconds;
  log::Info(kLog, "worker ", row.id, " '", row.name, "' registered with ", row.devices.size(),
            " devices");
  v1::RegisterResponse resp;
  resp.set_worker_id(row.id);
  resp.set_lease_seconds(options_.lease_seconds);
  resp.set_heartbeat_seconds(std::max(1, options_.lease_seconds / 3));
  return resp;
}

namespace {

// Observes how long handling one worker message took, when it goes out of scope.
class MessageTimer {
 public:
  MessageTimer(CoordinatorMetrics* m, const char* kind)
      : m_(m), kind_(kind), start_(std::chrono::steady_clock::now()) {}
  ~MessageTimer() {
    if (m_ == nullptr) return;
    m_->WorkerMessage(
        kind_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  MessageTimer(const MessageTimer&) = delete;
  MessageTimer& operator=(const MessageTimer&) = delete;

 private:
  CoordinatorMetrics* m_;
  const char* kind_;
  std::chrono::steady_clock::time_point start_;
};

const char* MessageKind(const v1::WorkerMessage& m) {
  switch (m.kind_case()) {
    case v1::WorkerMessage::kHello:
      return "hello";
    case v1::WorkerMessage::kHeartbeat:
      return "heartbeat";
    case v1::WorkerMessage::kStatus:
      return "status";
    case v1::WorkerMessage::kTelemetry:
      return "telemetry";
    default:
      return "other";
  }
}

}  // namespace

absl::StatusOr<uint64_t> Coordinator::OpenSession(const v1::Hello& hello,
                                                  std::shared_ptr<WorkerSink> sink) {
  MessageTimer timer(options_.metrics, "hello");
  if (hello.runs_size() > kMaxHeldRuns) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello: ", hello.runs_size(), " runs listed; at most ", kMaxHeldRuns));
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto it = workers_.find(hello.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker '", hello.worker_id(), "' is not registered; call Register first"));
  }
  WorkerState& w = *it->second;
  if (w.session != 0) {
    log::Warn(kLog, "worker ", w.row.id, " opened a new session; the old one is dropped");
    sessions_.erase(w.session);
  }
  const uint64_t id = next_session_++;
  sessions_[id] = w.row.id;
  w.session = id;
  w.sink = std::move(sink);
  w.draining = false;
  const double now = Now();
  w.lease_expires = now + options_.lease_seconds;
  w.row.last_seen = now;
  Outbox out;
  Reconcile(w, {hello.runs().begin(), hello.runs().end()}, out);
  v1::CoordinatorMessage lease;
  lease.mutable_lease()->set_expires_at(w.lease_expires);
  out.Add(w.sink, lease);
  Schedule(out);
  lock.unlock();
  Flush(out);
  return id;
}

// After a (re)connect: what the worker still runs against what the coordinator thinks it runs.
void Coordinator::Reconcile(WorkerState& w, const std::vector<v1::RunRef>& held, Outbox& out) {
  std::map<int64_t, int32_t> reported;
  for (const v1::RunRef& ref : held) reported[ParseId(ref.run_id(), 'r')] = ref.attempt();
  // Attempts the coordinator gave this worker that it no longer has: lost.
  std::vector<int64_t> gone;
  for (const auto& [rid, h] : w.held) {
    auto rep = reported.find(rid);
    if (rep == reported.end() || rep->second != h.attempt) gone.push_back(rid);
  }
  for (int64_t rid : gone) {
    w.held.erase(rid);
    RunRow& r = runs_[rid];
    if (IsActive(r.state) && r.worker_id == w.row.id) {
      (void)Requeue(r, v1::RUN_STATE_LOST,
                    absl::StrCat("worker ", w.row.id, " reconnected without attempt ", r.attempt));
    }
  }
  // Attempts the worker runs that are no longer wanted (cancelled, superseded): stop them.
  w.stopping.clear();
  for (const v1::RunRef& ref : held) {
    if (!Wants(w, ref)) {
      StopUnwanted(w, ref, out);
      continue;
    }
    // A pause asked for while the worker was away has not reached it yet.
    const RunRow& r = runs_.at(ParseId(ref.run_id(), 'r'));
    if (r.state == v1::RUN_STATE_PAUSING) Command(out, r, v1::RunCommand::KIND_PAUSE);
  }
}

void Coordinator::CloseSession(uint64_t session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  auto w = workers_.find(it->second);
  if (w != workers_.end() && w->second->session == session) {
    // Its runs keep their state until the lease expires: the worker may reconnect in time.
    w->second->sink.reset();
    w->second->session = 0;
    (void)store_->UpsertWorker(w->second->row);
    log::Info(kLog, "worker ", w->second->row.id, " disconnected; its runs wait ",
              absl::StrFormat("%.0f", w->second->lease_expires - Now()),
              " s (its lease) for it to come back");
  }
  sessions_.erase(it);
}

// Every message of a session renews its worker's lease.
absl::StatusOr<Coordinator::WorkerState*> Coordinator::RenewLease(uint64_t session) {
  auto sit = sessions_.find(session);
  if (sit == sessions_.end()) {
    return absl::AbortedError(
        "this session was replaced by a newer one or expired; open a new session");
  }
  WorkerState& w = *workers_.at(sit->second);
  const double now = Now();
  w.lease_expires = now + options_.lease_seconds;
  w.row.last_seen = now;
  return &w;
}

absl::Status Coordinator::HandleWorkerMessage(uint64_t session, const v1::WorkerMessage& msg) {
  MessageTimer timer(options_.metrics, MessageKind(msg));
  if (msg.has_telemetry()) return IngestTelemetry(session, msg.telemetry());
  std::unique_lock<std::mutex> lock(mu_);
  absl::StatusOr<WorkerState*> ws = RenewLease(session);
  if (!ws.ok()) return ws.status();
  WorkerState& w = **ws;
  const double now = Now();
  Outbox out;
  absl::Status status;
  if (msg.has_heartbeat() && msg.heartbeat().runs_size() > kMaxHeldRuns) {
    return absl::InvalidArgumentError(absl::StrCat("heartbeat: ", msg.heartbeat().runs_size(),
                                                   " runs listed; at most ", kMaxHeldRuns));
  }
  switch (msg.kind_case()) {
    case v1::WorkerMessage::kHeartbeat: {
      // Attempts given to this worker that its heartbeat no longer lists are gone (the child
      // died without a status reaching us). Only those given well before this heartbeat: a
      // StartRun and a heartbeat may cross on the wire.
      std::set<int64_t> listed;
      for (const v1::RunRef& ref : msg.heartbeat().runs())
        listed.insert(ParseId(ref.run_id(), 'r'));
      if (msg.heartbeat().draining() && !w.draining) {
        log::Info(kLog, "worker ", w.row.id, " is shutting down; nothing new goes to it");
        w.draining = true;
      }
      const double slack = 2.0 * std::max(1, options_.lease_seconds / 3);
      std::vector<int64_t> vanished;
      for (const auto& [rid, h] : w.held) {
        if (!listed.count(rid) && now - h.since > slack) vanished.push_back(rid);
      }
      for (int64_t rid : vanished) {
        const int32_t attempt = w.held[rid].attempt;
        w.held.erase(rid);
        RunRow& r = runs_[rid];
        if (IsActive(r.state) && r.worker_id == w.row.id && r.attempt == attempt) {
          (void)Requeue(r, v1::RUN_STATE_LOST,
                        absl::StrCat("worker ", w.row.id, " no longer lists attempt ", attempt,
                                     " in its heartbeats"));
        }
      }
      if (!vanished.empty()) Schedule(out);
      // Stop attempts the worker still runs that the coordinator no longer wants; those it
      // no longer lists have stopped and free their devices.
      std::set<std::pair<int64_t, int32_t>> running;
      for (const v1::RunRef& ref : msg.heartbeat().runs()) {
        running.insert({ParseId(ref.run_id(), 'r'), ref.attempt()});
        if (!Wants(w, ref)) StopUnwanted(w, ref, out);
      }
      for (auto it = w.stopping.begin(); it != w.stopping.end();) {
        it = running.count(it->first) ? std::next(it) : w.stopping.erase(it);
      }
      v1::CoordinatorMessage lease;
      lease.mutable_lease()->set_expires_at(w.lease_expires);
      out.Add(w.sink, lease);
      break;
    }
    case v1::WorkerMessage::kStatus: {
      status = HandleStatus(w, msg.status(), out);
      // Acknowledged unless the store failed (then the worker sends it again later).
      if (status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kNotFound) {
        v1::CoordinatorMessage ack;
        v1::StatusAck* a = ack.mutable_status_ack();
        a->set_run_id(msg.status().run_id());
        a->set_attempt(msg.status().attempt());
        a->set_state(msg.status().state());
        a->set_error(std::string(status.message()));
        out.Add(w.sink, ack);
      }
      Schedule(out);
      break;
    }
    case v1::WorkerMessage::kTelemetry:  // handled above, without the lock
      break;
    case v1::WorkerMessage::kHello:
      status = absl::InvalidArgumentError("hello: only the first message of a session is a hello");
      break;
    case v1::WorkerMessage::KIND_NOT_SET:
      status = absl::InvalidArgumentError(
          "message: empty; one of heartbeat, status, telemetry (worker.proto)");
      break;
  }
  lock.unlock();
  Flush(out);
  return status;
}

absl::Status Coordinator::HandleStatus(WorkerState& w, const v1::RunStatus& st, Outbox& out) {
  const int64_t rid = ParseId(st.run_id(), 'r');
  auto it = runs_.find(rid);
  if (it == runs_.end()) {
    return absl::NotFoundError(absl::StrCat("status: run '", st.run_id(), "' not found"));
  }
  RunRow& run = it->second;
  json summary;
  if (!st.summary_json().empty()) {
    summary = json::parse(st.summary_json(), nullptr, /*allow_exceptions=*/false);
    if (summary.is_discarded() || !summary.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "status of ", st.run_id(), ": summary_json is not a JSON object; send summary.json"));
    }
  }
  const bool ended_on_worker =
      st.state() == v1::RUN_STATE_PAUSED || st.state() == v1::RUN_STATE_LOST || IsEnded(st.state());
  const bool current = run.attempt == st.attempt() && run.worker_id == w.row.id;
  if (ended_on_worker) {
    auto h = w.held.find(rid);
    if (h != w.held.end() && h->second.attempt == st.attempt()) w.held.erase(h);
    w.stopping.erase({rid, st.attempt()});
  }
  if (!current || IsEnded(run.state)) {
    log::Debug(kLog, "status of ", st.run_id(), " attempt ", st.attempt(), " ignored (",
               current ? "run already ended" : "not its current attempt", ")");
    return absl::OkStatus();
  }
  // Changes go to a copy; Transition stores it and only then replaces the cached row.
  RunRow r = run;
  if (st.step() > r.step) r.step = std::min(st.step(), r.steps);
  int64_t summary_step = -1;  // the step the attempt stopped after, per its summary
  if (summary.is_object()) {
    r.summary_json = st.summary_json();
    MetricsFromSummary(summary, &r.metrics);
    if (summary.contains("step") && summary["step"].is_number_integer()) {
      summary_step = std::clamp(summary["step"].get<int64_t>(), r.resume_step, r.steps);
      r.step = summary_step;
    }
  }
  v1::RunState to = st.state();
  std::string reason = st.reason();
  switch (st.state()) {
    case v1::RUN_STATE_RUNNING:
      if (run.state != v1::RUN_STATE_ASSIGNED) {
        if (r.step != run.step) {
          run.step = r.step;
          Bump(run.id);
        }
        return absl::OkStatus();
      }
      reason = absl::StrCat("running on ", w.row.id, " (attempt ", r.attempt, ")");
      break;
    case v1::RUN_STATE_PAUSED:
      // A paused attempt's checkpoint is at the step it stopped after.
      if (summary.is_object() && summary.contains("last_checkpoint") &&
          summary["last_checkpoint"].is_string() && summary_step > 0 && summary_step < r.steps) {
        r.resume_checkpoint = summary["last_checkpoint"].get<std::string>();
        r.resume_step = summary_step;
      }
      if (reason.empty()) reason = absl::StrCat("paused at step ", r.step);
      break;
    case v1::RUN_STATE_SUCCEEDED:
      reason = absl::StrCat("finished ", r.step, " steps on ", w.row.id);
      break;
    case v1::RUN_STATE_FAILED:
      if (reason.empty()) reason = "failed";
      if (!st.stderr_tail().empty()) absl::StrAppend(&reason, "\nstderr tail:\n", st.stderr_tail());
      break;
    case v1::RUN_STATE_CANCELLED:
      if (reason.empty()) reason = "cancelled on the worker";
      break;
    case v1::RUN_STATE_LOST:  // the worker gave it up (shutting down): back to the queue now;
                              // one that never ran (still assigned) costs no restart
      return Requeue(run, v1::RUN_STATE_LOST,
                     reason.empty() ? absl::StrCat(w.row.id, " gave the run up") : reason,
                     /*count_restart=*/run.state != v1::RUN_STATE_ASSIGNED);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "status of ", st.run_id(), ": state ", v1::RunState_Name(st.state()),
          " cannot come from a worker; RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED or LOST"));
  }
  if (to != v1::RUN_STATE_RUNNING) r.worker_id.clear();
  if (absl::Status s = Transition(r, to, reason); !s.ok()) return s;
  run = std::move(r);
  (void)out;
  return absl::OkStatus();
}

// The SQLite write, the bulk of the work, runs without the coordinator's lock so that client
// calls and other workers are not held up by ingestion. A run's telemetry comes from the one
// session that holds it, in order; only client actions (pause, cancel, edit) change the run
// meanwhile, and they do not touch what telemetry updates (step, metrics, resume checkpoint).
absl::Status Coordinator::IngestTelemetry(uint64_t session, const v1::TelemetryBatch& b) {
  v1::CoordinatorMessage ack;
  ack.mutable_ack()->set_run_id(b.run_id());
  ack.mutable_ack()->set_attempt(b.attempt());
  ack.mutable_ack()->set_sequence(b.sequence());
  std::shared_ptr<WorkerSink> sink;
  RunRow next;
  bool current = false;
  uint64_t seen = 0;
  bool unknown_run = false;
  const int64_t rid = ParseId(b.run_id(), 'r');
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<WorkerState*> ws = RenewLease(session);
    if (!ws.ok()) return ws.status();
    WorkerState& w = **ws;
    sink = w.sink;
    // A batch refused for what it is will never be stored: acknowledged with the reason, so
    // that the worker drops it instead of sending it after every reconnect.
    auto refuse = [&](absl::Status why) {
      if (options_.metrics != nullptr) options_.metrics->TelemetryBatch("refused", b);
      ack.mutable_ack()->set_error(std::string(why.message()));
      if (sink) sink->Send(ack);
      return why;
    };
    if (b.sequence() < 1 || b.attempt() < 1) {
      return refuse(absl::InvalidArgumentError(
          absl::StrCat("telemetry of ", b.run_id(), ": attempt ", b.attempt(), ", sequence ",
                       b.sequence(), "; both start at 1")));
    }
    const int64_t rows =
        int64_t{b.entropy_size()} + b.scalars_size() + b.decisions_size() + b.checkpoints_size();
    if (rows > kMaxBatchRows) {
      return refuse(absl::InvalidArgumentError(
          absl::StrCat("telemetry of ", b.run_id(), ": ", rows, " rows in one batch; at most ",
                       kMaxBatchRows, "; send smaller batches")));
    }
    for (const v1::CheckpointRecord& c : b.checkpoints()) {
      // A resume point is handed to other workers: it must name one file, plainly.
      const std::string& p = c.path();
      if (p.empty() || p[0] != '/' || absl::StrContains(absl::StrCat(p, "/"), "/../")) {
        return refuse(absl::InvalidArgumentError(absl::StrCat(
            "telemetry of ", b.run_id(), ": checkpoint path '", p,
            "' is not an absolute path free of '..'; the worker must send resolved paths")));
      }
    }
    auto it = runs_.find(rid);
    if (it == runs_.end()) {
      unknown_run = true;
    } else {
      const RunRow& r = it->second;
      // Only the worker that holds the current attempt may speak for it; older attempts' late
      // batches are history (stored, the run untouched); a future attempt does not exist.
      const bool owner = r.worker_id == w.row.id;
      if (b.attempt() > r.attempt || (b.attempt() == r.attempt && !owner && IsActive(r.state))) {
        return refuse(absl::InvalidArgumentError(
            absl::StrCat("telemetry of ", b.run_id(), " attempt ", b.attempt(), ": worker ",
                         w.row.id, " does not hold that attempt; batch refused")));
      }
      current = b.attempt() == r.attempt && owner && !IsEnded(r.state);
      seen = run_version_[rid];
      next = r;
    }
  }
  if (unknown_run) {
    if (options_.metrics != nullptr) options_.metrics->TelemetryBatch("refused", b);
    sink->Send(ack);  // nothing to store it under: acknowledged so that the worker drops it
    return absl::NotFoundError(
        absl::StrCat("telemetry: run '", b.run_id(), "' not found; batch dropped"));
  }
  if (current) {
    int64_t newest_step = next.step;
    for (const v1::ScalarRow& s : b.scalars()) {
      newest_step = std::max(newest_step, s.step());
      MetricFromScalar(s.name(), s.value(), &next.metrics);
    }
    for (const v1::EntropyRow& e : b.entropy()) newest_step = std::max(newest_step, e.step());
    for (const v1::CheckpointRecord& c : b.checkpoints()) {
      // The newest checkpoint before the last step is where a restart resumes.
      if (c.step() > next.resume_step && c.step() < next.steps) {
        next.resume_checkpoint = c.path();
        next.resume_step = c.step();
      }
    }
    // A worker's numbers are not trusted to stay in range: the attempt runs resume_step..steps.
    next.step = std::clamp(newest_step, next.resume_step, next.steps);
    next.updated_at = Now();
  }
  absl::StatusOr<bool> fresh = store_->AppendTelemetry(rid, b, Now(), current ? &next : nullptr);
  if (!fresh.ok()) return FromStore(fresh.status());  // not acknowledged: sent again later
  ack.mutable_ack()->set_duplicate(!*fresh);
  if (options_.metrics != nullptr) {
    options_.metrics->TelemetryBatch(*fresh ? "stored" : "duplicate", b);
  }
  if (*fresh && current) {
    std::lock_guard<std::mutex> lock(mu_);
    RunRow& r = runs_[rid];
    if (r.attempt == b.attempt()) {
      if (options_.metrics != nullptr) options_.metrics->science().Ingest(rid, b);
      r.step = next.step;
      r.metrics = next.metrics;
      r.resume_checkpoint = next.resume_checkpoint;
      r.resume_step = next.resume_step;
      r.updated_at = next.updated_at;
      // A client action wrote the whole row meanwhile, with the old progress: write it again.
      if (run_version_[rid] != seen) (void)store_->UpdateRun(r);
      Bump(rid);
    }
  }
  sink->Send(ack);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Leases and scheduling.

void Coordinator::ExpireLeases(Outbox& out) {
  const double now = Now();
  for (auto& [id, wp] : workers_) {
    WorkerState& w = *wp;
    if (w.lease_expires >= now || (w.sink == nullptr && w.held.empty())) continue;
    log::Warn(kLog, "worker ", w.row.id, " lease expired (last seen ",
              absl::StrFormat("%.1f", now - w.row.last_seen), " s ago)");
    if (w.session != 0) sessions_.erase(w.session);
    w.session = 0;
    w.sink.reset();
    std::map<int64_t, WorkerState::Held> held;
    held.swap(w.held);
    w.stopping.clear();
    for (const auto& [rid, h] : held) {
      RunRow& r = runs_[rid];
      if (IsActive(r.state) && r.worker_id == w.row.id && r.attempt == h.attempt) {
        (void)Requeue(r, v1::RUN_STATE_LOST,
                      absl::StrCat("worker ", w.row.id, " stopped renewing its lease"));
      }
    }
    (void)store_->UpsertWorker(w.row);
  }
  // Active runs whose worker is unknown (a store from an older coordinator): lost as well.
  for (auto& [rid, r] : runs_) {
    if (IsActive(r.state) && !workers_.count(r.worker_id)) {
      (void)Requeue(
          r, v1::RUN_STATE_LOST,
          absl::StrCat("its worker '", r.worker_id, "' is not known to this coordinator"));
    }
  }
  (void)out;
}

void Coordinator::Schedule(Outbox& out) {
  const double now = Now();
  std::vector<WorkerCapacity> capacity;
  for (const auto& [id, w] : workers_) {
    if (w->sink == nullptr || w->lease_expires < now || w->draining) continue;
    capacity.push_back({id, w->Free(), w->Total()});
  }
  std::map<int64_t, SweepLimit> limits;
  for (const auto& [id, s] : sweeps_) limits[id].max_concurrent = s.max_concurrent;
  std::vector<QueuedRun> queued;
  std::map<int64_t, std::string> kinds;
  for (const auto& [id, r] : runs_) {
    if (IsActive(r.state)) limits[r.sweep_id].active += 1;
    if (r.state != v1::RUN_STATE_QUEUED) continue;
    // Parsed once per configuration, not once per tick: a big queue is scheduled 4 times a second.
    auto cached = device_kind_.find(id);
    if (cached == device_kind_.end() || cached->second.first != r.config_hash) {
      cached = device_kind_
                   .insert_or_assign(id, std::make_pair(r.config_hash, DeviceKindOf(r.config_json)))
                   .first;
    }
    kinds[id] = cached->second.second;
    queued.push_back({id, r.sweep_id, r.priority, r.devices, kinds[id]});
  }
  if (queued.empty()) return;
  std::set<int64_t> assigned;
  for (const Assignment& a : scheduler_.Plan(queued, limits, capacity)) {
    RunRow& r = runs_[a.run_id];
    WorkerState& w = *workers_[a.worker_id];
    RunRow before = r;
    r.attempt += 1;
    r.worker_id = a.worker_id;
    r.step = r.resume_step;  // Run.step follows the current attempt
    if (!Transition(r, v1::RUN_STATE_ASSIGNED,
                    absl::StrCat("assigned to ", a.worker_id, " (attempt ", r.attempt, ")"))
             .ok()) {
      r = before;
      continue;
    }
    assigned.insert(a.run_id);
    if (options_.metrics != nullptr) options_.metrics->Scheduled(std::max(0.0, now - before.updated_at));
    w.held[a.run_id] = {r.attempt, r.devices, kinds[a.run_id], now};
    v1::CoordinatorMessage m;
    v1::StartRun* s = m.mutable_start();
    s->set_run_id(RunId(r.id));
    s->set_attempt(r.attempt);
    s->set_config_json(r.config_json);
    s->set_resume_checkpoint(r.resume_checkpoint);
    s->set_devices(r.devices);
    s->set_name(r.name);
    out.Add(w.sink, std::move(m));
  }
  // Say why the rest wait when no connected worker could ever hold them; once one could, say
  // so instead of leaving the old reason (the transition's reason, "resumed ...", is kept).
  for (const QueuedRun& q : queued) {
    if (assigned.count(q.run_id)) continue;
    std::string why = UnschedulableReason(q, capacity);
    RunRow& r = runs_[q.run_id];
    const bool said_unschedulable =
        r.reason.rfind("waiting for a worker", 0) == 0 || r.reason.rfind("needs ", 0) == 0;
    if (why.empty() && said_unschedulable) {
      why = "waiting for free devices (or for its sweep's max_concurrent)";
    }
    if (why.empty() || r.reason == why) continue;
    RunRow next = r;
    next.reason = why;
    if (store_->UpdateRun(next).ok()) {
      r = std::move(next);
      Bump(r.id);
    }
  }
}

void Coordinator::ScheduleAndFlush(std::unique_lock<std::mutex>& lock) {
  Outbox out;
  Schedule(out);
  lock.unlock();
  Flush(out);
}

void Coordinator::Tick() {
  std::unique_lock<std::mutex> lock(mu_);
  Outbox out;
  ExpireLeases(out);
  RecoverStranded();
  Schedule(out);
  lock.unlock();
  Flush(out);
}

}  // namespace sgt::coord
