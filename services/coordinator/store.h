// The coordinator's durable state: one SQLite file in WAL mode (docs/store.md).
//
// Every sweep, run, state transition, worker, checkpoint record, growth decision, entropy
// sample and scalar lives here; the coordinator's memory is a cache rebuilt from it at start.
// The schema has a version (PRAGMA user_version) and forward migrations; a file written by a
// newer coordinator is refused. Only prepared statements touch the data.
//
// Thread-safe: writes go through one connection under a mutex; reads (Load*, queries) use a
// second connection so that client queries do not wait behind telemetry ingestion.
//
//   absl::StatusOr<std::unique_ptr<Store>> store = Store::Open("sgt.db");
//   absl::StatusOr<bool> fresh = (*store)->AppendTelemetry(run_id, batch, now, &run);
#ifndef SGT_SERVICES_COORDINATOR_STORE_H_
#define SGT_SERVICES_COORDINATOR_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/coordinator/run_state.h"  // RunStateName: the names stored
#include "sgt/v1/types.pb.h"

struct sqlite3;

namespace sgt::coord {

// Schema version this build writes. Older files are migrated forward at Open.
inline constexpr int kSchemaVersion = 3;

struct SweepRow {
  int64_t id = 0;  // assigned by InsertSweep
  std::string name;
  int32_t priority = 50;
  int32_t max_concurrent = 0;  // 0: no limit
  int32_t max_restarts = 3;
  std::string source_name;
  std::string source_yaml;
  double created_at = 0;
};

struct RunRow {
  int64_t id = 0;  // assigned by InsertSweep / InsertRun
  int64_t sweep_id = 0;
  std::string name;
  std::string variant;
  v1::RunState state = v1::RUN_STATE_QUEUED;
  std::string reason;
  int32_t priority = 50;
  int32_t devices = 1;
  int64_t steps = 0;
  int64_t step = 0;  // newest step reported
  int32_t attempt = 0;
  int32_t restarts = 0;
  std::string worker_id;  // "w3", or "" when not on a worker; node 0's for a multi-node run
  int32_t nodes = 1;      // workers one attempt spans (gang-scheduled)
  // A multi-node attempt's workers by node rank (worker_ids[0] == worker_id); empty for a
  // one-node run and whenever worker_id is "".
  std::vector<std::string> worker_ids;
  int32_t master_port = 0;  // a multi-node attempt's rendezvous port on node 0's worker
  std::string config_json;
  std::string config_hash;
  std::vector<std::pair<std::string, std::string>> settings;  // grid key -> YAML value text
  int64_t parent_run_id = 0;                                  // 0: not a fork
  int64_t parent_step = 0;
  std::string resume_checkpoint;  // path the next attempt resumes from; "" = fresh
  int64_t resume_step = 0;        // step of that checkpoint (0 = fresh)
  v1::RunMetrics metrics;
  std::string summary_json;
  double created_at = 0;
  double updated_at = 0;
};

// One state transition (table run_events).
struct RunEventRow {
  int64_t run_id = 0;
  double time = 0;
  int32_t attempt = 0;
  v1::RunState from_state = v1::RUN_STATE_UNSPECIFIED;
  v1::RunState to_state = v1::RUN_STATE_UNSPECIFIED;
  std::string reason;
};

struct WorkerRow {
  std::string id;  // "w1"
  std::string name;
  std::string hostname;
  std::vector<v1::Device> devices;
  double registered_at = 0;
  double last_seen = 0;
  // Where the ranks of a multi-node run meet when its node 0 is this worker: host, and the
  // ports [base, base + count) the coordinator may hand out. "" / 0: the worker takes no part
  // in multi-node runs (it did not announce them).
  std::string rendezvous_host;
  int32_t rendezvous_port_base = 0;
  int32_t rendezvous_port_count = 0;
};

// A worker job the Slurm autoscaler submitted and Slurm still listed when last asked (table
// slurm_jobs; services/coordinator/autoscaler.h decides with them).
struct SlurmJobRow {
  std::string id;            // Slurm's job id ("1234")
  std::string state;         // squeue's %T (PENDING, RUNNING, ...); SUBMITTED until first listed
  double submitted_at = 0;   // seconds since the epoch
  double running_since = 0;  // first seen RUNNING; 0 until then
};

// Rows stored for a run, over every attempt.
struct RunCounts {
  int64_t decisions = 0;
  int64_t entropy_rows = 0;
  int64_t scalar_rows = 0;
};

// One page of a telemetry query. Rows are ordered by (step, attempt, insertion); `next` is the
// cursor to pass back for the following page, 0 when there is none.
struct EntropyPage {
  std::vector<v1::EntropyRow> rows;
  std::vector<int32_t> attempts;  // parallel to rows
  int64_t next = 0;
};
struct ScalarPage {
  std::vector<v1::ScalarRow> rows;
  std::vector<int32_t> attempts;
  int64_t next = 0;
};
struct DecisionPage {
  std::vector<v1::GrowthDecision> rows;
  std::vector<int32_t> attempts;
  int64_t next = 0;
};

// Which rows a query returns. Rows of attempt a at step s are superseded when a later attempt
// b > a started from a step before s (it re-ran s): they are hidden unless all_attempts.
struct TelemetryFilter {
  int64_t run_id = 0;
  int64_t from_step = 0;  // inclusive; 0 = from the start
  int64_t to_step = 0;    // inclusive; 0 = to the end
  bool all_attempts = false;
  int64_t cursor = 0;  // 0 for the first page
  int limit = 4096;    // rows per page
};

class Store {
 public:
  // Opens or creates the database at `path` (WAL, synchronous=NORMAL, foreign keys on) and
  // migrates it to kSchemaVersion. Errors name the path and the fix (unwritable directory, a
  // file that is not SQLite, a schema newer than this build).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int SchemaVersion() const;
  const std::string& path() const { return path_; }

