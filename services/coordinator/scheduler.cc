// The fair-share plan of which queued run goes to which worker (scheduler.h): pure logic.
#include "services/coordinator/scheduler.h"

#include <algorithm>
#include <deque>
#include <functional>

#include "absl/strings/str_cat.h"

namespace sgt::coord {

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

  // priority (high first) -> sweep id -> its runs, oldest first.
  std::map<int32_t, std::map<int64_t, std::deque<const QueuedRun*>>, std::greater<>> by_prio;
  for (const QueuedRun& r : queued) by_prio[r.priority][r.sweep_id].push_back(&r);
  for (auto& [prio, per_sweep] : by_prio) {
    for (auto& [sid, runs] : per_sweep) {
      std::sort(runs.begin(), runs.end(),
                [](const QueuedRun* a, const QueuedRun* b) { return a->run_id < b->run_id; });
    }
  }

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
          const QueuedRun& r = **it;
          WorkerCapacity* best = nullptr;
          for (WorkerCapacity& w : cap) {
            const int32_t free = w.free.count(r.device_kind) ? w.free.at(r.device_kind) : 0;
            if (free < r.devices) continue;
            const int32_t best_free = best ? best->free.at(r.device_kind) : 0;
            if (best == nullptr || free < best_free ||
                (free == best_free && w.worker_id < best->worker_id)) {
              best = &w;
            }
          }
          if (best == nullptr) continue;
          best->free[r.device_kind] -= r.devices;
          active[sid] += 1;
          out.push_back({r.run_id, best->worker_id});
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
  int32_t largest = 0;
  for (const WorkerCapacity& w : workers) {
    auto it = w.total.find(run.device_kind);
    if (it != w.total.end()) largest = std::max(largest, it->second);
  }
  if (largest >= run.devices) return "";
  if (workers.empty()) return "waiting for a worker to connect";
  return absl::StrCat("needs ", run.devices, " ", run.device_kind,
                      " device(s) on one worker; the largest connected worker has ", largest,
                      "; connect a bigger worker or lower `devices` in the sweep");
}

}  // namespace sgt::coord
