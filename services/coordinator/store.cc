// The coordinator's SQLite store (store.h; schema reference in docs/store.md).
//
// Two connections to one WAL file: the write connection (every write, under write_mu) and a
// read-only connection (every Load*, query and count, under read_mu), so that a client paging
// through entropy never waits behind ingestion. Every statement is prepared once at Open and
// reused; values are only ever bound, never spliced into SQL. Every multi-statement write runs
// in one BEGIN IMMEDIATE transaction that is rolled back unless it reaches COMMIT, so a failure
// leaves the file as it was.
#include "services/coordinator/store.h"

#include <google/protobuf/util/json_util.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <chrono>
#include <functional>
#include <mutex>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"

#define SGT_STORE_RETURN_IF_ERROR(expr)                    \
  do {                                                     \
    absl::Status sgt_store_status_ = expr;                 \
    if (!sgt_store_status_.ok()) return sgt_store_status_; \
  } while (0)

namespace sgt::coord {

namespace {

using nlohmann::json;

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
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration per schema version");

constexpr int kBusyTimeoutMs = 5000;
// Entropy rows per INSERT statement on the hot path, and the parameters each adds.
constexpr int kEntropyChunk = 32;
constexpr int kEntropyColumns = 6;

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
constexpr int kDefaultPageRows = 4096;
constexpr char kUpgradeFix[] =
    "it was written by a newer sgt-coordinator; upgrade, or point --db at another file";

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// Resets a cached statement and drops its bindings when the scope ends, on every path: a
// statement left mid-step would hold a read snapshot open, and a binding could point at freed
// memory.
class Scoped {
 public:
  explicit Scoped(const StmtPtr& s) : s_(s.get()) {}
  ~Scoped() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

// A row id that is NULL in the table when 0 (runs.sweep_id, runs.parent_run_id).
struct NullIfZero {
  int64_t id;
};

template <typename T>
void BindOne(sqlite3_stmt* s, int i, const T& v) {
  if constexpr (std::is_same_v<T, NullIfZero>) {
    if (v.id == 0) {
      sqlite3_bind_null(s, i);
    } else {
      sqlite3_bind_int64(s, i, v.id);
    }
  } else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
    sqlite3_bind_int64(s, i, static_cast<int64_t>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    sqlite3_bind_double(s, i, v);  // SQLite stores NaN as NULL; Real() reads it back as NaN
  } else {
    const absl::string_view t(v);
    sqlite3_bind_text(s, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  }
}

// Binds ?1, ?2, ... in order.
template <typename... Args>
void BindAll(sqlite3_stmt* s, const Args&... args) {
  int i = 0;
  (BindOne(s, ++i, args), ...);
}

int64_t Int(sqlite3_stmt* s, int col) { return sqlite3_column_int64(s, col); }
int32_t Int32(sqlite3_stmt* s, int col) { return sqlite3_column_int(s, col); }
double Real(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(s, col);
}
std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  if (p == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(s, col)));
}

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

// JSON columns. Parsing never throws: parse errors and wrong types become a DataLoss status.
std::string SettingsJson(const std::vector<std::pair<std::string, std::string>>& settings) {
  json a = json::array();
  for (const auto& [key, value] : settings) a.push_back(json::array({key, value}));
  return a.dump();
}

template <typename Repeated>
std::string ArrayJson(const Repeated& values) {
  json a = json::array();
  for (const auto& v : values) a.push_back(v);
  return a.dump();
}

std::string HeadEntropyJson(const google::protobuf::RepeatedPtrField<v1::HeadEntropies>& h) {
  json a = json::array();
  for (const v1::HeadEntropies& layer : h) {
    json values = json::array();
    for (double v : layer.values()) values.push_back(v);
    a.push_back(std::move(values));
  }
  return a.dump();
}

// JSON has no NaN or infinity: nlohmann writes them as null, read back as NaN.
bool ToDouble(const json& j, double* out) {
  if (j.is_null()) {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (!j.is_number()) return false;
  *out = j.get<double>();
  return true;
}

bool ParseInts(const std::string& text, google::protobuf::RepeatedField<int32_t>* out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return false;  // also when discarded
  for (const json& v : j) {
    if (!v.is_number_integer()) return false;
    out->Add(v.get<int32_t>());
  }
  return true;
}

bool ParseDoubles(const json& j, google::protobuf::RepeatedField<double>* out) {
  if (!j.is_array()) return false;
  for (const json& v : j) {
    double d = 0;
    if (!ToDouble(v, &d)) return false;
    out->Add(d);
  }
  return true;
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

// Superseded rows (TelemetryFilter): rows of attempt a at step s are hidden when some attempt
// b > a started from start_step < s. cutoff(a) = min start_step over b > a; a row is visible
// when its step <= cutoff(a).
class Supersession {
 public:
  // (attempt, start_step) sorted by attempt.
  explicit Supersession(std::vector<std::pair<int32_t, int64_t>> attempts)
      : attempts_(std::move(attempts)), suffix_min_(attempts_.size()) {
    int64_t m = std::numeric_limits<int64_t>::max();
    for (size_t i = attempts_.size(); i-- > 0;) {
      m = std::min(m, attempts_[i].second);
      suffix_min_[i] = m;
    }
  }
  bool Visible(int32_t attempt, int64_t step) const {
    auto it = std::upper_bound(attempts_.begin(), attempts_.end(), attempt,
                               [](int32_t a, const auto& p) { return a < p.first; });
    if (it == attempts_.end()) return true;
    return step <= suffix_min_[static_cast<size_t>(it - attempts_.begin())];
  }

 private:
  std::vector<std::pair<int32_t, int64_t>> attempts_;
  std::vector<int64_t> suffix_min_;
};

}  // namespace

struct Store::Impl {
  std::string path;
  int schema_version = 0;

  // A connection, closed when its member is destroyed: members go in reverse order, so each
  // connection's statements are finalized before it closes, and the write connection closes
  // last, which checkpoints the WAL into the file and removes it.
  struct Db {
    sqlite3* handle = nullptr;
    ~Db() { sqlite3_close_v2(handle); }
    operator sqlite3*() const { return handle; }  // NOLINT(google-explicit-constructor)
  };

  std::mutex write_mu;
  // Told how long each write took (SetWriteObserver); set before the store is shared.
  std::function<void(const char* op, double seconds)> write_observer;
  class WriteTimer;
  Db wdb;
  StmtPtr begin, commit, rollback;
  StmtPtr insert_sweep, update_sweep, insert_run, update_run, update_progress, insert_event,
      upsert_attempt;
  StmtPtr upsert_worker, insert_batch, insert_entropy, insert_entropy_chunk, insert_scalar,
      insert_decision;
  StmtPtr insert_checkpoint;

  mutable std::mutex read_mu;
  Db rdb;
  StmtPtr rbegin, rcommit;
  StmtPtr load_sweeps, load_runs, run_events, load_workers, checkpoints;
  StmtPtr count_entropy, count_scalars, count_decisions, attempts;
  StmtPtr entropy_cursor, entropy_page, scalar_cursor, scalar_page, decision_cursor, decision_page;

  absl::Status Error(sqlite3* db, int rc, absl::string_view what) const {
    return absl::Status(CodeFor(rc), absl::StrCat("store ", path, ": ", what, ": ",
                                                  sqlite3_errmsg(db), "; ", FixFor(rc)));
  }
  absl::Status Corrupt(absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(
        "store ", path, ": ", what,
        " is not what sgt-coordinator writes; the file was edited or damaged: restore it from "
        "a backup or point --db at another file"));
  }

  // Steps a statement that returns no rows (or ignores them).
  absl::Status Execute(sqlite3* db, sqlite3_stmt* s, absl::string_view what) const {
    const int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Error(db, rc, what);
    return absl::OkStatus();
  }

  absl::Status Exec(sqlite3* db, const std::string& sql, absl::string_view what) const {
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Error(db, rc, what);
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> QueryInt(sqlite3* db, const char* sql, absl::string_view what) const {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    StmtPtr s(raw);
    if (rc != SQLITE_OK) return Error(db, rc, what);
    rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return Error(db, rc, what);
    return Int(s.get(), 0);
  }

  absl::Status Prepare(sqlite3* db, StmtPtr* out, const char* sql) const {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    out->reset(raw);
    if (rc != SQLITE_OK) return Error(db, rc, absl::StrCat("preparing `", sql, "`"));
    return absl::OkStatus();
  }

  class WriteTxn;
  class ReadTxn;

  absl::Status OpenConnection(int flags, sqlite3** db) const;
  absl::Status CheckAndMigrate();
  absl::Status PrepareStatements();

  // Write side; callers hold write_mu.
  absl::Status WriteRun(const RunRow& run);
  absl::Status WriteProgress(const RunRow& run);
  absl::StatusOr<int64_t> InsertRunRow(const RunRow& run, int64_t sweep_id);
  absl::Status InsertEvent(int64_t run_id, const RunEventRow& e);
  absl::Status Transition(const RunRow& run, const RunEventRow& event);

  // Read side; callers hold read_mu.
  absl::StatusOr<RunRow> ReadRun(sqlite3_stmt* s) const;
  template <typename Page, typename ReadRow>
  absl::Status QueryPage(const TelemetryFilter& f, const StmtPtr& cursor_stmt,
                         const StmtPtr& page_stmt, absl::string_view table, Page* page,
                         ReadRow read_row) const;
};

// One write transaction on the write connection: BEGIN IMMEDIATE takes the write lock up front
// (no deadlock upgrading a read); anything but a successful Commit() rolls back.
class Store::Impl::WriteTxn {
 public:
  explicit WriteTxn(Impl& impl) : impl_(impl) {}
  ~WriteTxn() {
    if (!sqlite3_get_autocommit(impl_.wdb)) {
      Scoped r(impl_.rollback);
      sqlite3_step(r.get());
    }
  }
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;

  absl::Status Begin() {
    Scoped b(impl_.begin);
    return impl_.Execute(impl_.wdb, b.get(), "starting a write transaction");
  }
  absl::Status Commit() {
    Scoped c(impl_.commit);
    return impl_.Execute(impl_.wdb, c.get(), "committing a write transaction");
  }

 private:
  Impl& impl_;
};

// Reports a write's duration (from taking the write lock to the end of the scope) to the
// observer, if there is one.
class Store::Impl::WriteTimer {
 public:
  WriteTimer(const Impl& impl, const char* op)
      : impl_(impl), op_(op), start_(std::chrono::steady_clock::now()) {}
  ~WriteTimer() {
    if (!impl_.write_observer) return;
    impl_.write_observer(
        op_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  WriteTimer(const WriteTimer&) = delete;
  WriteTimer& operator=(const WriteTimer&) = delete;

 private:
  const Impl& impl_;
  const char* op_;
  std::chrono::steady_clock::time_point start_;
};

// One read transaction on the read connection, so that a query's statements see one snapshot.
class Store::Impl::ReadTxn {
 public:
  explicit ReadTxn(const Impl& impl) : impl_(impl) {}
  ~ReadTxn() {
    if (!sqlite3_get_autocommit(impl_.rdb)) {
      Scoped c(impl_.rcommit);
      sqlite3_step(c.get());
    }
  }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;

  absl::Status Begin() {
    Scoped b(impl_.rbegin);
    return impl_.Execute(impl_.rdb, b.get(), "starting a read transaction");
  }

 private:
  const Impl& impl_;
};

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
       "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
       "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"},
      {&update_run,
       "UPDATE runs SET name = ?2, variant = ?3, state = ?4, reason = ?5, priority = ?6, "
       "devices = ?7, steps = ?8, step = ?9, attempt = ?10, restarts = ?11, worker_id = ?12, "
       "config_json = ?13, config_hash = ?14, settings = ?15, parent_run_id = ?16, "
       "parent_step = ?17, resume_checkpoint = ?18, resume_step = ?19, metrics = ?20, "
       "summary_json = ?21, updated_at = ?22 WHERE id = ?1"},
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
       "INSERT INTO workers(id, name, hostname, devices, registered_at, last_seen) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
       "hostname = excluded.hostname, devices = excluded.devices, "
       "registered_at = excluded.registered_at, last_seen = excluded.last_seen"},
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
       "updated_at FROM runs ORDER BY id"},
      {&run_events,
       "SELECT time, attempt, from_state, to_state, reason FROM run_events WHERE run_id = ?1 "
       "ORDER BY id"},
      {&load_workers,
       "SELECT id, name, hostname, devices, registered_at, last_seen FROM workers ORDER BY rowid"},
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
          r.resume_step, metrics, r.summary_json, r.updated_at);
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
          r.resume_checkpoint, r.resume_step, metrics, r.summary_json, r.created_at, r.updated_at);
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

