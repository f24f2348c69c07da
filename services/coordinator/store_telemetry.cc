// The coordinator's SQLite store (store.h): telemetry. AppendTelemetry stores a batch once
// (duplicates detected by (run, attempt, sequence)); the reads are a run's checkpoints, its row
// counts and the paged entropy, scalar and growth-decision queries, with superseded attempts
// hidden. Store::Impl and the shared SQLite helpers are in store_internal.h.
#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"
#include "services/coordinator/store.h"
#include "services/common/telemetry.h"
#include "services/coordinator/store_internal.h"

namespace sgt::coord {

using store_internal::BindAll;
using store_internal::Int;
using store_internal::Int32;
using store_internal::kEntropyChunk;
using store_internal::kEntropyColumns;
using store_internal::Real;
using store_internal::Scoped;
using store_internal::StmtPtr;
using store_internal::Text;

namespace {

using nlohmann::json;

constexpr int kDefaultPageRows = 4096;

// JSON columns of growth_decisions. Parsing never throws: parse errors and wrong types
// become a DataLoss status.
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

absl::StatusOr<bool> Store::AppendTelemetry(int64_t run_id, const v1::TelemetryBatch& batch,
                                            double now, const RunRow* run) {
  if (run != nullptr && run->id != run_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("store ", path_, ": telemetry of run ", run_id, " passed with run ", run->id,
                     "; pass the batch's own run (a bug in the caller)"));
  }
  const int32_t attempt = batch.attempt();
  const int64_t rows = telemetry::RowCount(batch);
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
