// The coordinator's sweeps and runs and every change to a run (run_book.h): transitions
// checked against the state machine, losses and re-queues, and the runs' proto form.
#include "services/coordinator/run_book.h"

#include <algorithm>
#include <optional>
#include <vector>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libsgt/core/config.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/core/event_log.h"
#include "libsgt/core/growth.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"
#include "services/common/log.h"

namespace sgt::coord {

namespace {

constexpr char kLog[] = "coordinator";

// Task scores a run's metrics keep (tasks and their groups): the metrics are rewritten with
// every progress write, so a task file with thousands of groups must not make them huge.
constexpr int kMaxTaskScores = 256;

absl::Status BadTarget(const std::string& target) {
  return absl::InvalidArgumentError(
      absl::StrCat("target '", target,
                   "': not a run or sweep id; write r<N> for a run or s<N> for a sweep "
                   "(`sgtctl ls` lists them)"));
}

// Which scalar of a `scalars` event and which field of summary.json (libsgt/core/event_log.h)
// each RunMetrics field comes from.
struct MetricName {
  const char* scalar;  // "" when scalars events do not carry it
  const char* summary;
  void (*set)(v1::RunMetrics*, double);
};
constexpr MetricName kMetricNames[] = {
    {events::scalar::kLoss, events::summary::kFinalLoss,
     [](v1::RunMetrics* m, double v) { m->set_loss(v); }},
    {events::scalar::kValLoss, events::summary::kValLoss,
     [](v1::RunMetrics* m, double v) { m->set_val_loss(v); }},
    {events::scalar::kValPpl, events::summary::kValPpl,
     [](v1::RunMetrics* m, double v) { m->set_val_ppl(v); }},
    {events::scalar::kTokensPerS, events::summary::kTokensPerS,
     [](v1::RunMetrics* m, double v) { m->set_tokens_per_s(v); }},
    {events::scalar::kFlops, events::summary::kTrainFlops,
     [](v1::RunMetrics* m, double v) { m->set_train_flops(v); }},
    {events::scalar::kVanillaFlops, events::summary::kVanillaFlops,
     [](v1::RunMetrics* m, double v) { m->set_vanilla_flops(v); }},
    {events::scalar::kOverhead, events::summary::kOverheadVsVanilla,
     [](v1::RunMetrics* m, double v) { m->set_overhead(v); }},
    {events::scalar::kTokens, events::summary::kTokens,
     [](v1::RunMetrics* m, double v) { m->set_tokens(static_cast<int64_t>(v)); }},
    {"", events::summary::kTrainSeconds,
     [](v1::RunMetrics* m, double v) { m->set_train_seconds(v); }},
};

}  // namespace

void MetricsFromSummary(const nlohmann::json& s, v1::RunMetrics* m) {
  for (const MetricName& n : kMetricNames) {
    if (s.contains(n.summary) && s[n.summary].is_number()) n.set(m, s[n.summary].get<double>());
  }
  if (!s.is_object() || !s.contains(events::summary::kTasks)) return;
  // The final scores replace what telemetry rows said; a malformed list changes nothing (the
  // summary itself is kept as it came, for people to read).
  absl::StatusOr<std::vector<eval::TaskScore>> tasks = events::SummaryTasks(
      s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!tasks.ok()) {
    const auto run = s.find(events::summary::kRun);
    log::Warn(kLog, "summary.json of run ",
              run != s.end() && run->is_string() ? run->get<std::string>() : std::string("?"),
              ": its task scores are left out: ", tasks.status().message());
    return;
  }
  int64_t step = 0;
  if (s.contains(events::summary::kStep) && s[events::summary::kStep].is_number_integer()) {
    step = s[events::summary::kStep].get<int64_t>();
  }
  m->clear_tasks();
  m->clear_acc();
  m->clear_acc_norm();
  for (const eval::TaskScore& t : *tasks) {
    if (m->tasks_size() >= kMaxTaskScores) break;
    v1::TaskAccuracy* a = m->add_tasks();
    a->set_task(t.task);
    a->set_group(t.group);
    a->set_items(t.items);
    a->set_acc(t.acc);
    a->set_acc_norm(t.acc_norm);
    a->set_step(step);
  }
  if (const std::optional<events::MacroAccuracy> macro = events::TaskMacroMean(*tasks)) {
    m->set_acc(macro->acc);
    m->set_acc_norm(macro->acc_norm);
  }
}

void MetricFromScalar(const std::string& name, double v, v1::RunMetrics* m, int64_t step) {
  for (const MetricName& n : kMetricNames) {
    if (*n.scalar != 0 && name == n.scalar) n.set(m, v);
  }
  const std::optional<events::TaskScalar> t = events::ParseTaskScalarName(name);
  if (!t) return;
  // One evaluation's scores at a time: a newer step's row starts a new set, an older one is
  // ignored.
  int64_t current = -1;
  for (const v1::TaskAccuracy& a : m->tasks()) current = std::max(current, a.step());
  if (step < current) return;
  if (step > current && !m->tasks().empty()) {
    m->clear_tasks();
    m->clear_acc();
    m->clear_acc_norm();
  }
  const bool norm = t->metric == events::scalar::kAccNorm;
  if (t->task.empty()) {
    norm ? m->set_acc_norm(v) : m->set_acc(v);
    return;
  }
  v1::TaskAccuracy* a = nullptr;
  for (v1::TaskAccuracy& x : *m->mutable_tasks()) {
    if (x.task() == t->task && x.group() == t->group) a = &x;
  }
  if (a == nullptr) {
    if (m->tasks_size() >= kMaxTaskScores) return;
    a = m->add_tasks();
    a->set_task(t->task);
    a->set_group(t->group);
    a->set_step(step);
  }
  norm ? a->set_acc_norm(v) : a->set_acc(v);
}

void AdvanceProgress(const v1::TelemetryBatch& b, RunRow& run) {
  const int64_t before = run.step;
  int64_t newest = run.step;
  for (const v1::ScalarRow& s : b.scalars()) {
    newest = std::max(newest, s.step());
    if (s.step() >= before) MetricFromScalar(s.name(), s.value(), &run.metrics, s.step());
  }
  for (const v1::EntropyRow& e : b.entropy()) newest = std::max(newest, e.step());
  for (const v1::CheckpointRecord& c : b.checkpoints()) {
    // The newest checkpoint before the last step is where a restart resumes.
    if (c.step() > run.resume_step && c.step() < run.steps) {
      run.resume_checkpoint = c.path();
      run.resume_step = c.step();
    }
  }
  run.step = std::clamp(newest, run.resume_step, run.steps);
}

std::vector<std::string> NodesOf(const RunRow& run) {
  if (!run.worker_ids.empty()) return run.worker_ids;
  if (run.worker_id.empty()) return {};
  return {run.worker_id};
}

int NodeRank(const RunRow& run, const std::string& worker_id) {
  if (worker_id.empty()) return -1;
  if (run.worker_ids.empty()) return run.worker_id == worker_id ? 0 : -1;
  auto it = std::find(run.worker_ids.begin(), run.worker_ids.end(), worker_id);
  return it == run.worker_ids.end() ? -1 : static_cast<int>(it - run.worker_ids.begin());
}

void ClearWorkers(RunRow& run) {
  run.worker_id.clear();
  run.worker_ids.clear();
  run.master_port = 0;
}

absl::Status FromStore(const absl::Status& s) {
  if (s.ok()) return s;
  if (s.code() == absl::StatusCode::kUnavailable) return s;
  return absl::InternalError(s.message());
}

RunBook::RunBook(Store* store, CoordinatorMetrics* metrics, std::function<double()> clock)
    : store_(store), metrics_(metrics), clock_(std::move(clock)) {}

absl::Status RunBook::Load() {
  absl::StatusOr<std::vector<SweepRow>> sweeps = store_->LoadSweeps();
  if (!sweeps.ok()) return sweeps.status();
  for (SweepRow& s : *sweeps) sweeps_[s.id] = std::move(s);
  absl::StatusOr<std::vector<RunRow>> runs = store_->LoadRuns();
  if (!runs.ok()) return runs.status();
  for (RunRow& r : *runs) {
    run_version_[r.id] = version_;
    runs_[r.id] = std::move(r);
  }
  return absl::OkStatus();
}

RunRow* RunBook::Find(int64_t run_id) {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

const RunRow* RunBook::Find(int64_t run_id) const {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::vector<RunRow*>> RunBook::Targets(const std::string& target) {
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
    RunRow* r = Find(rid);
    if (r == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("run ", target, " not found; `sgtctl ls SWEEP` lists a sweep's runs"));
    }
    out.push_back(r);
    return out;
  }
  return BadTarget(target);
}

uint64_t RunBook::version_of(int64_t run_id) const {
  auto it = run_version_.find(run_id);
  return it == run_version_.end() ? 0 : it->second;
}

void RunBook::Bump(int64_t run_id) {
  ++version_;
  run_version_[run_id] = version_;
}

// ---------------------------------------------------------------------------------------------
// Changes.

absl::Status RunBook::Transition(RunRow& run, v1::RunState to, const std::string& reason,
                                 Outbox& out) {
  if (absl::Status legal = CheckTransition(run.id, run.state, to); !legal.ok()) {
    log::Error(kLog, legal.message());
    return legal;
  }
  RunRow next = run;
  RunEventRow ev;
  ev.run_id = run.id;
  ev.time = clock_();
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
  if (metrics_ != nullptr) {
    // A run's series live while it is active; a resumed one starts from its checkpoint's growth.
    if (IsActive(to)) {
      TrackMetrics(run, run.resume_step, out);
    } else {
      CoordinatorMetrics* m = metrics_;
      const int64_t id = run.id;
      out.Observe([m, id] { m->science().Drop(id); });
    }
  }
  return absl::OkStatus();
}

absl::Status RunBook::Requeue(RunRow& run, v1::RunState via, const std::string& reason,
                              bool count_restart, Outbox& out) {
  const bool was_pausing = run.state == v1::RUN_STATE_PAUSING;
  if (absl::Status s = Transition(run, via, reason, out); !s.ok()) return s;
  ClearWorkers(run);
  return AfterLoss(run, was_pausing, reason, count_restart, out);
}

// Changes go to a copy, kept only once stored: a failed write leaves the run `lost` as it was,
// for the coordinator's next tick to finish.
absl::Status RunBook::AfterLoss(RunRow& run, bool was_pausing, const std::string& reason,
                                bool count_restart, Outbox& out) {
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
                           next.resume_step),
        out);
  } else if (!count_restart) {
    s = Transition(next, v1::RUN_STATE_QUEUED,
                   "back in the queue (the attempt never started; no restart counted)", out);
  } else if (const SweepRow& sweep = sweeps_[next.sweep_id]; next.restarts >= sweep.max_restarts) {
    s = Transition(
        next, v1::RUN_STATE_FAILED,
        absl::StrCat(reason, "; restart limit reached (max_restarts ", sweep.max_restarts,
                     "); raise max_restarts with a new sweep or fork the run"),
        out);
  } else {
    next.restarts += 1;
    const std::string from = next.resume_checkpoint.empty()
                                 ? std::string("from the start (no checkpoint yet)")
                                 : absl::StrCat("from its checkpoint at step ", next.resume_step);
    s = Transition(next, v1::RUN_STATE_QUEUED,
                   absl::StrCat("re-queued ", from, " (restart ", next.restarts, " of ",
                                sweep.max_restarts, ")"),
                   out);
  }
  if (s.ok()) run = std::move(next);
  return s;
}

