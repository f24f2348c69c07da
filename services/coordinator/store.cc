// The coordinator's SQLite store (store.h; schema reference in docs/store.md): opening a file,
// its schema and forward migrations, the prepared statements, and the mapping of SQLite errors
// to a status and a fix. The writes and loads of sweeps, runs, events, attempts and workers are
// in store_runs.cc; telemetry (AppendTelemetry, checkpoints, counts, the paged queries) is in
// store_telemetry.cc; Store::Impl and the helpers they share are in store_internal.h.
//
// Two connections to one WAL file: the write connection (every write, under write_mu) and a
// read-only connection (every Load*, query and count, under read_mu), so that a client paging
// through entropy never waits behind ingestion. Every statement is prepared once at Open and
// reused; values are only ever bound, never spliced into SQL. Every multi-statement write runs
// in one BEGIN IMMEDIATE transaction that is rolled back unless it reaches COMMIT, so a failure
// leaves the file as it was.
#include "services/coordinator/store.h"

#include <sqlite3.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/coordinator/store_internal.h"

namespace sgt::coord {

using store_internal::CodeFor;
using store_internal::kEntropyChunk;
using store_internal::kEntropyColumns;
using store_internal::Text;

namespace {

// PRAGMA application_id of an sgt-coordinator database: "SGTC". Lets Open tell our files from
// other SQLite databases before touching them.
constexpr int32_t kApplicationId = 0x53475443;

// Migration i (1-based) takes the schema from version i-1 to i; each runs in one transaction
// that also sets PRAGMA user_version. Never edit a released entry: append a new one.
constexpr const char* kMigrations[] = {
    // 1: the initial schema. Telemetry tables (entropy, scalars) carry no foreign key: the
    // batch row of telemetry_batches, inserted first in the same transaction, checks the run
    // once per batch instead of once per row.
    R"sql(
PRAGMA application_id = 1397183555;

CREATE TABLE sweeps (
  id             INTEGER PRIMARY KEY,
  name           TEXT NOT NULL,
  priority       INTEGER NOT NULL,
  max_concurrent INTEGER NOT NULL,
  max_restarts   INTEGER NOT NULL,
  source_name    TEXT NOT NULL,
  source_yaml    TEXT NOT NULL,
  created_at     REAL NOT NULL
);

CREATE TABLE runs (
  id                INTEGER PRIMARY KEY,
  sweep_id          INTEGER REFERENCES sweeps(id),
  name              TEXT NOT NULL,
  variant           TEXT NOT NULL,
  state             TEXT NOT NULL,
  reason            TEXT NOT NULL,
  priority          INTEGER NOT NULL,
  devices           INTEGER NOT NULL,
  steps             INTEGER NOT NULL,
  step              INTEGER NOT NULL,
  attempt           INTEGER NOT NULL,
  restarts          INTEGER NOT NULL,
  worker_id         TEXT NOT NULL,
  config_json       TEXT NOT NULL,
  config_hash       TEXT NOT NULL,
  settings          TEXT NOT NULL,
  parent_run_id     INTEGER REFERENCES runs(id),
  parent_step       INTEGER NOT NULL,
  resume_checkpoint TEXT NOT NULL,
  resume_step       INTEGER NOT NULL,
  metrics           TEXT NOT NULL,
  summary_json      TEXT NOT NULL,
  created_at        REAL NOT NULL,
  updated_at        REAL NOT NULL
);
CREATE INDEX runs_by_sweep ON runs(sweep_id);

CREATE TABLE run_events (
  id         INTEGER PRIMARY KEY,
  run_id     INTEGER NOT NULL REFERENCES runs(id),
  time       REAL NOT NULL,
  attempt    INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  reason     TEXT NOT NULL
);
CREATE INDEX run_events_by_run ON run_events(run_id);

CREATE TABLE run_attempts (
  run_id     INTEGER NOT NULL REFERENCES runs(id),
  attempt    INTEGER NOT NULL,
  start_step INTEGER NOT NULL,
  worker_id  TEXT NOT NULL,
  started_at REAL NOT NULL,
  PRIMARY KEY (run_id, attempt)
);

CREATE TABLE workers (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  hostname      TEXT NOT NULL,
  devices       TEXT NOT NULL,
  registered_at REAL NOT NULL,
  last_seen     REAL NOT NULL
);

CREATE TABLE telemetry_batches (
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  attempt     INTEGER NOT NULL,
  sequence    INTEGER NOT NULL,
  rows        INTEGER NOT NULL,
  received_at REAL NOT NULL,
  PRIMARY KEY (run_id, attempt, sequence)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
  id      INTEGER PRIMARY KEY,
  run_id  INTEGER NOT NULL REFERENCES runs(id),
  attempt INTEGER NOT NULL,
  step    INTEGER NOT NULL,
  path    TEXT NOT NULL,
  bytes   INTEGER NOT NULL,
  sha256  TEXT NOT NULL,
  reason  TEXT NOT NULL,
  time    REAL NOT NULL
);
CREATE INDEX checkpoints_by_run ON checkpoints(run_id);

CREATE TABLE growth_decisions (
  id            INTEGER PRIMARY KEY,
  run_id        INTEGER NOT NULL REFERENCES runs(id),
  attempt       INTEGER NOT NULL,
  step          INTEGER NOT NULL,
  action        TEXT NOT NULL,
  layer         INTEGER NOT NULL,
  k             INTEGER NOT NULL,
  heads         TEXT NOT NULL,
  whole_block   INTEGER NOT NULL,
  candidates    TEXT NOT NULL,
  layer_entropy TEXT NOT NULL,
  head_entropy  TEXT NOT NULL,
  reason        TEXT NOT NULL,
  signal        INTEGER NOT NULL
);
CREATE INDEX growth_decisions_by_run_step ON growth_decisions(run_id, step, attempt);

CREATE TABLE entropy (
  id      INTEGER PRIMARY KEY,
  run_id  INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  step    INTEGER NOT NULL,
  signal  INTEGER NOT NULL,
  layer   INTEGER NOT NULL,
  head    INTEGER NOT NULL,
  loop    INTEGER NOT NULL,
  value   REAL
);
CREATE INDEX entropy_by_run_step ON entropy(run_id, step, attempt);

CREATE TABLE scalars (
  id      INTEGER PRIMARY KEY,
  run_id  INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  step    INTEGER NOT NULL,
  name    TEXT NOT NULL,
  value   REAL
);
CREATE INDEX scalars_by_run_step ON scalars(run_id, step, attempt);
)sql",
    // 2: runs across several workers (gang-scheduled data-parallel runs). A run's nodes (1: one
    // worker), the workers of its current attempt by node rank (a JSON array of ids, [] for a
    // one-node run) and the rendezvous port it was given on node 0's worker; each worker's
    // rendezvous address and port range, from its registration.
    R"sql(
ALTER TABLE runs ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN worker_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN master_port INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN rendezvous_host TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN rendezvous_port_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN rendezvous_port_count INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3: the worker jobs the Slurm autoscaler submitted and Slurm still lists, so that a
    // restarted coordinator counts them against --slurm-max-jobs before it asks squeue.
    R"sql(
CREATE TABLE slurm_jobs (
  job_id        TEXT PRIMARY KEY,
  state         TEXT NOT NULL,
  submitted_at  REAL NOT NULL,
  running_since REAL NOT NULL
) WITHOUT ROWID;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration per schema version");

constexpr int kBusyTimeoutMs = 5000;

// "INSERT INTO entropy(...) VALUES (?1, ?2, ?3, ..., ?8), (?1, ?2, ?9, ..., ?14), ...":
// run_id and attempt are shared, each row adds step, signal, layer, head, loop and value.
std::string EntropyChunkSql() {
  std::string sql =
      "INSERT INTO entropy(run_id, attempt, step, signal, layer, head, loop, value) VALUES ";
  for (int k = 0; k < kEntropyChunk; ++k) {
    absl::StrAppend(&sql, k == 0 ? "" : ", ", "(?1, ?2");
    for (int c = 0; c < kEntropyColumns; ++c) {
      absl::StrAppend(&sql, ", ?", 3 + kEntropyColumns * k + c);
    }
    sql += ")";
  }
  return sql;
}
constexpr char kUpgradeFix[] =
    "it was written by a newer sgt-coordinator; upgrade, or point --db at another file";

}  // namespace

namespace store_internal {

// What to do about an SQLite failure, by its primary result code.
const char* FixFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "another process holds the database; run one sgt-coordinator per file, or point "
             "--db at another file";
    case SQLITE_FULL:
      return "the disk is full; free space and retry";
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return "check that the file and its directory exist and are writable by this user";
    case SQLITE_IOERR:
      return "an I/O error; check the disk and the filesystem (WAL needs a local filesystem, "
             "not NFS)";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "the file is damaged; restore it from a backup or point --db at another file";
    case SQLITE_CONSTRAINT:
      return "the record names a row that is not stored or repeats a stored key; this is a bug "
             "in the caller";
    default:
      return "this is a bug in sgt-coordinator; report it with the database file";
  }
}

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
      return absl::StatusCode::kUnavailable;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace store_internal

