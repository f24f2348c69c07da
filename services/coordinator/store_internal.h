// Internal to the coordinator's SQLite store; included by store.cc, store_runs.cc and
// store_telemetry.cc only, never from outside the store.
//
// Store::Impl (the two connections, their prepared statements, and the write and read
// transactions), and the SQLite helpers those files share: statement ownership and reset,
// binding, reading columns, and the mapping of SQLite result codes to a status and a fix.
#ifndef SGT_SERVICES_COORDINATOR_STORE_INTERNAL_H_
#define SGT_SERVICES_COORDINATOR_STORE_INTERNAL_H_

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/coordinator/store.h"

#define SGT_STORE_RETURN_IF_ERROR(expr)                    \
  do {                                                     \
    absl::Status sgt_store_status_ = expr;                 \
    if (!sgt_store_status_.ok()) return sgt_store_status_; \
  } while (0)

namespace sgt::coord {

namespace store_internal {

// Entropy rows per INSERT statement on the hot path, and the parameters each adds.
inline constexpr int kEntropyChunk = 32;
inline constexpr int kEntropyColumns = 6;

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

inline int64_t Int(sqlite3_stmt* s, int col) { return sqlite3_column_int64(s, col); }
inline int32_t Int32(sqlite3_stmt* s, int col) { return sqlite3_column_int(s, col); }
inline double Real(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(s, col);
}
inline std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  if (p == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(s, col)));
}

// What to do about an SQLite failure, by its primary result code (store.cc).
const char* FixFor(int rc);
// The status code of an SQLite failure, by its primary result code (store.cc).
absl::StatusCode CodeFor(int rc);

}  // namespace store_internal

struct Store::Impl {
  using StmtPtr = store_internal::StmtPtr;
  using Scoped = store_internal::Scoped;

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
  StmtPtr upsert_slurm_job, delete_slurm_job;

  mutable std::mutex read_mu;
  Db rdb;
  StmtPtr rbegin, rcommit;
  StmtPtr load_sweeps, load_runs, run_events, load_workers, load_slurm_jobs, checkpoints;
  StmtPtr count_entropy, count_scalars, count_decisions, attempts;
  StmtPtr entropy_cursor, entropy_page, scalar_cursor, scalar_page, decision_cursor, decision_page;

  absl::Status Error(sqlite3* db, int rc, absl::string_view what) const {
    return absl::Status(store_internal::CodeFor(rc),
                        absl::StrCat("store ", path, ": ", what, ": ", sqlite3_errmsg(db), "; ",
                                     store_internal::FixFor(rc)));
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
    return store_internal::Int(s.get(), 0);
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

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_STORE_INTERNAL_H_
