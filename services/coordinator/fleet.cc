// The fleet (fleet.h): registration, sessions and leases of workers, the attempts they hold,
// and the losses of runs whose worker went away.
#include "services/coordinator/fleet.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/ids.h"
#include "services/common/log.h"

namespace sgt::coord {

namespace {
constexpr char kLog[] = "coordinator";
}  // namespace

v1::CoordinatorMessage CommandMessage(v1::RunCommand::Kind kind, const std::string& run_id,
                                      int32_t attempt) {
  v1::CoordinatorMessage m;
  v1::RunCommand* c = m.mutable_command();
  c->set_kind(kind);
  c->set_run_id(run_id);
  c->set_attempt(attempt);
  return m;
}

std::map<std::string, int32_t> WorkerState::Total() const {
  std::map<std::string, int32_t> t;
  for (const v1::Device& d : row.devices) t[d.kind()] += 1;
  return t;
}

std::map<std::string, int32_t> WorkerState::Free() const {
  std::map<std::string, int32_t> f = Total();
  for (const auto& [id, h] : held) f[h.kind] -= h.devices;
  for (const auto& [key, h] : stopping) f[h.kind] -= h.devices;
  return f;
}

bool WorkerState::Rendezvous() const {
  return !row.rendezvous_host.empty() && row.rendezvous_port_base > 0 &&
         row.rendezvous_port_count > 0;
}

int32_t WorkerState::FreePort() const {
  if (!Rendezvous()) return 0;
  std::set<int32_t> used;
  for (const auto& [id, h] : held) used.insert(h.master_port);
  for (const auto& [key, h] : stopping) used.insert(h.master_port);
  for (int32_t i = 0; i < row.rendezvous_port_count; ++i) {
    if (!used.count(row.rendezvous_port_base + i)) return row.rendezvous_port_base + i;
  }
  return 0;
}

int32_t WorkerState::FreePorts() const {
  if (!Rendezvous()) return 0;
  std::set<int32_t> used;
  for (const auto& [id, h] : held) used.insert(h.master_port);
  for (const auto& [key, h] : stopping) used.insert(h.master_port);
  int32_t n = 0;
  for (int32_t i = 0; i < row.rendezvous_port_count; ++i) {
    n += used.count(row.rendezvous_port_base + i) ? 0 : 1;
  }
  return n;
}

Fleet::Fleet(Store* store, int32_t lease_seconds, std::function<double()> clock)
    : store_(store), lease_seconds_(lease_seconds), clock_(std::move(clock)) {}

absl::Status Fleet::Load(RunBook& book, double now) {
  absl::StatusOr<std::vector<WorkerRow>> workers = store_->LoadWorkers();
  if (!workers.ok()) return workers.status();
  for (WorkerRow& w : *workers) {
    auto ws = std::make_unique<WorkerState>();
    // A grace period: a worker that was connected before the restart has one lease to come
    // back before its runs count as lost.
    ws->lease_expires = now + lease_seconds_;
    next_worker_ = std::max(next_worker_, ParseId(w.id, 'w') + 1);
    ws->row = std::move(w);
    workers_[ws->row.id] = std::move(ws);
  }
  for (auto& [id, r] : book.runs()) {
    if (!IsActive(r.state)) continue;
    const std::vector<std::string> nodes = NodesOf(r);
    for (size_t rank = 0; rank < nodes.size(); ++rank) {
      auto w = workers_.find(nodes[rank]);
      if (w == workers_.end()) continue;  // ExpireLeases finds it orphaned and re-queues it
      w->second->held[id] = {r.attempt,
                             r.devices,
                             book.DeviceKind(r),
                             now,
                             static_cast<int32_t>(rank),
                             rank == 0 ? r.master_port : 0};
    }
  }
  return absl::OkStatus();
}

WorkerState* Fleet::Find(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : it->second.get();
}

bool Fleet::Connected(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  return it != workers_.end() && it->second->sink != nullptr;
}

// ---------------------------------------------------------------------------------------------
// Worker API.

absl::StatusOr<WorkerState*> Fleet::Register(const v1::RegisterRequest& req) {
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
  if (!req.rendezvous_host().empty() || req.rendezvous_port_base() != 0 ||
      req.rendezvous_port_count() != 0) {
    const int64_t base = req.rendezvous_port_base(), count = req.rendezvous_port_count();
    if (req.rendezvous_host().empty() || base < 1 || count < 1 || base + count - 1 > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rendezvous: host '", req.rendezvous_host(), "', ports [", base, ", ", base + count,
          "): a host and a port range within 1..65535 are needed for multi-node runs, or none "
          "of them for a worker that runs one-node runs only (docs/worker.md)"));
    }
  }
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
  row.rendezvous_host = req.rendezvous_host();
  row.rendezvous_port_base = req.rendezvous_port_base();
  row.rendezvous_port_count = req.rendezvous_port_count();
  row.last_seen = now;
  if (absl::Status s = store_->UpsertWorker(row); !s.ok()) return FromStore(s);
  if (!existing) {
    ++next_worker_;
    auto ws = std::make_unique<WorkerState>();
    existing = ws.get();
    workers_[row.id] = std::move(ws);
  }
  existing->row = row;
  existing->lease_expires = now + lease_seconds_;
  log::Info(kLog, "worker ", row.id, " '", row.name, "' registered with ", row.devices.size(),
            " devices");
  return existing;
}

