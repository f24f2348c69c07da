// Dispatch: queued runs onto workers with room (the FairScheduler's plan, turned into
// assignments and StartRun messages: one per node of a multi-node run, each with the
// rendezvous of node 0), the reasons of runs that wait, and the recovery of runs a failed store
// write left half-way.
#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
    queued.push_back({id, r.sweep_id, r.priority, r.devices, book_.DeviceKind(r), r.nodes});
  }
  if (queued.empty()) return;
  std::set<int64_t> assigned;
  for (const Assignment& a : scheduler_.Plan(queued, limits, capacity)) {
    RunRow& r = *book_.Find(a.run_id);
    std::vector<WorkerState*> nodes;
    for (const std::string& id : a.worker_ids) nodes.push_back(fleet_.Find(id));
    RunRow next = r;
    next.attempt += 1;
    next.worker_id = a.worker_id;
    next.step = next.resume_step;  // Run.step follows the current attempt
    std::string reason = absl::StrCat("assigned to ", a.worker_id, " (attempt ", next.attempt, ")");
    if (nodes.size() > 1) {
      // The rendezvous port on node 0's worker: one that no other gang there uses.
      next.worker_ids = a.worker_ids;
      next.master_port = nodes.front()->FreePort();
      if (next.master_port == 0) continue;  // the scheduler counted one free; not expected
      reason = absl::StrCat("assigned to ", absl::StrJoin(a.worker_ids, ", "), " (attempt ",
                            next.attempt, "; ", nodes.size(), " nodes, rendezvous at ",
                            nodes.front()->row.rendezvous_host, ":", next.master_port, ")");
    }
    if (!book_.Transition(next, v1::RUN_STATE_ASSIGNED, reason, out).ok()) continue;
    const double waited = std::max(0.0, now - r.updated_at);
    r = std::move(next);
    assigned.insert(a.run_id);
    if (options_.metrics != nullptr) {
      CoordinatorMetrics* m = options_.metrics;
      out.Observe([m, waited] { m->Scheduled(waited); });
    }
    for (size_t rank = 0; rank < nodes.size(); ++rank) {
      WorkerState& w = *nodes[rank];
      fleet_.Hold(w, a.run_id,
                  {r.attempt, r.devices, book_.DeviceKind(r), now, static_cast<int32_t>(rank),
                   rank == 0 ? r.master_port : 0});
      v1::CoordinatorMessage m;
      v1::StartRun* s = m.mutable_start();
      s->set_run_id(RunId(r.id));
      s->set_attempt(r.attempt);
      s->set_config_json(r.config_json);
      s->set_resume_checkpoint(r.resume_checkpoint);
      s->set_devices(r.devices);
      s->set_name(r.name);
      if (nodes.size() > 1) {
        v1::Rendezvous* rv = s->mutable_rendezvous();
        rv->set_nodes(static_cast<int32_t>(nodes.size()));
        rv->set_node_rank(static_cast<int32_t>(rank));
        rv->set_master_addr(nodes.front()->row.rendezvous_host);
        rv->set_master_port(r.master_port);
      }
      out.Add(w.sink, std::move(m));
    }
  }
  // Say why the rest wait when no connected worker could ever hold them, or when a gang waits
  // for its reservation; once that is no longer so, say so instead of leaving the old reason
  // (the transition's reason, "resumed ...", is kept).
  const Reservation& reservation = scheduler_.reservation();
  for (const QueuedRun& q : queued) {
    if (assigned.count(q.run_id)) continue;
    std::string why = UnschedulableReason(q, capacity);
    if (why.empty() && q.nodes > 1 && reservation.run_id == q.run_id) {
      why = absl::StrCat("waiting for ", q.nodes, " workers with ", q.devices, " free ",
                         q.device_kind, q.devices == 1 ? " device" : " devices",
                         " each: reserved for it: ", absl::StrJoin(reservation.worker_ids, ", "),
                         " (no other run starts on them meanwhile)");
    } else if (why.empty() && q.nodes > 1 && reservation.run_id != 0) {
      why = absl::StrCat(
          "waiting for ", q.nodes, " workers with ", q.devices, " free ", q.device_kind,
          q.devices == 1 ? " device" : " devices", " each, after gang ", RunId(reservation.run_id),
          ", which holds the reservation of ", absl::StrJoin(reservation.worker_ids, ", "));
    }
    const RunRow& r = *book_.Find(q.run_id);
    const bool said_unschedulable = r.reason.rfind("waiting for a worker", 0) == 0 ||
                                    r.reason.rfind("waiting for workers", 0) == 0 ||
                                    r.reason.rfind("needs ", 0) == 0 ||
                                    (q.nodes > 1 && r.reason.rfind("waiting for ", 0) == 0);
    if (why.empty() && said_unschedulable) {
      why = "waiting for free devices (or for its sweep's max_concurrent)";
    }
    if (why.empty() || r.reason == why) continue;
    RunRow next = r;
    next.reason = why;
    (void)book_.Update(next);  // a reason that could not be stored is said again next tick
  }
}

ScaleDemand Coordinator::ScalingDemand(const std::string& kind) {
  absl::MutexLock lock(&mu_);
  ScaleDemand d;
  for (const WorkerCapacity& w : fleet_.Capacity()) {
    auto total = w.total.find(kind);
    if (total == w.total.end() || total->second <= 0) continue;
    auto free = w.free.find(kind);
    d.workers.push_back({free == w.free.end() ? 0 : std::max(0, free->second),
                         fleet_.Find(w.worker_id)->session_opened});
  }
  // Room under each sweep's max_concurrent (-1: no limit).
  std::map<int64_t, int32_t> room;
  for (const auto& [id, s] : book_.sweeps())
    room[id] = s.max_concurrent > 0 ? s.max_concurrent : -1;
  std::vector<const RunRow*> queued;
  for (const auto& [id, r] : book_.runs()) {
    if (IsActive(r.state) && room.count(r.sweep_id) && room[r.sweep_id] > 0) room[r.sweep_id] -= 1;
    if (r.state == v1::RUN_STATE_QUEUED && book_.DeviceKind(r) == kind) queued.push_back(&r);
  }
  std::stable_sort(queued.begin(), queued.end(),
                   [](const RunRow* a, const RunRow* b) { return a->priority > b->priority; });
  for (const RunRow* r : queued) {
    auto it = room.find(r->sweep_id);
    if (it != room.end() && it->second == 0) continue;
    if (it != room.end() && it->second > 0) it->second -= 1;
    d.waiting.push_back({r->devices, r->nodes});
  }
  return d;
}

void Coordinator::RecoverStranded(Outbox& out) {
  for (auto& [rid, r] : book_.runs()) {
    if (r.state == v1::RUN_STATE_LOST) {
      (void)book_.AfterLoss(r, /*was_pausing=*/false, "lost", /*count_restart=*/true, out);
      continue;
    }
    if (!IsActive(r.state)) continue;
    for (const std::string& id : NodesOf(r)) {
      WorkerState* w = fleet_.Find(id);
      if (w == nullptr) continue;  // ExpireLeases loses those
      auto h = w->held.find(rid);
      const bool finished = w->finished_parts.count({rid, r.attempt}) > 0;
      if (!finished && (h == w->held.end() || h->second.attempt != r.attempt)) {
        fleet_.LoseAttempt(r, *w,
                           absl::StrCat("worker ", id, " no longer holds attempt ", r.attempt,
                                        " (its loss could not be stored at the time)"),
                           book_, out);
        break;
      }
    }
  }
}

}  // namespace sgt::coord
