// Fuzzes every request the coordinator takes (services/coordinator/service.h), in process: the
// client API's unary handlers through ClientApi (as the gRPC server calls them), Register through
// WorkerApi, and the worker session's messages and the streaming calls through the Coordinator
// methods their handlers call (the streams' gRPC types cannot be made without a server). Each
// input starts a coordinator on a fresh SQLite store, then plays a sequence of requests:
//
//   record = op (1 byte) | length (u16, little-endian) | a serialized request of that op
//
// A payload that is not a valid message of its type is skipped (gRPC refuses it before any
// handler). After every refused request (a non-OK status) the store's content must be what it
// was before the request: bad input never changes the store. A difference aborts, naming the op.
// SGT_FUZZ_TRACE=1 prints each request's op and whether it was refused.
#include <sqlite3.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "grpcpp/grpcpp.h"
#include "services/common/log.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/service.h"
#include "services/coordinator/store.h"
#include "fuzz/scratch.h"

namespace {

namespace v1 = sgt::v1;
using sgt::coord::AuthConfig;

// Every row of every table, as text: equal dumps mean an unchanged store.
std::string Dump(sqlite3* db) {
  std::string out;
  sqlite3_stmt* tables = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1,
                         &tables, nullptr) != SQLITE_OK) {
    std::abort();
  }
  while (sqlite3_step(tables) == SQLITE_ROW) {
    const std::string name = reinterpret_cast<const char*>(sqlite3_column_text(tables, 0));
    out += "\ntable " + name + "\n";
    sqlite3_stmt* rows = nullptr;
    if (sqlite3_prepare_v2(db, ("SELECT * FROM \"" + name + "\"").c_str(), -1, &rows, nullptr) !=
        SQLITE_OK) {
      std::abort();
    }
    while (sqlite3_step(rows) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(rows); ++i) {
        const unsigned char* text = sqlite3_column_text(rows, i);
        const int bytes = sqlite3_column_bytes(rows, i);
        out += std::to_string(sqlite3_column_type(rows, i)) + ":" +
               std::string(text ? reinterpret_cast<const char*>(text) : "", bytes) + "|";
      }
      out += "\n";
    }
    sqlite3_finalize(rows);
  }
  sqlite3_finalize(tables);
  return out;
}

// SQLite's count of commits by other connections: unchanged means no dump is needed.
int64_t DataVersion(sqlite3* db) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, nullptr) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    std::abort();
  }
  const int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

class NullSink : public sgt::coord::WorkerSink {
 public:
  bool Send(const v1::CoordinatorMessage&) override { return true; }
};

const std::string& DbPath() {
  static const std::string path = sgt::fuzz::ScratchPath("coord", "sgt.db");
  return path;
}