absl::Status Store::Impl::OpenConnection(int flags, sqlite3** db) const {
  const int rc = sqlite3_open_v2(path.c_str(), db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = *db != nullptr ? sqlite3_errmsg(*db) : sqlite3_errstr(rc);
    sqlite3_close_v2(*db);
    *db = nullptr;
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    return absl::Status(
        CodeFor(rc),
        absl::StrCat("store ", path, ": cannot open or create the database: ", msg,
                     "; check that the directory ", dir,
                     " exists (it is not created) and that it and the file are writable"));
  }
  sqlite3_extended_result_codes(*db, 1);
  sqlite3_busy_timeout(*db, kBusyTimeoutMs);
  return absl::OkStatus();
}

absl::Status Store::Impl::CheckAndMigrate() {
  // Read-only checks first: a file we refuse is left exactly as it was.
  absl::StatusOr<int64_t> version = QueryInt(wdb, "PRAGMA user_version", "reading the schema");
  if (!version.ok()) {
    const int rc = sqlite3_extended_errcode(wdb);
    if ((rc & 0xff) == SQLITE_NOTADB) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store ", path, ": the file is not an SQLite database (", sqlite3_errmsg(wdb),
          "); it was left untouched: point --db at another file, or move this one away"));
    }
    return version.status();
  }
  if (*version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("store ", path, ": schema version ", *version,
                                                      " is newer than this build's ",
                                                      kSchemaVersion, "; ", kUpgradeFix));
  }
  absl::StatusOr<int64_t> app = QueryInt(wdb, "PRAGMA application_id", "reading the header");
  if (!app.ok()) return app.status();
  absl::StatusOr<int64_t> objects =
      QueryInt(wdb, "SELECT count(*) FROM sqlite_master", "reading the schema");
  if (!objects.ok()) return objects.status();
  if ((*app != 0 && *app != kApplicationId) || (*version == 0 && *objects > 0)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store ", path,
        ": the file is an SQLite database but not an sgt-coordinator one (application_id ", *app,
        ", ", *objects,
        " schema objects); it was left untouched: point --db at another file, or move this one "
        "away"));
  }

  // WAL: readers never wait for the writer. synchronous=NORMAL: a commit survives a crash or
  // kill -9 of this process, but the newest commits can be lost on power failure or an OS crash.
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(wdb, "PRAGMA journal_mode=WAL", -1, &raw, nullptr);
  StmtPtr wal(raw);
  if (rc == SQLITE_OK) rc = sqlite3_step(wal.get());
  if (rc != SQLITE_ROW) return Error(wdb, rc, "switching to WAL mode");
  const std::string mode = Text(wal.get(), 0);
  wal.reset();
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", path, ": SQLite cannot use WAL mode here (journal mode stays \"",
                     mode, "\"); put --db on a local filesystem, not in memory or on NFS"));
  }
  SGT_STORE_RETURN_IF_ERROR(
      Exec(wdb, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768",
           "setting connection options"));

  while (*version < kSchemaVersion) {
    const int64_t to = *version + 1;
    const std::string what = absl::StrCat("migrating the schema to version ", to);
    SGT_STORE_RETURN_IF_ERROR(Exec(wdb, "BEGIN IMMEDIATE", what));
    // Re-read under the write lock: another process may have migrated in between.
    absl::StatusOr<int64_t> now = QueryInt(wdb, "PRAGMA user_version", what);
    absl::Status st = now.status();
    if (st.ok() && *now != *version) {
      sqlite3_exec(wdb, "ROLLBACK", nullptr, nullptr, nullptr);
      if (*now > kSchemaVersion) {
        return absl::FailedPreconditionError(absl::StrCat("store ", path, ": schema version ", *now,
                                                          " is newer than this build's ",
                                                          kSchemaVersion, "; ", kUpgradeFix));
      }
      version = *now;
      continue;
    }
    if (st.ok()) st = Exec(wdb, kMigrations[to - 1], what);
    if (st.ok()) st = Exec(wdb, absl::StrCat("PRAGMA user_version = ", to), what);
    if (st.ok()) st = Exec(wdb, "COMMIT", what);
    if (!st.ok()) {
      if (!sqlite3_get_autocommit(wdb)) sqlite3_exec(wdb, "ROLLBACK", nullptr, nullptr, nullptr);
      return absl::Status(
          st.code(), absl::StrCat(st.message(), " (the file stays at version ", *version, ")"));
    }
    version = to;
  }
  schema_version = static_cast<int>(*version);
  return absl::OkStatus();
}

