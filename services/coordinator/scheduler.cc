// The fair-share plan of which queued run goes to which workers (scheduler.h): pure logic.
#include "services/coordinator/scheduler.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sgt::coord {

namespace {

int32_t Of(const std::map<std::string, int32_t>& m, const std::string& kind) {
  auto it = m.find(kind);
  return it == m.end() ? 0 : it->second;
}

// A worker that could ever hold one node of the gang `r`.
bool GangCapable(const QueuedRun& r, const WorkerCapacity& w) {
  return w.rendezvous && Of(w.total, r.device_kind) >= r.devices;
}

// Whether enough connected workers could hold the gang once their devices free up.
bool GangFeasible(const QueuedRun& r, const std::vector<WorkerCapacity>& workers) {
  int32_t n = 0;
  for (const WorkerCapacity& w : workers) n += GangCapable(r, w) ? 1 : 0;
  return n >= r.nodes;
}

// The workers a gang `r` starts on now, node 0 first, or {} when it cannot start: best fit
// (fewest free of its kind, then id) among those with room, node 0 the first with a free port.
// Reserved workers are skipped unless `r` holds the reservation.
std::vector<WorkerCapacity*> PickGang(const QueuedRun& r, std::vector<WorkerCapacity>& cap,
                                      const std::set<std::string>& reserved, bool holder) {
  std::vector<WorkerCapacity*> fit;
  for (WorkerCapacity& w : cap) {
    if (!w.rendezvous || Of(w.free, r.device_kind) < r.devices) continue;
    if (!holder && reserved.count(w.worker_id)) continue;
    fit.push_back(&w);
  }
  if (static_cast<int32_t>(fit.size()) < r.nodes) return {};
  std::sort(fit.begin(), fit.end(), [&](const WorkerCapacity* a, const WorkerCapacity* b) {
    const int32_t fa = Of(a->free, r.device_kind), fb = Of(b->free, r.device_kind);
    return fa != fb ? fa < fb : a->worker_id < b->worker_id;
  });
  auto master = std::find_if(fit.begin(), fit.end(),
                             [](const WorkerCapacity* w) { return w->free_ports > 0; });
  if (master == fit.end()) return {};
  std::vector<WorkerCapacity*> out = {*master};
  for (WorkerCapacity* w : fit) {
    if (static_cast<int32_t>(out.size()) == r.nodes) break;
    if (w != *master) out.push_back(w);
  }
  return out;
}

// The workers a gang that cannot start reserves: those already reserved for it that can still
// hold a node, then the ones with the fewest of its devices busy beyond what it needs (the
// soonest free), ties by id.
std::vector<std::string> ReserveFor(const QueuedRun& r, const std::vector<WorkerCapacity>& cap,
                                    const std::vector<std::string>& before) {
  std::vector<std::string> out;
  for (const std::string& id : before) {
    auto w = std::find_if(cap.begin(), cap.end(),
                          [&](const WorkerCapacity& c) { return c.worker_id == id; });
    if (w != cap.end() && GangCapable(r, *w)) out.push_back(id);
    if (static_cast<int32_t>(out.size()) == r.nodes) return out;
  }
  std::vector<const WorkerCapacity*> rest;
  for (const WorkerCapacity& w : cap) {
    if (GangCapable(r, w) && std::find(out.begin(), out.end(), w.worker_id) == out.end()) {
      rest.push_back(&w);
    }
  }
  auto short_of = [&](const WorkerCapacity* w) {
    return std::max(0, r.devices - Of(w->free, r.device_kind));
  };
  std::sort(rest.begin(), rest.end(), [&](const WorkerCapacity* a, const WorkerCapacity* b) {
    return short_of(a) != short_of(b) ? short_of(a) < short_of(b) : a->worker_id < b->worker_id;
  });
  for (const WorkerCapacity* w : rest) {
    if (static_cast<int32_t>(out.size()) == r.nodes) break;
    out.push_back(w->worker_id);
  }
  return out;
}

}  // namespace