  // Stores a sweep and its runs in one transaction, with a "queued" run event per run (reason
  // "submitted"). Fills sweep.id and every run's id and sweep_id.
  absl::Status InsertSweep(SweepRow& sweep, std::vector<RunRow>& runs, double now);
  // Stores one new run (a fork) and its first event in one transaction; fills run.id.
  absl::Status InsertRun(RunRow& run, const RunEventRow& event);
  absl::Status UpdateSweep(const SweepRow& sweep);
  // Writes every mutable field of the run (all but id, sweep_id, created_at).
  absl::Status UpdateRun(const RunRow& run);
  // Writes the run and appends the event in one transaction: every state change goes here.
  // When event.to_state is ASSIGNED it also records the attempt (run.attempt, its start step
  // run.resume_step, run.worker_id) in run_attempts.
  absl::Status TransitionRun(const RunRow& run, const RunEventRow& event);
  // Several runs at once (a sweep-wide cancel): all or nothing.
  absl::Status TransitionRuns(const std::vector<std::pair<RunRow, RunEventRow>>& changes);

  absl::StatusOr<std::vector<SweepRow>> LoadSweeps() const;
  absl::StatusOr<std::vector<RunRow>> LoadRuns() const;
  absl::StatusOr<std::vector<RunEventRow>> RunEvents(int64_t run_id) const;

  // Inserts or updates a worker by id.
  absl::Status UpsertWorker(const WorkerRow& worker);
  absl::StatusOr<std::vector<WorkerRow>> LoadWorkers() const;

  // The Slurm autoscaler's jobs: inserted or updated by id, deleted once Slurm no longer lists
  // them, loaded at start so that a restarted coordinator counts them against its maximum.
  absl::Status UpsertSlurmJob(const SlurmJobRow& job);
  absl::Status DeleteSlurmJob(const std::string& id);
  absl::StatusOr<std::vector<SlurmJobRow>> LoadSlurmJobs() const;

  // Called after every write with its kind ("telemetry", "transition", "run", "sweep",
  // "worker", "slurm_job") and how long it held the write lock, in seconds. Set it before other
  // threads use the store.
  void SetWriteObserver(std::function<void(const char* op, double seconds)> observer);

  // Stores one telemetry batch in one transaction: its entropy rows, scalars, decisions and
  // checkpoint records, keyed by (run_id, batch.attempt(), batch.sequence()), and, when `run` is
  // not null, the run's progress: its step, metrics, resume_checkpoint, resume_step and
  // updated_at (no other field, so a state change written concurrently is kept). Returns true when
  // stored, false when that key was already stored (then nothing is written). The batch's run_id
  // string is not read: `run_id` is the numeric id.
  absl::StatusOr<bool> AppendTelemetry(int64_t run_id, const v1::TelemetryBatch& batch, double now,
                                       const RunRow* run);

  absl::StatusOr<std::vector<v1::CheckpointRecord>> Checkpoints(int64_t run_id) const;
  absl::StatusOr<RunCounts> Counts(int64_t run_id) const;
  absl::StatusOr<EntropyPage> QueryEntropy(const TelemetryFilter& f) const;
  absl::StatusOr<ScalarPage> QueryScalars(const TelemetryFilter& f) const;
  absl::StatusOr<DecisionPage> QueryDecisions(const TelemetryFilter& f) const;

 private:
  Store() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_STORE_H_