void Store::SetWriteObserver(std::function<void(const char* op, double seconds)> observer) {
  impl_->write_observer = std::move(observer);
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
  BindAll(s.get(), w.id, w.name, w.hostname, devices, w.registered_at, w.last_seen);
  return impl_->Execute(impl_->wdb, s.get(), absl::StrCat("storing worker ", w.id));
}

absl::StatusOr<bool> Store::AppendTelemetry(int64_t run_id, const v1::TelemetryBatch& batch,
                                            double now, const RunRow* run) {
  if (run != nullptr && run->id != run_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("store ", path_, ": telemetry of run ", run_id, " passed with run ", run->id,
                     "; pass the batch's own run (a bug in the caller)"));
  }
  const int32_t attempt = batch.attempt();
  const int64_t rows = batch.entropy_size() + batch.scalars_size() + batch.decisions_size() +
                       batch.checkpoints_size();
  const std::string where = absl::StrCat("storing telemetry batch ", batch.sequence(), " of run ",
                                         run_id, " attempt ", attempt);
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.write_mu);
  Impl::WriteTimer timer(im, "telemetry");
  Impl::WriteTxn txn(im);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  {
    Scoped s(im.insert_batch);
    BindAll(s.get(), run_id, attempt, batch.sequence(), rows, now);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return absl::NotFoundError(absl::StrCat("store ", path_, ": ", where,
                                              ": no such run; store the run before its "
                                              "telemetry (a bug in the caller)"));
    }
    if (rc != SQLITE_DONE) return im.Error(im.wdb, rc, where);
    if (sqlite3_changes(im.wdb) == 0) return false;  // stored before; the txn rolls back
  }
  if (batch.entropy_size() > 0) {
    // The hot path: kEntropyChunk rows per statement (a third fewer CPU cycles per row than one
    // at a time), run_id and attempt bound once (reset keeps bindings), the rest one at a time.
    Scoped chunk(im.insert_entropy_chunk);
    Scoped one(im.insert_entropy);
    for (sqlite3_stmt* st : {chunk.get(), one.get()}) {
      sqlite3_bind_int64(st, 1, run_id);
      sqlite3_bind_int(st, 2, attempt);
    }
    const int n = batch.entropy_size();
    int i = 0;
    while (i < n) {
      sqlite3_stmt* st = n - i >= kEntropyChunk ? chunk.get() : one.get();
      const int rows_now = st == chunk.get() ? kEntropyChunk : 1;
      for (int k = 0; k < rows_now; ++k) {
        const v1::EntropyRow& e = batch.entropy(i + k);
        const int p = 3 + kEntropyColumns * k;
        sqlite3_bind_int64(st, p, e.step());
        sqlite3_bind_int(st, p + 1, e.signal());
        sqlite3_bind_int(st, p + 2, e.layer());
        sqlite3_bind_int(st, p + 3, e.head());
        sqlite3_bind_int(st, p + 4, e.loop());
        sqlite3_bind_double(st, p + 5, e.value());
      }
      const int rc = sqlite3_step(st);
      if (rc != SQLITE_DONE) return im.Error(im.wdb, rc, where);
      sqlite3_reset(st);
      i += rows_now;
    }
  }

  if (batch.scalars_size() > 0) {
    Scoped s(im.insert_scalar);
    sqlite3_stmt* st = s.get();
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, attempt);
    for (const v1::ScalarRow& r : batch.scalars()) {
      sqlite3_bind_int64(st, 3, r.step());
      // SQLITE_STATIC: the batch outlives the step, and Scoped clears the binding.
      sqlite3_bind_text(st, 4, r.name().data(), static_cast<int>(r.name().size()), SQLITE_STATIC);
      sqlite3_bind_double(st, 5, r.value());
      const int rc = sqlite3_step(st);
      if (rc != SQLITE_DONE) return im.Error(im.wdb, rc, where);
      sqlite3_reset(st);
    }
  }
  for (const v1::GrowthDecision& d : batch.decisions()) {
    Scoped s(im.insert_decision);
    BindAll(s.get(), run_id, attempt, d.step(), d.action(), d.layer(), d.k(), ArrayJson(d.heads()),
            d.whole_block(), ArrayJson(d.candidates()), ArrayJson(d.layer_entropy()),
            HeadEntropyJson(d.head_entropy()), d.reason(), static_cast<int>(d.signal()));
    SGT_STORE_RETURN_IF_ERROR(im.Execute(im.wdb, s.get(), where));
  }
  for (const v1::CheckpointRecord& c : batch.checkpoints()) {
    Scoped s(im.insert_checkpoint);
    BindAll(s.get(), run_id, attempt, c.step(), c.path(), c.bytes(), c.sha256(), c.reason(),
            c.time());
    SGT_STORE_RETURN_IF_ERROR(im.Execute(im.wdb, s.get(), where));
  }
  if (run != nullptr) SGT_STORE_RETURN_IF_ERROR(im.WriteProgress(*run));
  SGT_STORE_RETURN_IF_ERROR(txn.Commit());
  return true;
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
    out.push_back(std::move(w));
  }
  if (rc != SQLITE_DONE) return impl_->Error(impl_->rdb, rc, "loading workers");
  return out;
}