absl::Status RunBook::Update(const RunRow& next) {
  if (absl::Status s = store_->UpdateRun(next); !s.ok()) return FromStore(s);
  runs_[next.id] = next;
  Bump(next.id);
  return absl::OkStatus();
}

absl::Status RunBook::UpdateSweep(const SweepRow& next) {
  if (absl::Status s = store_->UpdateSweep(next); !s.ok()) return FromStore(s);
  sweeps_[next.id] = next;
  return absl::OkStatus();
}

absl::Status RunBook::AddSweep(SweepRow& sweep, std::vector<RunRow>& runs, double now) {
  if (absl::Status s = store_->InsertSweep(sweep, runs, now); !s.ok()) return FromStore(s);
  sweeps_[sweep.id] = sweep;
  for (const RunRow& r : runs) {
    runs_[r.id] = r;
    Bump(r.id);
  }
  return absl::OkStatus();
}

absl::Status RunBook::AddRun(RunRow& run, const RunEventRow& created) {
  if (absl::Status s = store_->InsertRun(run, created); !s.ok()) return FromStore(s);
  runs_[run.id] = run;
  Bump(run.id);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Questions.

const std::string& RunBook::DeviceKind(const RunRow& run) {
  // Parsed once per configuration, not once per tick: a big queue is scheduled 4 times a second.
  auto cached = device_kind_.find(run.id);
  if (cached == device_kind_.end() || cached->second.first != run.config_hash) {
    cached =
        device_kind_
            .insert_or_assign(
                run.id, std::make_pair(run.config_hash, BriefOfConfigJson(run.config_json).device))
            .first;
  }
  return cached->second.second;
}

bool RunBook::BoundaryAhead(const RunRow& r) const {
  absl::StatusOr<RunConfig> cfg = RunConfigFromJson(r.config_json);
  return cfg.ok() && NextGrowthBoundary(*cfg, r.step) > 0;
}

void RunBook::TrackMetrics(const RunRow& run, int64_t past_to_step, Outbox& out) const {
  if (metrics_ == nullptr || !IsActive(run.state)) return;
  RunInfo info;
  auto sweep = sweeps_.find(run.sweep_id);
  info.sweep = sweep != sweeps_.end() ? sweep->second.name : SweepId(run.sweep_id);
  info.run = RunId(run.id);
  info.name = run.name;
  info.variant = run.variant;
  info.target_steps = run.steps;
  info.step = run.step;
  ReadModelShape(run.config_json, &info);
  // The past decisions are read from the store after the coordinator's lock is released.
  CoordinatorMetrics* m = metrics_;
  Store* store = store_;
  const int64_t id = run.id;
  out.Observe([m, store, id, info = std::move(info), past_to_step]() mutable {
    if (m->science().Tracked(id)) return;
    std::vector<v1::GrowthDecision> past;
    if (past_to_step != 0) {
      TelemetryFilter f;
      f.run_id = id;
      f.to_step = std::max<int64_t>(past_to_step, 0);
      for (;;) {
        absl::StatusOr<DecisionPage> page = store->QueryDecisions(f);
        if (!page.ok()) {  // the series start without the past; the run is unaffected
          log::Warn(kLog, RunId(id),
                    ": metrics start without its past decisions: ", page.status().message());
          break;
        }
        past.insert(past.end(), page->rows.begin(), page->rows.end());
        if (page->next == 0) break;
        f.cursor = page->next;
      }
    }
    m->science().Track(id, std::move(info), past);
  });
}

// ---------------------------------------------------------------------------------------------
// Proto form.

v1::Run RunBook::ToProto(const RunRow& r) const {
  v1::Run p;
  p.set_id(RunId(r.id));
  p.set_sweep_id(SweepId(r.sweep_id));
  p.set_name(r.name);
  p.set_variant(r.variant);
  p.set_state(r.state);
  p.set_reason(r.reason);
  p.set_priority(r.priority);
  p.set_devices(r.devices);
  p.set_nodes(r.nodes);
  for (const std::string& w : r.worker_ids) p.add_worker_ids(w);
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

v1::Sweep RunBook::ToProto(const SweepRow& s) const {
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

}  // namespace sgt::coord