absl::StatusOr<uint64_t> Fleet::Open(const v1::Hello& hello, std::shared_ptr<WorkerSink> sink,
                                     RunBook& book, Outbox& out) {
  if (hello.runs_size() > kMaxHeldRuns) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello: ", hello.runs_size(), " runs listed; at most ", kMaxHeldRuns));
  }
  WorkerState* found = Find(hello.worker_id());
  if (found == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("worker '", hello.worker_id(), "' is not registered; call Register first"));
  }
  WorkerState& w = *found;
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
  w.session_opened = now;
  w.lease_expires = now + lease_seconds_;
  w.row.last_seen = now;
  Reconcile(w, {hello.runs().begin(), hello.runs().end()}, book, out);
  v1::CoordinatorMessage lease;
  lease.mutable_lease()->set_expires_at(w.lease_expires);
  out.Add(w.sink, lease);
  return id;
}

// After a (re)connect: what the worker still runs against what the coordinator thinks it runs.
void Fleet::Reconcile(WorkerState& w, const std::vector<v1::RunRef>& held, RunBook& book,
                      Outbox& out) {
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
    RunRow* r = book.Find(rid);
    if (r != nullptr && IsActive(r->state) && NodeRank(*r, w.row.id) >= 0) {
      LoseAttempt(*r, w,
                  absl::StrCat("worker ", w.row.id, " reconnected without attempt ", r->attempt),
                  book, out);
    }
  }
  // Attempts the worker runs that are no longer wanted (cancelled, superseded): stop them.
  // Those it no longer lists have ended.
  for (auto it = w.stopping.begin(); it != w.stopping.end();) {
    auto rep = reported.find(it->first.first);
    const bool listed = rep != reported.end() && rep->second == it->first.second;
    it = listed ? std::next(it) : w.stopping.erase(it);
  }
  for (const v1::RunRef& ref : held) {
    if (!Wants(book, w, ref)) {
      StopUnwanted(book, w, ref, out);
      continue;
    }
    RunRow& r = *book.Find(ParseId(ref.run_id(), 'r'));
    // A pause asked for while the worker was away has not reached it yet (this node of it).
    if (r.state == v1::RUN_STATE_PAUSING) {
      out.Add(w.sink, CommandMessage(v1::RunCommand::KIND_PAUSE, RunId(r.id), r.attempt));
    }
    LearnRunning(w, r, "its hello", book, out);
  }
}

void Fleet::LearnRunning(const WorkerState& w, RunRow& r, const char* source, RunBook& book,
                         Outbox& out) {
  // Node 0 speaks for a multi-node attempt; the other nodes' listings say nothing of the run.
  if (r.state != v1::RUN_STATE_ASSIGNED || NodeRank(r, w.row.id) != 0) return;
  (void)book.Transition(
      r, v1::RUN_STATE_RUNNING,
      absl::StrCat("running on ", w.row.id, " (attempt ", r.attempt, "; ", source, " lists it)"),
      out);
}

void Fleet::Close(uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  WorkerState* w = Find(it->second);
  if (w != nullptr && w->session == session) {
    // Its runs keep their state until the lease expires: the worker may reconnect in time.
    w->sink.reset();
    w->session = 0;
    (void)store_->UpsertWorker(w->row);
    log::Info(kLog, "worker ", w->row.id, " disconnected; its runs wait ",
              absl::StrFormat("%.0f", w->lease_expires - Now()),
              " s (its lease) for it to come back");
  }
  sessions_.erase(it);
}

