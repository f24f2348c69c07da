// The coordinator's SQLite store (store.h): sweeps, runs, run events, attempts and workers,
// their writes and their loads, and the JSON codecs of their columns (settings, metrics,
// devices). Store::Impl and the shared SQLite helpers are in store_internal.h.
#include <google/protobuf/util/json_util.h>
#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "services/coordinator/store.h"
#include "services/coordinator/store_internal.h"

namespace sgt::coord {

using store_internal::BindAll;
using store_internal::Int;
using store_internal::Int32;
using store_internal::NullIfZero;
using store_internal::Real;
using store_internal::Scoped;
using store_internal::Text;

namespace {

using nlohmann::json;

// JSON columns. Parsing never throws: parse errors and wrong types become a DataLoss status.
std::string SettingsJson(const std::vector<std::pair<std::string, std::string>>& settings) {
  json a = json::array();
  for (const auto& [key, value] : settings) a.push_back(json::array({key, value}));
  return a.dump();
}

bool ParseSettings(const std::string& text, std::vector<std::pair<std::string, std::string>>* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return false;
  for (const json& kv : j) {
    if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string()) {
      return false;
    }
    out->emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
  }
  return true;
}

// A multi-node attempt's workers: a JSON array of worker ids.
std::string WorkerIdsJson(const std::vector<std::string>& ids) { return json(ids).dump(); }

bool ParseWorkerIds(const std::string& text, std::vector<std::string>* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return false;
  for (const json& id : j) {
    if (!id.is_string()) return false;
    out->push_back(id.get<std::string>());
  }
  return true;
}

google::protobuf::util::JsonPrintOptions PrintOptions() {
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;  // every metric present, so json_extract never misses
  o.preserve_proto_field_names = true;     // "val_loss", as in types.proto
  return o;
}

google::protobuf::util::JsonParseOptions ParseOptions() {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  return o;
}

}  // namespace

// ---- Writes ----

absl::Status Store::Impl::WriteRun(const RunRow& r) {
  std::string metrics;
  const auto st = google::protobuf::util::MessageToJsonString(r.metrics, &metrics, PrintOptions());
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("store ", path, ": run ", r.id,
                                            ": cannot write its metrics as JSON: ", st.ToString()));
  }
  Scoped s(update_run);
  BindAll(s.get(), r.id, r.name, r.variant, RunStateName(r.state), r.reason, r.priority, r.devices,
          r.steps, r.step, r.attempt, r.restarts, r.worker_id, r.config_json, r.config_hash,
          SettingsJson(r.settings), NullIfZero{r.parent_run_id}, r.parent_step, r.resume_checkpoint,
          r.resume_step, metrics, r.summary_json, r.updated_at, r.nodes,
          WorkerIdsJson(r.worker_ids), r.master_port);
  SGT_STORE_RETURN_IF_ERROR(Execute(wdb, s.get(), absl::StrCat("updating run ", r.id)));
  if (sqlite3_changes(wdb) != 1) {
    return absl::NotFoundError(absl::StrCat("store ", path, ": updating run ", r.id,
                                            ": no such run; store it with InsertSweep or "
                                            "InsertRun first (a bug in the caller)"));
  }
  return absl::OkStatus();
}