absl::Status Store::Impl::PrepareStatements() {
  struct Entry {
    StmtPtr* stmt;
    const char* sql;
  };
  const Entry write[] = {
      {&begin, "BEGIN IMMEDIATE"},
      {&commit, "COMMIT"},
      {&rollback, "ROLLBACK"},
      {&insert_sweep,
       "INSERT INTO sweeps(name, priority, max_concurrent, max_restarts, source_name, "
       "source_yaml, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&update_sweep,
       "UPDATE sweeps SET name = ?2, priority = ?3, max_concurrent = ?4, max_restarts = ?5, "
       "source_name = ?6, source_yaml = ?7 WHERE id = ?1"},
      {&insert_run,
       "INSERT INTO runs(sweep_id, name, variant, state, reason, priority, devices, steps, step, "
       "attempt, restarts, worker_id, config_json, config_hash, settings, parent_run_id, "
       "parent_step, resume_checkpoint, resume_step, metrics, summary_json, created_at, "
       "updated_at, nodes, worker_ids, master_port) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
       "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"},
      {&update_run,
       "UPDATE runs SET name = ?2, variant = ?3, state = ?4, reason = ?5, priority = ?6, "
       "devices = ?7, steps = ?8, step = ?9, attempt = ?10, restarts = ?11, worker_id = ?12, "
       "config_json = ?13, config_hash = ?14, settings = ?15, parent_run_id = ?16, "
       "parent_step = ?17, resume_checkpoint = ?18, resume_step = ?19, metrics = ?20, "
       "summary_json = ?21, updated_at = ?22, nodes = ?23, worker_ids = ?24, master_port = ?25 "
       "WHERE id = ?1"},
      {&update_progress,
       "UPDATE runs SET step = ?2, resume_checkpoint = ?3, resume_step = ?4, metrics = ?5, "
       "updated_at = ?6 WHERE id = ?1"},
      {&insert_event,
       "INSERT INTO run_events(run_id, time, attempt, from_state, to_state, reason) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&upsert_attempt,
       "INSERT OR REPLACE INTO run_attempts(run_id, attempt, start_step, worker_id, started_at) "
       "VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&upsert_worker,
       "INSERT INTO workers(id, name, hostname, devices, registered_at, last_seen, "
       "rendezvous_host, rendezvous_port_base, rendezvous_port_count) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(id) DO UPDATE SET "
       "name = excluded.name, hostname = excluded.hostname, devices = excluded.devices, "
       "registered_at = excluded.registered_at, last_seen = excluded.last_seen, "
       "rendezvous_host = excluded.rendezvous_host, "
       "rendezvous_port_base = excluded.rendezvous_port_base, "
       "rendezvous_port_count = excluded.rendezvous_port_count"},
      {&upsert_slurm_job,
       "INSERT INTO slurm_jobs(job_id, state, submitted_at, running_since) "
       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, "
       "submitted_at = excluded.submitted_at, running_since = excluded.running_since"},
      {&delete_slurm_job, "DELETE FROM slurm_jobs WHERE job_id = ?1"},
      {&insert_batch,
       "INSERT INTO telemetry_batches(run_id, attempt, sequence, rows, received_at) "
       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(run_id, attempt, sequence) DO NOTHING"},
      {&insert_entropy,
       "INSERT INTO entropy(run_id, attempt, step, signal, layer, head, loop, value) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
      {&insert_scalar,
       "INSERT INTO scalars(run_id, attempt, step, name, value) VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&insert_decision,
       "INSERT INTO growth_decisions(run_id, attempt, step, action, layer, k, heads, "
       "whole_block, candidates, layer_entropy, head_entropy, reason, signal) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"},
      {&insert_checkpoint,
       "INSERT INTO checkpoints(run_id, attempt, step, path, bytes, sha256, reason, time) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
  };
  for (const Entry& e : write) SGT_STORE_RETURN_IF_ERROR(Prepare(wdb, e.stmt, e.sql));
  SGT_STORE_RETURN_IF_ERROR(Prepare(wdb, &insert_entropy_chunk, EntropyChunkSql().c_str()));

  // Pages are ordered by (step, attempt, id); the cursor is the id of the previous page's last
  // row, whose (step, attempt) the *_cursor statement looks up. ?2..?4 is the exclusive lower
  // bound, ?5 the inclusive upper step.
  const Entry read[] = {
      {&rbegin, "BEGIN"},
      {&rcommit, "COMMIT"},
      {&load_sweeps,
       "SELECT id, name, priority, max_concurrent, max_restarts, source_name, source_yaml, "
       "created_at FROM sweeps ORDER BY id"},
      {&load_runs,
       "SELECT id, sweep_id, name, variant, state, reason, priority, devices, steps, step, "
       "attempt, restarts, worker_id, config_json, config_hash, settings, parent_run_id, "
       "parent_step, resume_checkpoint, resume_step, metrics, summary_json, created_at, "
       "updated_at, nodes, worker_ids, master_port FROM runs ORDER BY id"},
      {&run_events,
       "SELECT time, attempt, from_state, to_state, reason FROM run_events WHERE run_id = ?1 "
       "ORDER BY id"},
      {&load_workers,
       "SELECT id, name, hostname, devices, registered_at, last_seen, rendezvous_host, "
       "rendezvous_port_base, rendezvous_port_count FROM workers ORDER BY rowid"},
      {&load_slurm_jobs,
       "SELECT job_id, state, submitted_at, running_since FROM slurm_jobs ORDER BY submitted_at, "
       "job_id"},
      {&checkpoints,
       "SELECT attempt, step, path, bytes, sha256, reason, time FROM checkpoints "
       "WHERE run_id = ?1 ORDER BY id"},
      {&count_entropy, "SELECT count(*) FROM entropy WHERE run_id = ?1"},
      {&count_scalars, "SELECT count(*) FROM scalars WHERE run_id = ?1"},
      {&count_decisions, "SELECT count(*) FROM growth_decisions WHERE run_id = ?1"},
      {&attempts,
       "SELECT attempt, start_step FROM run_attempts WHERE run_id = ?1 ORDER BY attempt"},
      {&entropy_cursor, "SELECT step, attempt FROM entropy WHERE id = ?1 AND run_id = ?2"},
      {&entropy_page,
       "SELECT id, attempt, step, signal, layer, head, loop, value FROM entropy "
       "WHERE run_id = ?1 AND (step, attempt, id) > (?2, ?3, ?4) AND step <= ?5 "
       "ORDER BY step, attempt, id"},
      {&scalar_cursor, "SELECT step, attempt FROM scalars WHERE id = ?1 AND run_id = ?2"},
      {&scalar_page,
       "SELECT id, attempt, step, name, value FROM scalars "
       "WHERE run_id = ?1 AND (step, attempt, id) > (?2, ?3, ?4) AND step <= ?5 "
       "ORDER BY step, attempt, id"},
      {&decision_cursor,
       "SELECT step, attempt FROM growth_decisions WHERE id = ?1 AND run_id = ?2"},
      {&decision_page,
       "SELECT id, attempt, step, action, layer, k, heads, whole_block, candidates, "
       "layer_entropy, head_entropy, reason, signal FROM growth_decisions "
       "WHERE run_id = ?1 AND (step, attempt, id) > (?2, ?3, ?4) AND step <= ?5 "
       "ORDER BY step, attempt, id"},
  };
  for (const Entry& e : read) SGT_STORE_RETURN_IF_ERROR(Prepare(rdb, e.stmt, e.sql));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("store: empty database path; pass --db <file>");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  SGT_STORE_RETURN_IF_ERROR(
      impl->OpenConnection(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &impl->wdb.handle));
  SGT_STORE_RETURN_IF_ERROR(impl->CheckAndMigrate());
  SGT_STORE_RETURN_IF_ERROR(impl->OpenConnection(SQLITE_OPEN_READONLY, &impl->rdb.handle));
  SGT_STORE_RETURN_IF_ERROR(impl->PrepareStatements());
  std::unique_ptr<Store> store(new Store());
  store->impl_ = std::move(impl);
  store->path_ = path;
  return store;
}

Store::~Store() = default;

int Store::SchemaVersion() const { return impl_->schema_version; }

void Store::SetWriteObserver(std::function<void(const char* op, double seconds)> observer) {
  impl_->write_observer = std::move(observer);
}

}  // namespace sgt::coord

#undef SGT_STORE_RETURN_IF_ERROR