absl::StatusOr<WorkerState*> Fleet::Renew(uint64_t session) {
  auto sit = sessions_.find(session);
  if (sit == sessions_.end()) {
    return absl::AbortedError(
        "this session was replaced by a newer one or expired; open a new session");
  }
  WorkerState& w = *workers_.at(sit->second);
  const double now = Now();
  w.lease_expires = now + lease_seconds_;
  w.row.last_seen = now;
  return &w;
}

absl::StatusOr<bool> Fleet::Heartbeat(WorkerState& w, const v1::Heartbeat& hb, RunBook& book,
                                      Outbox& out) {
  if (hb.runs_size() > kMaxHeldRuns) {
    return absl::InvalidArgumentError(
        absl::StrCat("heartbeat: ", hb.runs_size(), " runs listed; at most ", kMaxHeldRuns));
  }
  const double now = Now();
  // Attempts given to this worker that its heartbeat no longer lists are gone (the child died
  // without a status reaching us). Only those given well before this heartbeat: a StartRun and
  // a heartbeat may cross on the wire.
  std::set<int64_t> listed;
  for (const v1::RunRef& ref : hb.runs()) listed.insert(ParseId(ref.run_id(), 'r'));
  if (hb.draining() && !w.draining) {
    log::Info(kLog, "worker ", w.row.id, " is shutting down; nothing new goes to it");
    w.draining = true;
  }
  const double slack = 2.0 * heartbeat_seconds();
  std::vector<int64_t> vanished;
  for (const auto& [rid, h] : w.held) {
    if (!listed.count(rid) && now - h.since > slack) vanished.push_back(rid);
  }
  for (int64_t rid : vanished) {
    const int32_t attempt = w.held[rid].attempt;
    w.held.erase(rid);
    RunRow* r = book.Find(rid);
    if (r != nullptr && IsActive(r->state) && NodeRank(*r, w.row.id) >= 0 &&
        r->attempt == attempt) {
      LoseAttempt(*r, w,
                  absl::StrCat("worker ", w.row.id, " no longer lists attempt ", attempt,
                               " in its heartbeats"),
                  book, out);
    }
  }
  // Stop attempts the worker still runs that the coordinator no longer wants; those it no
  // longer lists have stopped and free their devices.
  std::set<std::pair<int64_t, int32_t>> running;
  for (const v1::RunRef& ref : hb.runs()) {
    running.insert({ParseId(ref.run_id(), 'r'), ref.attempt()});
    if (!Wants(book, w, ref)) {
      StopUnwanted(book, w, ref, out);
    } else {
      LearnRunning(w, *book.Find(ParseId(ref.run_id(), 'r')), "its heartbeat", book, out);
    }
  }
  for (auto it = w.stopping.begin(); it != w.stopping.end();) {
    it = running.count(it->first) ? std::next(it) : w.stopping.erase(it);
  }
  v1::CoordinatorMessage lease;
  lease.mutable_lease()->set_expires_at(w.lease_expires);
  out.Add(w.sink, lease);
  return !vanished.empty();
}