// Only what telemetry changes: a state change written meanwhile by another thread stays.
absl::Status Store::Impl::WriteProgress(const RunRow& r) {
  std::string metrics;
  const auto st = google::protobuf::util::MessageToJsonString(r.metrics, &metrics, PrintOptions());
  if (!st.ok()) {
    return absl::InternalError(absl::StrCat("store ", path, ": run ", r.id,
                                            ": cannot write its metrics as JSON: ", st.ToString()));
  }
  Scoped s(update_progress);
  BindAll(s.get(), r.id, r.step, r.resume_checkpoint, r.resume_step, metrics, r.updated_at);
  SGT_STORE_RETURN_IF_ERROR(Execute(wdb, s.get(), absl::StrCat("updating run ", r.id)));
  if (sqlite3_changes(wdb) != 1) {
    return absl::NotFoundError(absl::StrCat("store ", path, ": updating run ", r.id,
                                            ": no such run (a bug in the caller)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::Impl::InsertRunRow(const RunRow& r, int64_t sweep_id) {
  std::string metrics;
  const auto st = google::protobuf::util::MessageToJsonString(r.metrics, &metrics, PrintOptions());
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat("store ", path, ": run \"", r.name,
                     "\": cannot write its metrics as JSON: ", st.ToString()));
  }
  Scoped s(insert_run);
  BindAll(s.get(), NullIfZero{sweep_id}, r.name, r.variant, RunStateName(r.state), r.reason,
          r.priority, r.devices, r.steps, r.step, r.attempt, r.restarts, r.worker_id, r.config_json,
          r.config_hash, SettingsJson(r.settings), NullIfZero{r.parent_run_id}, r.parent_step,
          r.resume_checkpoint, r.resume_step, metrics, r.summary_json, r.created_at, r.updated_at,
          r.nodes, WorkerIdsJson(r.worker_ids), r.master_port);
  SGT_STORE_RETURN_IF_ERROR(Execute(wdb, s.get(),
                                    absl::StrCat("inserting run \"", r.name, "\" (sweep ", sweep_id,
                                                 ", parent run ", r.parent_run_id, ")")));
  return sqlite3_last_insert_rowid(wdb);
}

absl::Status Store::Impl::InsertEvent(int64_t run_id, const RunEventRow& e) {
  Scoped s(insert_event);
  BindAll(s.get(), run_id, e.time, e.attempt, RunStateName(e.from_state), RunStateName(e.to_state),
          e.reason);
  return Execute(wdb, s.get(), absl::StrCat("inserting an event of run ", run_id));
}

absl::Status Store::Impl::Transition(const RunRow& run, const RunEventRow& event) {
  if (event.run_id != 0 && event.run_id != run.id) {
    return absl::InvalidArgumentError(
        absl::StrCat("store ", path, ": an event of run ", event.run_id, " passed with run ",
                     run.id, "; pass the run's own event (a bug in the caller)"));
  }
  SGT_STORE_RETURN_IF_ERROR(WriteRun(run));
  SGT_STORE_RETURN_IF_ERROR(InsertEvent(run.id, event));
  // An attempt counts (and hides the rows of older attempts past its start step) once it runs:
  // one refused or lost before its first RUNNING replaced nothing.
  if (event.to_state == v1::RUN_STATE_RUNNING && event.from_state == v1::RUN_STATE_ASSIGNED) {
    Scoped s(upsert_attempt);
    BindAll(s.get(), run.id, run.attempt, run.resume_step, run.worker_id, event.time);
    SGT_STORE_RETURN_IF_ERROR(
        Execute(wdb, s.get(), absl::StrCat("recording attempt ", run.attempt, " of run ", run.id)));
  }
  return absl::OkStatus();
}

absl::Status Store::InsertSweep(SweepRow& sweep, std::vector<RunRow>& runs, double now) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "sweep");
  Impl::WriteTxn txn(*impl_);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  int64_t sweep_id = 0;
  {
    Scoped s(impl_->insert_sweep);
    BindAll(s.get(), sweep.name, sweep.priority, sweep.max_concurrent, sweep.max_restarts,
            sweep.source_name, sweep.source_yaml, sweep.created_at);
    SGT_STORE_RETURN_IF_ERROR(
        impl_->Execute(impl_->wdb, s.get(), absl::StrCat("inserting sweep \"", sweep.name, "\"")));
    sweep_id = sqlite3_last_insert_rowid(impl_->wdb);
  }
  std::vector<int64_t> ids;
  ids.reserve(runs.size());
  for (const RunRow& run : runs) {
    absl::StatusOr<int64_t> id = impl_->InsertRunRow(run, sweep_id);
    if (!id.ok()) return id.status();
    RunEventRow event;
    event.time = now;
    event.attempt = run.attempt;
    event.from_state = v1::RUN_STATE_UNSPECIFIED;
    event.to_state = run.state;
    event.reason = "submitted";
    SGT_STORE_RETURN_IF_ERROR(impl_->InsertEvent(*id, event));
    ids.push_back(*id);
  }
  SGT_STORE_RETURN_IF_ERROR(txn.Commit());
  // Only now: a failed call leaves the caller's rows as they were.
  sweep.id = sweep_id;
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i].id = ids[i];
    runs[i].sweep_id = sweep_id;
  }
  return absl::OkStatus();
}

absl::Status Store::InsertRun(RunRow& run, const RunEventRow& event) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "run");
  Impl::WriteTxn txn(*impl_);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  absl::StatusOr<int64_t> id = impl_->InsertRunRow(run, run.sweep_id);
  if (!id.ok()) return id.status();
  SGT_STORE_RETURN_IF_ERROR(impl_->InsertEvent(*id, event));
  SGT_STORE_RETURN_IF_ERROR(txn.Commit());
  run.id = *id;
  return absl::OkStatus();
}