absl::StatusOr<std::vector<v1::CheckpointRecord>> Store::Checkpoints(int64_t run_id) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Scoped s(impl_->checkpoints);
  BindAll(s.get(), run_id);
  std::vector<v1::CheckpointRecord> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    v1::CheckpointRecord c;
    c.set_run_id(RunId(run_id));
    c.set_attempt(Int32(s.get(), 0));
    c.set_step(Int(s.get(), 1));
    c.set_path(Text(s.get(), 2));
    c.set_bytes(Int(s.get(), 3));
    c.set_sha256(Text(s.get(), 4));
    c.set_reason(Text(s.get(), 5));
    c.set_time(Real(s.get(), 6));
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) {
    return impl_->Error(impl_->rdb, rc, absl::StrCat("loading the checkpoints of run ", run_id));
  }
  return out;
}

absl::StatusOr<RunCounts> Store::Counts(int64_t run_id) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  Impl::ReadTxn txn(*impl_);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());
  RunCounts counts;
  const std::pair<const StmtPtr*, int64_t*> queries[] = {
      {&impl_->count_decisions, &counts.decisions},
      {&impl_->count_entropy, &counts.entropy_rows},
      {&impl_->count_scalars, &counts.scalar_rows},
  };
  for (const auto& [stmt, out] : queries) {
    Scoped s(*stmt);
    BindAll(s.get(), run_id);
    const int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) {
      return impl_->Error(impl_->rdb, rc, absl::StrCat("counting the rows of run ", run_id));
    }
    *out = Int(s.get(), 0);
  }
  return counts;
}

