// The client actions of the coordinator (coordinator.proto): submitting sweeps, pausing,
// resuming, snapshotting, cancelling, editing and forking runs. Each validates its request
// first, changes runs through the RunBook under the lock, schedules, and flushes after.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/config.h"
#include "libsgt/core/sha256.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"
#include "services/common/log.h"
#include "services/common/sweep.h"
#include "services/coordinator/coordinator.h"

namespace sgt::coord {

namespace {

using json = nlohmann::json;

constexpr char kLog[] = "coordinator";

std::string HashOf(const std::string& canonical) {
  return Sha256Hex(canonical.data(), canonical.size());
}

}  // namespace

absl::StatusOr<v1::SubmitSweepResponse> Coordinator::SubmitSweep(
    const v1::SubmitSweepRequest& req) {
  if (req.yaml().empty()) {
    return absl::InvalidArgumentError(
        "yaml: empty; the sweep file's text is required (docs/sweep.md; examples/)");
  }
  const std::string source = req.source_name().empty() ? "<sweep>" : req.source_name();
  absl::StatusOr<SweepSpec> spec = ParseSweep(req.yaml(), source);
  if (!spec.ok()) return spec.status();

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
    r.nodes = spec->nodes;
    r.steps = sr.config.train.steps;
    r.config_json = WorkerConfigJson(sr.config);
    r.config_hash = sr.config_hash;
    r.settings = sr.settings;
    r.created_at = now;
    r.updated_at = now;
    rows.push_back(std::move(r));
  }
  v1::SubmitSweepResponse resp;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = book_.AddSweep(sweep, rows, now); !s.ok()) return s;
    for (const RunRow& r : rows) *resp.add_runs() = book_.ToProto(r);
    *resp.mutable_sweep() = book_.ToProto(book_.sweeps().at(sweep.id));
    log::Info(kLog, "sweep ", SweepId(sweep.id), " '", sweep.name, "' submitted from ", source,
              ": ", rows.size(), " runs");
    Schedule(out);
  }
  Flush(out);
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
  v1::ActionResponse resp;
  Outbox out;
  absl::Status failed;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::vector<RunRow*>> targets = book_.Targets(req.target());
    if (!targets.ok()) return targets.status();
    for (RunRow* r : *targets) {
      if (!applies(*r)) {
        if (targets->size() == 1 && ParseId(req.target(), 'r') > 0) {
          return NotApplicable(verb, *r, need);
        }
        *resp.add_unchanged() = book_.ToProto(*r);
        continue;
      }
      // Each run's change is stored on its own: a store failure part-way through a sweep leaves
      // the runs before it changed, and says so.
      failed = act(*r, out);
      if (!failed.ok()) break;
      *resp.add_changed() = book_.ToProto(*r);
    }
    if (failed.ok()) Schedule(out);
  }
  // What the runs changed before a failure left to do (metrics, commands) still happens.
  Flush(out);
  if (!failed.ok()) return failed;
  return resp;
}

