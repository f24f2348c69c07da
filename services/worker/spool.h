// A bounded on-disk queue of the telemetry batches a worker has produced and the coordinator has
// not yet acknowledged (docs/worker.md, "Spool").
//
// Every batch goes through the spool before it is sent, so a coordinator that is away, restarts,
// or loses a stream costs nothing: on reconnect the worker sends ForEachUnacked() again, and the
// coordinator's (run, attempt, sequence) keys make the repeats harmless. The spool lives in
// segment files of a directory; a segment is deleted once every batch in it is acknowledged.
// It is bounded by `max_bytes` of live segments: Append waits for acknowledgements when full,
// which stops the worker reading its child's events, which in turn makes the child wait. Nothing
// is dropped. A worker that restarts reopens its spool and replays what it finds (a batch
// acknowledged just before the restart may be sent twice; the coordinator keeps it once).
//
//   absl::StatusOr<std::unique_ptr<Spool>> s = Spool::Open({.dir = "/var/lib/sgt/spool"});
//   (*s)->Append(batch);              // before sending it
//   (*s)->Ack("r3", 1, 17);           // on the coordinator's TelemetryAck
//   (*s)->ForEachUnacked([&](const sgt::v1::TelemetryBatch& b) { Send(b); });  // on reconnect
//
// Thread-safe. Not fsync'd: it survives the worker process dying (its children die with it),
// not the machine losing power.
#ifndef SGT_SERVICES_WORKER_SPOOL_H_
#define SGT_SERVICES_WORKER_SPOOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sgt/v1/types.pb.h"

namespace sgt::worker {

class Spool {
 public:
  struct Options {
    std::string dir;                           // created if missing
    int64_t max_bytes = int64_t{256} << 20;    // live segment bytes before Append waits
    int64_t segment_bytes = int64_t{4} << 20;  // a segment is closed past this size
  };

  // Opens (creating) the directory and indexes the batches earlier processes left in it.
  // Torn records at a segment's end (a crash mid-write) are cut off. Errors name the directory.
  static absl::StatusOr<std::unique_ptr<Spool>> Open(const Options& options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Writes the batch to the current segment. When the live bytes would pass max_bytes, waits
  // until acknowledgements make room (a batch larger than max_bytes is taken when the spool is
  // empty), checking `give_up` every 100 ms: when it returns true, returns kCancelled having
  // written nothing. A write error (disk full) is kInternal naming the file.
  absl::Status Append(const sgt::v1::TelemetryBatch& batch,
                      const std::function<bool()>& give_up = nullptr);

  // Marks a batch acknowledged (unknown keys are ignored). Deletes segments left with nothing
  // unacknowledged, except the one being written (which is truncated instead), and wakes
  // waiting Appends.
  void Ack(const std::string& run_id, int32_t attempt, int64_t sequence);

  // Calls fn with every unacknowledged batch, oldest first, reading them back from disk. fn runs
  // without the spool's lock held (it may call Ack or Append). A segment that cannot be read
  // back is an error naming it.
  absl::Status ForEachUnacked(const std::function<void(const sgt::v1::TelemetryBatch&)>& fn);

  // Unacknowledged batches of one attempt, and of all attempts.
  int64_t Pending(const std::string& run_id, int32_t attempt) const;
  int64_t Pending() const;
  // Bytes of the segment files on disk, and the bound past which Append waits.
  int64_t Bytes() const;
  int64_t MaxBytes() const;
  // Seconds since the oldest unacknowledged batch was appended (or recovered); 0 when none.
  double OldestAgeSeconds() const;

 private:
  struct Impl;
  explicit Spool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_SPOOL_H_