template <typename Page, typename ReadRow>
absl::Status Store::Impl::QueryPage(const TelemetryFilter& f, const StmtPtr& cursor_stmt,
                                    const StmtPtr& page_stmt, absl::string_view table, Page* page,
                                    ReadRow read_row) const {
  const std::string what = absl::StrCat("reading ", table, " of run ", f.run_id);
  const size_t limit = static_cast<size_t>(f.limit > 0 ? f.limit : kDefaultPageRows);
  Impl::ReadTxn txn(*this);
  SGT_STORE_RETURN_IF_ERROR(txn.Begin());

  std::vector<std::pair<int32_t, int64_t>> starts;
  if (!f.all_attempts) {
    Scoped s(attempts);
    BindAll(s.get(), f.run_id);
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      starts.emplace_back(Int32(s.get(), 0), Int(s.get(), 1));
    }
    if (rc != SQLITE_DONE) return Error(rdb, rc, what);
  }
  const Supersession supersession(std::move(starts));

  // Exclusive lower bound (step, attempt, id): the later of "from from_step" and the cursor.
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  int64_t lo_step = f.from_step > 0 ? f.from_step : kMin, lo_attempt = kMin, lo_id = kMin;
  if (f.cursor != 0) {
    Scoped c(cursor_stmt);
    BindAll(c.get(), f.cursor, f.run_id);
    const int rc = sqlite3_step(c.get());
    if (rc == SQLITE_DONE) {
      return absl::InvalidArgumentError(
          absl::StrCat("store ", path, ": cursor ", f.cursor, " is not a row of run ", f.run_id,
                       "'s ", table, "; pass the `next` of the previous page, or 0 to start over"));
    }
    if (rc != SQLITE_ROW) return Error(rdb, rc, what);
    const int64_t c_step = Int(c.get(), 0);
    if (c_step >= lo_step) {
      lo_step = c_step;
      lo_attempt = Int(c.get(), 1);
      lo_id = f.cursor;
    }
  }

  Scoped s(page_stmt);
  BindAll(s.get(), f.run_id, lo_step, lo_attempt, lo_id,
          f.to_step > 0 ? f.to_step : std::numeric_limits<int64_t>::max());
  int rc;
  int64_t last_id = 0;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    const int32_t attempt = Int32(s.get(), 1);
    if (!f.all_attempts && !supersession.Visible(attempt, Int(s.get(), 2))) continue;
    if (page->rows.size() == limit) {  // one more visible row: there is a next page
      page->next = last_id;
      return absl::OkStatus();
    }
    SGT_STORE_RETURN_IF_ERROR(read_row(s.get(), page));
    page->attempts.push_back(attempt);
    last_id = Int(s.get(), 0);
  }
  if (rc != SQLITE_DONE) return Error(rdb, rc, what);
  page->next = 0;
  return absl::OkStatus();
}