absl::Status Store::UpdateSweep(const SweepRow& sweep) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "sweep");
  Scoped s(impl_->update_sweep);
  BindAll(s.get(), sweep.id, sweep.name, sweep.priority, sweep.max_concurrent, sweep.max_restarts,
          sweep.source_name, sweep.source_yaml);
  SGT_STORE_RETURN_IF_ERROR(
      impl_->Execute(impl_->wdb, s.get(), absl::StrCat("updating sweep ", sweep.id)));
  if (sqlite3_changes(impl_->wdb) != 1) {
    return absl::NotFoundError(absl::StrCat("store ", path_, ": updating sweep ", sweep.id,
                                            ": no such sweep; store it with InsertSweep first "
                                            "(a bug in the caller)"));
  }
  return absl::OkStatus();
}

absl::Status Store::UpdateRun(const RunRow& run) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "run");
  return impl_->WriteRun(run);  // one statement: atomic without a transaction
}

absl::Status Store::TransitionRun(const RunRow& run, const RunEventRow& event) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "transition");
  Impl::WriteTxn txn(*impl_);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  SGT_STORE_RETURN_IF_ERROR(impl_->Transition(run, event));
  return txn.Commit();
}

absl::Status Store::TransitionRuns(const std::vector<std::pair<RunRow, RunEventRow>>& changes) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "transition");
  Impl::WriteTxn txn(*impl_);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  for (const auto& [run, event] : changes) {
    SGT_STORE_RETURN_IF_ERROR(impl_->Transition(run, event));
  }
  return txn.Commit();
}

absl::Status Store::UpsertWorker(const WorkerRow& w) {
  if (w.id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("store ", path_, ": a worker without an id; assign one (\"w1\") first"));
  }
  std::string devices = "[";
  for (const v1::Device& d : w.devices) {
    std::string one;
    const auto st = google::protobuf::util::MessageToJsonString(d, &one, PrintOptions());
    if (!st.ok()) {
      return absl::InternalError(absl::StrCat("store ", path_, ": worker ", w.id,
                                              ": cannot write a device as JSON: ", st.ToString()));
    }
    if (devices.size() > 1) devices += ",";
    devices += one;
  }
  devices += "]";
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "worker");
  Scoped s(impl_->upsert_worker);
  BindAll(s.get(), w.id, w.name, w.hostname, devices, w.registered_at, w.last_seen,
          w.rendezvous_host, w.rendezvous_port_base, w.rendezvous_port_count);
  return impl_->Execute(impl_->wdb, s.get(), absl::StrCat("storing worker ", w.id));
}

// ---- Reads ----

absl::StatusOr<std::vector<SweepRow>> Store::LoadSweeps() const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->load_sweeps);
  std::vector<SweepRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    SweepRow w;
    w.id = Int(s.get(), 0);
    w.name = Text(s.get(), 1);
    w.priority = Int32(s.get(), 2);
    w.max_concurrent = Int32(s.get(), 3);
    w.max_restarts = Int32(s.get(), 4);
    w.source_name = Text(s.get(), 5);
    w.source_yaml = Text(s.get(), 6);
    w.created_at = Real(s.get(), 7);
    out.push_back(std::move(w));
  }
  if (rc != SQLITE_DONE) return impl_->Error(impl_->rdb, rc, "loading sweeps");
  return out;
}

absl::StatusOr<RunRow> Store::Impl::ReadRun(sqlite3_stmt* s) const {
  RunRow r;
  r.id = Int(s, 0);
  r.sweep_id = Int(s, 1);  // NULL reads as 0
  r.name = Text(s, 2);
  r.variant = Text(s, 3);
  const std::string state = Text(s, 4);
  r.state = RunStateFromName(state);
  if (r.state == v1::RUN_STATE_UNSPECIFIED) {
    return Corrupt(absl::StrCat("run ", r.id, " state \"", state, "\""));
  }
  r.reason = Text(s, 5);
  r.priority = Int32(s, 6);
  r.devices = Int32(s, 7);
  r.steps = Int(s, 8);
  r.step = Int(s, 9);
  r.attempt = Int32(s, 10);
  r.restarts = Int32(s, 11);
  r.worker_id = Text(s, 12);
  r.config_json = Text(s, 13);
  r.config_hash = Text(s, 14);
  if (!ParseSettings(Text(s, 15), &r.settings)) {
    return Corrupt(absl::StrCat("run ", r.id, " settings (a JSON array of [key, value])"));
  }
  r.parent_run_id = Int(s, 16);
  r.parent_step = Int(s, 17);
  r.resume_checkpoint = Text(s, 18);
  r.resume_step = Int(s, 19);
  if (!google::protobuf::util::JsonStringToMessage(Text(s, 20), &r.metrics, ParseOptions()).ok()) {
    return Corrupt(absl::StrCat("run ", r.id, " metrics (RunMetrics as JSON)"));
  }
  r.summary_json = Text(s, 21);
  r.created_at = Real(s, 22);
  r.updated_at = Real(s, 23);
  r.nodes = std::max(1, Int32(s, 24));
  if (!ParseWorkerIds(Text(s, 25), &r.worker_ids)) {
    return Corrupt(absl::StrCat("run ", r.id, " worker_ids (a JSON array of worker ids)"));
  }
  r.master_port = Int32(s, 26);
  return r;
}

