// Dispatch: queued runs onto workers with room (the FairScheduler's plan, turned into
// assignments and StartRun messages), the reasons of runs no worker can hold, and the recovery
// of runs a failed store write left half-way.
#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/ids.h"
#include "services/coordinator/coordinator.h"

namespace sgt::coord {

void Coordinator::Schedule(Outbox& out) {
  const double now = Now();
  const std::vector<WorkerCapacity> capacity = fleet_.Capacity();
  std::map<int64_t, SweepLimit> limits;
  for (const auto& [id, s] : book_.sweeps()) limits[id].max_concurrent = s.max_concurrent;
  std::vector<QueuedRun> queued;
  for (const auto& [id, r] : book_.runs()) {
    if (IsActive(r.state)) limits[r.sweep_id].active += 1;
    if (r.state != v1::RUN_STATE_QUEUED) continue;
    queued.push_back({id, r.sweep_id, r.priority, r.devices, book_.DeviceKind(r)});
  }
  if (queued.empty()) return;
  std::set<int64_t> assigned;
  for (const Assignment& a : scheduler_.Plan(queued, limits, capacity)) {
    RunRow& r = *book_.Find(a.run_id);
    WorkerState& w = *fleet_.Find(a.worker_id);
    RunRow next = r;
    next.attempt += 1;
    next.worker_id = a.worker_id;
    next.step = next.resume_step;  // Run.step follows the current attempt
    if (!book_
             .Transition(next, v1::RUN_STATE_ASSIGNED,
                         absl::StrCat("assigned to ", a.worker_id, " (attempt ", next.attempt, ")"),
                         out)
             .ok()) {
      continue;
    }
    const double waited = std::max(0.0, now - r.updated_at);
    r = std::move(next);
    assigned.insert(a.run_id);
    if (options_.metrics != nullptr) {
      CoordinatorMetrics* m = options_.metrics;
      out.Observe([m, waited] { m->Scheduled(waited); });
    }
    fleet_.Hold(w, a.run_id, {r.attempt, r.devices, book_.DeviceKind(r), now});
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
    const RunRow& r = *book_.Find(q.run_id);
    const bool said_unschedulable =
        r.reason.rfind("waiting for a worker", 0) == 0 || r.reason.rfind("needs ", 0) == 0;
    if (why.empty() && said_unschedulable) {
      why = "waiting for free devices (or for its sweep's max_concurrent)";
    }
    if (why.empty() || r.reason == why) continue;
    RunRow next = r;
    next.reason = why;
    (void)book_.Update(next);  // a reason that could not be stored is said again next tick
  }
}

void Coordinator::RecoverStranded(Outbox& out) {
  for (auto& [rid, r] : book_.runs()) {
    if (r.state == v1::RUN_STATE_LOST) {
      (void)book_.AfterLoss(r, /*was_pausing=*/false, "lost", /*count_restart=*/true, out);
      continue;
    }
    if (!IsActive(r.state)) continue;
    WorkerState* w = fleet_.Find(r.worker_id);
    if (w == nullptr) continue;  // ExpireLeases loses those
    auto h = w->held.find(rid);
    if (h == w->held.end() || h->second.attempt != r.attempt) {
      (void)book_.Requeue(r, v1::RUN_STATE_LOST,
                          absl::StrCat("worker ", r.worker_id, " no longer holds attempt ",
                                       r.attempt, " (its loss could not be stored at the time)"),
                          /*count_restart=*/true, out);
    }
  }
}

}  // namespace sgt::coord