absl::StatusOr<EntropyPage> Store::QueryEntropy(const TelemetryFilter& f) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  EntropyPage page;
  SGT_STORE_RETURN_IF_ERROR(impl_->QueryPage(f, impl_->entropy_cursor, impl_->entropy_page,
                                             "entropy", &page, [](sqlite3_stmt* s, EntropyPage* p) {
                                               v1::EntropyRow& r = p->rows.emplace_back();
                                               r.set_step(Int(s, 2));
                                               r.set_signal(
                                                   static_cast<v1::EntropySignal>(Int32(s, 3)));
                                               r.set_layer(Int32(s, 4));
                                               r.set_head(Int32(s, 5));
                                               r.set_loop(Int32(s, 6));
                                               r.set_value(static_cast<float>(Real(s, 7)));
                                               return absl::OkStatus();
                                             }));
  return page;
}

absl::StatusOr<ScalarPage> Store::QueryScalars(const TelemetryFilter& f) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  ScalarPage page;
  SGT_STORE_RETURN_IF_ERROR(impl_->QueryPage(f, impl_->scalar_cursor, impl_->scalar_page, "scalars",
                                             &page, [](sqlite3_stmt* s, ScalarPage* p) {
                                               v1::ScalarRow& r = p->rows.emplace_back();
                                               r.set_step(Int(s, 2));
                                               r.set_name(Text(s, 3));
                                               r.set_value(Real(s, 4));
                                               return absl::OkStatus();
                                             }));
  return page;
}