template <typename Req>
bool Decode(const std::string& payload, Req* req) {
  return req->ParseFromString(payload);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sgt::log::SetLevel(sgt::log::Level::kError);
  // Payloads with invalid UTF-8 in string fields are refused by protobuf, which logs each.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = DbPath();
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
  absl::StatusOr<std::unique_ptr<sgt::coord::Store>> store = sgt::coord::Store::Open(path);
  if (!store.ok()) std::abort();
  double now = 1e9;
  sgt::coord::CoordinatorOptions options;
  options.clock = [&now] { return now; };
  absl::StatusOr<std::unique_ptr<sgt::coord::Coordinator>> c =
      sgt::coord::Coordinator::Create(store->get(), options);
  if (!c.ok()) std::abort();
  sgt::coord::ClientApi client(c->get(), store->get(), AuthConfig{});
  sgt::coord::WorkerApi worker(c->get(), AuthConfig{});
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) std::abort();
  uint64_t session = 0;
  static const bool trace = std::getenv("SGT_FUZZ_TRACE") != nullptr;
  int64_t version = DataVersion(db);
  std::string dump = Dump(db);

  size_t at = 0;
  int index = 0;
  while (at + 3 <= size && index < 64) {
    const int op = data[at] % 18;
    const size_t length = data[at + 1] | data[at + 2] << 8;
    const std::string payload(reinterpret_cast<const char*>(data) + at + 3,
                              std::min(length, size - at - 3));
    at += 3 + payload.size();
    ++index;
    now += 1;  // a second per request: leases expire after lease_seconds of them

    if (const int64_t v = DataVersion(db); v != version) {  // accepted requests, ticks
      version = v;
      dump = Dump(db);
    }
    grpc::ServerContext ctx;
    bool refused = false;
    switch (op) {
#define SGT_CLIENT_CALL(n, Method, Req, Resp)         \
  case n: {                                           \
    v1::Req req;                                      \
    v1::Resp resp;                                    \
    if (!Decode(payload, &req)) continue;             \
    refused = !client.Method(&ctx, &req, &resp).ok(); \
    break;                                            \
  }
      SGT_CLIENT_CALL(0, SubmitSweep, SubmitSweepRequest, SubmitSweepResponse)
      SGT_CLIENT_CALL(1, GetSweep, GetSweepRequest, GetSweepResponse)
      SGT_CLIENT_CALL(2, ListRuns, ListRunsRequest, ListRunsResponse)
      SGT_CLIENT_CALL(3, GetRun, GetRunRequest, GetRunResponse)
      SGT_CLIENT_CALL(4, Pause, ActionRequest, ActionResponse)
      SGT_CLIENT_CALL(5, Resume, ActionRequest, ActionResponse)
      SGT_CLIENT_CALL(6, Snapshot, ActionRequest, ActionResponse)
      SGT_CLIENT_CALL(7, Cancel, ActionRequest, ActionResponse)
      SGT_CLIENT_CALL(8, Edit, EditRequest, EditResponse)
      SGT_CLIENT_CALL(9, Fork, ForkRequest, ForkResponse)
      SGT_CLIENT_CALL(10, ListSweeps, ListSweepsRequest, ListSweepsResponse)
      SGT_CLIENT_CALL(11, ListWorkers, ListWorkersRequest, ListWorkersResponse)
#undef SGT_CLIENT_CALL
      case 12: {
        v1::RegisterRequest req;
        v1::RegisterResponse resp;
        if (!Decode(payload, &req)) continue;
        refused = !worker.Register(&ctx, &req, &resp).ok();
        break;
      }
      case 13: {  // a session's first message (WorkerApi::Session)
        v1::Hello req;
        if (!Decode(payload, &req)) continue;
        absl::StatusOr<uint64_t> s = (*c)->OpenSession(req, std::make_shared<NullSink>());
        refused = !s.ok();
        if (s.ok()) session = *s;
        break;
      }
      case 14: {  // a session's later messages (WorkerApi::Session)
        v1::WorkerMessage req;
        if (!Decode(payload, &req) || session == 0) continue;
        refused = !(*c)->HandleWorkerMessage(session, req).ok();
        break;
      }
      case 15: {  // ClientApi::Watch's first answer
        v1::WatchRequest req;
        if (!Decode(payload, &req)) continue;
        uint64_t seen = 0;
        bool done = false;
        refused = !(*c)->WatchRuns(req.target(), &seen, 0, &done).ok();
        break;
      }
      case 16: {  // ClientApi::QueryTelemetry's target
        v1::TelemetryQuery req;
        if (!Decode(payload, &req)) continue;
        refused = !(*c)->ResolveRuns(req.target()).ok();
        break;
      }
      case 17:  // the daemon's timer: leases, scheduling (not a request: may change the store)
        if (session != 0 && payload.size() == 1 && payload[0] == 'c') {
          (*c)->CloseSession(session);
          session = 0;
        }
        (*c)->Tick();
        continue;
    }
    if (trace)
      std::fprintf(stderr, "request %d: op %d %s\n", index, op, refused ? "refused" : "ok");
    if (refused && DataVersion(db) != version && Dump(db) != dump) {
      std::fprintf(stderr,
                   "fuzz_coordinator: request %d (op %d) was refused but changed the store\n",
                   index, op);
      std::abort();
    }
  }
  sqlite3_close(db);
  c->reset();
  store->reset();
  return 0;
}