std::vector<Assignment> FairScheduler::Plan(const std::vector<QueuedRun>& queued,
                                            const std::map<int64_t, SweepLimit>& sweeps,
                                            const std::vector<WorkerCapacity>& workers) {
  std::vector<Assignment> out;
  std::vector<WorkerCapacity> cap = workers;
  std::map<int64_t, int32_t> active;
  for (const auto& [id, s] : sweeps) active[id] = s.active;
  auto sweep_full = [&](int64_t sweep_id) {
    auto it = sweeps.find(sweep_id);
    return it != sweeps.end() && it->second.max_concurrent > 0 &&
           active[sweep_id] >= it->second.max_concurrent;
  };

  // The reservation carries over while its gang is queued, could start some day, and no queued
  // gang of strictly higher priority waits (that one takes it over when its turn comes).
  const QueuedRun* holder = nullptr;
  for (const QueuedRun& r : queued) {
    if (r.run_id == reservation_.run_id && r.nodes > 1) holder = &r;
  }
  if (holder != nullptr && (!GangFeasible(*holder, cap) || sweep_full(holder->sweep_id) ||
                            std::any_of(queued.begin(), queued.end(), [&](const QueuedRun& r) {
                              return r.nodes > 1 && r.priority > holder->priority &&
                                     GangFeasible(r, cap) && !sweep_full(r.sweep_id);
                            }))) {
    holder = nullptr;
  }
  const Reservation before = reservation_;
  std::set<std::string> reserved;
  if (holder == nullptr) {
    reservation_ = {};
  } else {
    reservation_.worker_ids = ReserveFor(*holder, cap, reservation_.worker_ids);
    reserved.insert(reservation_.worker_ids.begin(), reservation_.worker_ids.end());
  }

  // priority (high first) -> sweep id -> its runs, oldest first.
  std::map<int32_t, std::map<int64_t, std::deque<const QueuedRun*>>, std::greater<>> by_prio;
  for (const QueuedRun& r : queued) by_prio[r.priority][r.sweep_id].push_back(&r);
  for (auto& [prio, per_sweep] : by_prio) {
    for (auto& [sid, runs] : per_sweep) {
      std::sort(runs.begin(), runs.end(),
                [](const QueuedRun* a, const QueuedRun* b) { return a->run_id < b->run_id; });
    }
  }

  // Where `r` starts now, taking the devices (and node 0's port), or false.
  auto place = [&](const QueuedRun& r) {
    Assignment a;
    a.run_id = r.run_id;
    if (r.nodes <= 1) {
      WorkerCapacity* best = nullptr;
      for (WorkerCapacity& w : cap) {
        const int32_t free = Of(w.free, r.device_kind);
        if (free < r.devices || reserved.count(w.worker_id)) continue;
        const int32_t best_free = best ? Of(best->free, r.device_kind) : 0;
        if (best == nullptr || free < best_free ||
            (free == best_free && w.worker_id < best->worker_id)) {
          best = &w;
        }
      }
      if (best == nullptr) return false;
      best->free[r.device_kind] -= r.devices;
      a.worker_id = best->worker_id;
      a.worker_ids = {best->worker_id};
    } else {
      const bool holds = reservation_.run_id == r.run_id;
      std::vector<WorkerCapacity*> gang = PickGang(r, cap, reserved, holds);
      if (gang.empty()) {
        // The first gang in order that cannot start reserves the workers it waits for.
        if (reservation_.run_id == 0 && GangFeasible(r, cap)) {
          reservation_.run_id = r.run_id;
          reservation_.worker_ids = ReserveFor(
              r, cap, before.run_id == r.run_id ? before.worker_ids : std::vector<std::string>{});
          reserved.insert(reservation_.worker_ids.begin(), reservation_.worker_ids.end());
        }
        return false;
      }
      gang.front()->free_ports -= 1;
      for (WorkerCapacity* w : gang) {
        w->free[r.device_kind] -= r.devices;
        a.worker_ids.push_back(w->worker_id);
      }
      a.worker_id = a.worker_ids.front();
      if (holds) {
        reservation_ = {};
        reserved.clear();
      }
    }
    out.push_back(std::move(a));
    return true;
  };

  for (auto& [prio, per_sweep] : by_prio) {
    // Turn order: sweeps after the one served last at this priority, then the rest.
    std::vector<int64_t> order;
    for (const auto& [sid, runs] : per_sweep) order.push_back(sid);
    auto last = last_sweep_.find(prio);
    if (last != last_sweep_.end()) {
      auto pivot = std::upper_bound(order.begin(), order.end(), last->second);
      std::rotate(order.begin(), pivot, order.end());
    }
    // Take turns until a whole round assigns nothing.
    bool progress = true;
    while (progress) {
      progress = false;
      for (int64_t sid : order) {
        std::deque<const QueuedRun*>& runs = per_sweep[sid];
        if (runs.empty() || sweep_full(sid)) continue;
        // This sweep's oldest run that fits somewhere; runs that do not fit stay for later.
        for (auto it = runs.begin(); it != runs.end(); ++it) {
          if (!place(**it)) continue;
          active[sid] += 1;
          last_sweep_[prio] = sid;
          runs.erase(it);
          progress = true;
          break;
        }
      }
    }
  }
  return out;
}

std::string UnschedulableReason(const QueuedRun& run, const std::vector<WorkerCapacity>& workers) {
  if (run.nodes > 1) {
    if (GangFeasible(run, workers)) return "";
    if (workers.empty()) return "waiting for workers to connect";
    int32_t fit = 0, gang = 0;
    for (const WorkerCapacity& w : workers) {
      if (Of(w.total, run.device_kind) < run.devices) continue;
      ++fit;
      gang += w.rendezvous ? 1 : 0;
    }
    std::string why =
        absl::StrCat("needs ", run.nodes, " workers with ", run.devices, " free ", run.device_kind,
                     run.devices == 1 ? " device" : " devices", " each; ", gang,
                     " connected worker", gang == 1 ? " has " : "s have ", run.devices, " ",
                     run.device_kind, run.devices == 1 ? " device" : " devices");
    if (fit > gang) {
      absl::StrAppend(&why, " and a rendezvous address (", fit - gang,
                      " more without one cannot join a multi-node run; see docs/worker.md)");
    }
    absl::StrAppend(&why, "; connect more workers or lower `nodes` in the sweep");
    return why;
  }
  int32_t largest = 0;
  for (const WorkerCapacity& w : workers) largest = std::max(largest, Of(w.total, run.device_kind));
  if (largest >= run.devices) return "";
  if (workers.empty()) return "waiting for a worker to connect";
  return absl::StrCat("needs ", run.devices, " ", run.device_kind,
                      " device(s) on one worker; the largest connected worker has ", largest,
                      "; connect a bigger worker or lower `devices` in the sweep");
}

}  // namespace sgt::coord