void Fleet::ExpireLeases(RunBook& book, Outbox& out) {
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
      RunRow* r = book.Find(rid);
      if (r != nullptr && IsActive(r->state) && NodeRank(*r, w.row.id) >= 0 &&
          r->attempt == h.attempt) {
        LoseAttempt(*r, w, absl::StrCat("worker ", w.row.id, " stopped renewing its lease"), book,
                    out);
      }
    }
    (void)store_->UpsertWorker(w.row);
  }
  // Active runs whose worker is unknown (a store from an older coordinator): lost as well.
  for (auto& [rid, r] : book.runs()) {
    if (!IsActive(r.state)) continue;
    for (const std::string& id : NodesOf(r)) {
      if (workers_.count(id)) continue;
      CancelOtherNodes(r, id, out);
      (void)book.Requeue(r, v1::RUN_STATE_LOST,
                         absl::StrCat("its worker '", id, "' is not known to this coordinator"),
                         /*count_restart=*/true, out);
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Attempts.

void Fleet::Ended(WorkerState& w, int64_t run_id, int32_t attempt) {
  auto h = w.held.find(run_id);
  if (h != w.held.end() && h->second.attempt == attempt) w.held.erase(h);
  w.stopping.erase({run_id, attempt});
}

void Fleet::Hold(WorkerState& w, int64_t run_id, WorkerState::Held held) {
  // A new attempt of the run: what earlier ones finished here no longer matters.
  for (auto it = w.finished_parts.begin(); it != w.finished_parts.end();) {
    it = it->first == run_id ? w.finished_parts.erase(it) : std::next(it);
  }
  if (auto old = w.held.find(run_id); old != w.held.end() && old->second.attempt != held.attempt) {
    w.stopping[{run_id, old->second.attempt}] = old->second;
  }
  w.held[run_id] = held;
}

void Fleet::Command(const RunRow& run, v1::RunCommand::Kind kind, Outbox& out) {
  for (const std::string& id : NodesOf(run)) {
    WorkerState* w = Find(id);
    if (w != nullptr) out.Add(w->sink, CommandMessage(kind, RunId(run.id), run.attempt));
  }
}

void Fleet::CancelOtherNodes(const RunRow& run, const std::string& except, Outbox& out) {
  const std::vector<std::string> nodes = NodesOf(run);
  if (nodes.size() < 2) return;
  for (const std::string& id : nodes) {
    WorkerState* w = Find(id);
    if (id == except || w == nullptr) continue;
    // No longer wanted there: its devices (and port) stay busy, as `stopping`, until it ends.
    if (auto h = w->held.find(run.id); h != w->held.end() && h->second.attempt == run.attempt) {
      w->stopping[{run.id, run.attempt}] = h->second;
      w->held.erase(h);
    }
    out.Add(w->sink, CommandMessage(v1::RunCommand::KIND_CANCEL, RunId(run.id), run.attempt));
  }
}

void Fleet::LoseAttempt(RunRow& run, const WorkerState& w, const std::string& reason, RunBook& book,
                        Outbox& out) {
  const int rank = NodeRank(run, w.row.id);
  CancelOtherNodes(run, w.row.id, out);
  (void)book.Requeue(run, v1::RUN_STATE_LOST,
                     run.nodes > 1 ? absl::StrCat(reason, " (node ", rank, " of ", run.nodes,
                                                  "; the other nodes were told to cancel)")
                                   : reason,
                     /*count_restart=*/true, out);
}

bool Fleet::Wants(const RunBook& book, const WorkerState& w, const v1::RunRef& ref) const {
  const RunRow* r = book.Find(ParseId(ref.run_id(), 'r'));
  return r != nullptr && IsActive(r->state) && NodeRank(*r, w.row.id) >= 0 &&
         r->attempt == ref.attempt();
}

void Fleet::StopUnwanted(RunBook& book, WorkerState& w, const v1::RunRef& ref, Outbox& out) {
  out.Add(w.sink, CommandMessage(v1::RunCommand::KIND_CANCEL, ref.run_id(), ref.attempt()));
  const int64_t rid = ParseId(ref.run_id(), 'r');
  const RunRow* r = book.Find(rid);
  if (r == nullptr) return;
  // A cancelled run's attempt is still held (its devices counted) until its status comes.
  if (auto h = w.held.find(rid); h != w.held.end() && h->second.attempt == ref.attempt()) return;
  if (w.stopping.count({rid, ref.attempt()})) return;  // known, with its port
  w.stopping[{rid, ref.attempt()}] = {ref.attempt(), r->devices, book.DeviceKind(*r), Now()};
}

std::vector<WorkerCapacity> Fleet::Capacity() const {
  const double now = Now();
  std::vector<WorkerCapacity> capacity;
  for (const auto& [id, w] : workers_) {
    if (w->sink == nullptr || w->lease_expires < now || w->draining) continue;
    WorkerCapacity c{id, w->Free(), w->Total()};
    c.rendezvous = w->Rendezvous();
    c.free_ports = w->FreePorts();
    capacity.push_back(std::move(c));
  }
  return capacity;
}

void Fleet::Count(FleetCounts* f) const {
  const double now = Now();
  f->workers_registered = static_cast<int>(workers_.size());
  for (const auto& [id, w] : workers_) {
    if (w->sink == nullptr || w->lease_expires < now) continue;
    f->workers_connected += 1;
    const std::map<std::string, int32_t> total = w->Total(), free = w->Free();
    for (const auto& [kind, n] : total) {
      auto fr = free.find(kind);
      const int nfree = std::clamp(fr == free.end() ? 0 : fr->second, 0, n);
      f->devices[{kind, "free"}] += nfree;
      f->devices[{kind, "busy"}] += n - nfree;
    }
  }
}

v1::Worker Fleet::ToProto(const WorkerState& w) const {
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

}  // namespace sgt::coord
