// The worker's link to its coordinator, as the supervisor of attempts sees it: a way to send
// WorkerMessages on the current session (Link), and the calls the link makes into the
// supervisor as sessions open and close and CoordinatorMessages arrive (LinkHandler). The
// gRPC implementation is grpc_link.h; tests use an in-memory one.
//
//   GrpcLink link(link_options, spool);        // a Link
//   Supervisor supervisor(options, spool, link);  // a LinkHandler, sends through `link`
//   link.Run(supervisor);                      // delivers to `supervisor` until stopped
#ifndef SGT_SERVICES_WORKER_LINK_H_
#define SGT_SERVICES_WORKER_LINK_H_

#include <string>
#include <vector>

#include "sgt/v1/worker.pb.h"

namespace sgt::worker {

class Link {
 public:
  virtual ~Link() = default;
  // Sends `m` on the current session. False when no session is open or the write failed: the
  // message is then not sent (telemetry goes again with the next replay of the spool, a final
  // status on the next session or after the resend delay). Safe from any thread.
  virtual bool Send(const sgt::v1::WorkerMessage& m) = 0;
};

class LinkHandler {
 public:
  virtual ~LinkHandler() = default;
  // The attempts this worker holds (until their final status is acknowledged), for a session's
  // Hello (all) and heartbeats (unreported_only: not those whose final status went on the
  // current session: the coordinator would take a listed attempt for one still running).
  virtual std::vector<sgt::v1::RunRef> Held(bool unreported_only) = 0;
  // A session is open, under the worker id the coordinator gave; it has seen none of the final
  // statuses. Called before the link sends anything on it but its Hello.
  virtual void SessionOpened(const std::string& worker_id) = 0;
  // A message from the coordinator, on the thread that runs the link: the children the handler
  // starts from it die with that thread, which must therefore live as long as the worker.
  virtual void Handle(const sgt::v1::CoordinatorMessage& m) = 0;
  // The spool's unacknowledged batches were all sent again on the current session: final
  // statuses that waited for them may go.
  virtual void Replayed() = 0;
  // The session ended (closed, broken, or given up as silent); Send fails until the next opens.
  virtual void SessionClosed() = 0;
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_LINK_H_