absl::StatusOr<v1::ActionResponse> Coordinator::Pause(const v1::ActionRequest& req) {
  return Act(
      req, "pause",
      "only queued runs, and assigned or running runs with a growth boundary still ahead, can "
      "pause (pauses happen at growth boundaries, sgt-method §8; vanilla has none: cancel it or "
      "let it finish)",
      [&](const RunRow& r) {
        mu_.AssertHeld();
        return r.state == v1::RUN_STATE_QUEUED ||
               ((r.state == v1::RUN_STATE_ASSIGNED || r.state == v1::RUN_STATE_RUNNING) &&
                book_.BoundaryAhead(r));
      },
      [&](RunRow& r, Outbox& out) {
        mu_.AssertHeld();
        if (r.state == v1::RUN_STATE_QUEUED) {
          return book_.Transition(r, v1::RUN_STATE_PAUSED,
                                  ReasonOr(req, "paused before it started"), out);
        }
        absl::Status s = book_.Transition(
            r, v1::RUN_STATE_PAUSING,
            ReasonOr(req, "pause requested; it stops at its next growth boundary"), out);
        if (s.ok()) fleet_.Command(r, v1::RunCommand::KIND_PAUSE, out);
        return s;
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Resume(const v1::ActionRequest& req) {
  return Act(
      req, "resume", "only paused runs resume",
      [](const RunRow& r) { return r.state == v1::RUN_STATE_PAUSED; },
      [&](RunRow& r, Outbox& out) {
        mu_.AssertHeld();
        const std::string from = r.resume_checkpoint.empty()
                                     ? std::string("from the start")
                                     : absl::StrCat("from its checkpoint at step ", r.resume_step);
        return book_.Transition(r, v1::RUN_STATE_QUEUED, ReasonOr(req, "resumed " + from), out);
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Snapshot(const v1::ActionRequest& req) {
  return Act(
      req, "snapshot",
      "only assigned and running runs on a connected worker, with a growth boundary still "
      "ahead, take snapshots (snapshots happen at growth boundaries, sgt-method §8)",
      [&](const RunRow& r) {
        mu_.AssertHeld();
        return (r.state == v1::RUN_STATE_ASSIGNED || r.state == v1::RUN_STATE_RUNNING) &&
               fleet_.Connected(r.worker_id) && book_.BoundaryAhead(r);
      },
      [&](RunRow& r, Outbox& out) {
        mu_.AssertHeld();
        fleet_.Command(r, v1::RunCommand::KIND_SNAPSHOT, out);
        log::Info(kLog, RunId(r.id), " snapshot requested", req.reason().empty() ? "" : ": ",
                  req.reason());
        return absl::OkStatus();
      });
}

absl::StatusOr<v1::ActionResponse> Coordinator::Cancel(const v1::ActionRequest& req) {
  return Act(
      req, "cancel", "it has already ended", [](const RunRow& r) { return !IsEnded(r.state); },
      [&](RunRow& r, Outbox& out) {
        mu_.AssertHeld();
        const bool on_worker = IsActive(r.state);
        // The worker keeps the devices until it reports the child gone (Fleet::Ended, on its final
        // status).
        absl::Status s =
            book_.Transition(r, v1::RUN_STATE_CANCELLED, ReasonOr(req, "cancelled"), out);
        if (s.ok() && on_worker) fleet_.Command(r, v1::RunCommand::KIND_CANCEL, out);
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
  v1::EditResponse resp;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<std::vector<RunRow*>> targets = book_.Targets(req.target());
    if (!targets.ok()) return targets.status();
    const bool sweep_target = ParseId(req.target(), 's') > 0;
    if (req.has_max_concurrent() && !sweep_target) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_concurrent: applies to a sweep, not to run ", req.target(),
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
          return absl::InvalidArgumentError(absl::StrCat(
              "steps: ", req.steps(), " does not fit run ", RunId(r->id), ": ", s.message()));
        }
        n.steps = req.steps();
        n.config_json = WorkerConfigJson(*cfg);
        n.config_hash = HashOf(CanonicalJson(*cfg));
      }
      n.updated_at = Now();
      next.push_back(std::move(n));
    }
    if (sweep_target) {
      SweepRow s =
          book_
              .sweeps()[targets->empty() ? ParseId(req.target(), 's') : targets->front()->sweep_id];
      if (req.has_priority()) s.priority = req.priority();
      if (req.has_max_concurrent()) s.max_concurrent = req.max_concurrent();
      if (absl::Status st = book_.UpdateSweep(s); !st.ok()) return st;
    }
    for (RunRow& n : next) {
      if (absl::Status st = book_.Update(n); !st.ok()) return st;
      *resp.add_changed() = book_.ToProto(n);
    }
    if (sweep_target) {
      *resp.mutable_sweep() = book_.ToProto(book_.sweeps()[ParseId(req.target(), 's')]);
    }
    Schedule(out);
  }
  Flush(out);
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
    absl::MutexLock lock(&mu_);
    const RunRow* found = book_.Find(rid);
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", req.run_id(), " not found"));
    }
    parent = *found;
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

  RunRow r;
  r.sweep_id = parent.sweep_id;
  r.name = cfg->name;
  r.variant = VariantName(cfg->variant);
  r.state = v1::RUN_STATE_QUEUED;
  r.priority = parent.priority;
  r.devices = parent.devices;
  r.nodes = parent.nodes;
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
  // A new run's creation is a transition from nothing: the state machine is asked too.
  if (absl::Status legal = CheckTransition(0, ev.from_state, ev.to_state); !legal.ok()) {
    return legal;
  }
  v1::ForkResponse resp;
  Outbox out;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status st = book_.AddRun(r, ev); !st.ok()) return st;
    *resp.mutable_run() = book_.ToProto(r);
    log::Info(kLog, RunId(r.id), " ", r.reason);
    Schedule(out);
  }
  Flush(out);
  return resp;
}

}  // namespace sgt::coord