absl::StatusOr<DecisionPage> Store::QueryDecisions(const TelemetryFilter& f) const {
  std::lock_guard<std::mutex> lock(impl_->read_mu);
  DecisionPage page;
  const Impl& im = *impl_;
  SGT_STORE_RETURN_IF_ERROR(im.QueryPage(
      f, im.decision_cursor, im.decision_page, "growth_decisions", &page,
      [&im](sqlite3_stmt* s, DecisionPage* p) {
        v1::GrowthDecision d;
        const int64_t id = Int(s, 0);
        d.set_step(Int(s, 2));
        d.set_action(Text(s, 3));
        d.set_layer(Int32(s, 4));
        d.set_k(Int32(s, 5));
        d.set_whole_block(Int(s, 7) != 0);
        d.set_reason(Text(s, 11));
        d.set_signal(static_cast<v1::EntropySignal>(Int32(s, 12)));
        const json layer_entropy = json::parse(Text(s, 9), nullptr, false);
        const json head_entropy = json::parse(Text(s, 10), nullptr, false);
        bool ok = ParseInts(Text(s, 6), d.mutable_heads()) &&
                  ParseInts(Text(s, 8), d.mutable_candidates()) &&
                  ParseDoubles(layer_entropy, d.mutable_layer_entropy()) && head_entropy.is_array();
        for (size_t i = 0; ok && i < head_entropy.size(); ++i) {
          ok = ParseDoubles(head_entropy[i], d.add_head_entropy()->mutable_values());
        }
        if (!ok) return im.Corrupt(absl::StrCat("growth decision ", id, " (its JSON arrays)"));
        p->rows.push_back(std::move(d));
        return absl::OkStatus();
      }));
  return page;
}

}  // namespace sgt::coord

#undef SGT_STORE_RETURN_IF_ERROR