absl::StatusOr<std::vector<RunRow>> Store::LoadRuns() const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->load_runs);
  std::vector<RunRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    absl::StatusOr<RunRow> r = impl_->ReadRun(s.get());
    if (!r.ok()) return r.status();
    out.push_back(*std::move(r));
  }
  if (rc != SQLITE_DONE) return impl_->Error(impl_->rdb, rc, "loading runs");
  return out;
}

absl::StatusOr<std::vector<RunEventRow>> Store::RunEvents(int64_t run_id) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->run_events);
  BindAll(s.get(), run_id);
  std::vector<RunEventRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    RunEventRow e;
    e.run_id = run_id;
    e.time = Real(s.get(), 0);
    e.attempt = Int32(s.get(), 1);
    e.from_state = RunStateFromName(Text(s.get(), 2));
    e.to_state = RunStateFromName(Text(s.get(), 3));
    e.reason = Text(s.get(), 4);
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) {
    return impl_->Error(impl_->rdb, rc, absl::StrCat("loading the events of run ", run_id));
  }
  return out;
}

absl::StatusOr<std::vector<WorkerRow>> Store::LoadWorkers() const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->load_workers);
  std::vector<WorkerRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    WorkerRow w;
    w.id = Text(s.get(), 0);
    w.name = Text(s.get(), 1);
    w.hostname = Text(s.get(), 2);
    // The devices column is a JSON array of Device; wrapped, it is a Worker message.
    v1::Worker parsed;
    if (!google::protobuf::util::JsonStringToMessage(
             absl::StrCat("{\"devices\":", Text(s.get(), 3), "}"), &parsed, ParseOptions())
             .ok()) {
      return impl_->Corrupt(absl::StrCat("worker ", w.id, " devices (a JSON array of Device)"));
    }
    w.devices.assign(parsed.devices().begin(), parsed.devices().end());
    w.registered_at = Real(s.get(), 4);
    w.last_seen = Real(s.get(), 5);
    w.rendezvous_host = Text(s.get(), 6);
    w.rendezvous_port_base = Int32(s.get(), 7);
    w.rendezvous_port_count = Int32(s.get(), 8);
    out.push_back(std::move(w));
  }
  if (rc != SQLITE_DONE) return impl_->Error(impl_->rdb, rc, "loading workers");
  return out;
}

absl::Status Store::UpsertSlurmJob(const SlurmJobRow& j) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "slurm_job");
  Scoped s(impl_->upsert_slurm_job);
  BindAll(s.get(), j.id, j.state, j.submitted_at, j.running_since);
  return impl_->Execute(impl_->wdb, s.get(), absl::StrCat("storing Slurm job ", j.id));
}

absl::Status Store::DeleteSlurmJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  Impl::WriteTimer timer(*impl_, "slurm_job");
  Scoped s(impl_->delete_slurm_job);
  BindAll(s.get(), id);
  return impl_->Execute(impl_->wdb, s.get(), absl::StrCat("forgetting Slurm job ", id));
}

absl::StatusOr<std::vector<SlurmJobRow>> Store::LoadSlurmJobs() const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->load_slurm_jobs);
  std::vector<SlurmJobRow> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    SlurmJobRow j;
    j.id = Text(s.get(), 0);
    j.state = Text(s.get(), 1);
    j.submitted_at = Real(s.get(), 2);
    j.running_since = Real(s.get(), 3);
    out.push_back(std::move(j));
  }
  if (rc != SQLITE_DONE) return impl_->Error(impl_->rdb, rc, "loading Slurm jobs");
  return out;
}

}  // namespace sgt::coord

#undef SGT_STORE_RETURN_IF_ERROR
