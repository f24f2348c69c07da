// What a change made under the coordinator's lock leaves to do once the lock is released:
// messages to connected workers, and observations for the metrics (which may read the store).
// Nothing slow or blocking happens under the lock; Coordinator::Flush sends and observes after.
#ifndef SGT_SERVICES_COORDINATOR_OUTBOX_H_
#define SGT_SERVICES_COORDINATOR_OUTBOX_H_

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "sgt/v1/worker.pb.h"

namespace sgt::coord {

// Where commands to one connected worker go. The gRPC session implements it; Send returns
// false once the stream is gone.
class WorkerSink {
 public:
  virtual ~WorkerSink() = default;
  virtual bool Send(const v1::CoordinatorMessage& message) = 0;
};

struct Outbox {
  std::vector<std::pair<std::shared_ptr<WorkerSink>, v1::CoordinatorMessage>> messages;
  // Metric observations, run in order after the messages went.
  std::vector<std::function<void()>> observe;

  void Add(const std::shared_ptr<WorkerSink>& sink, v1::CoordinatorMessage m) {
    if (sink) messages.emplace_back(sink, std::move(m));
  }
  void Observe(std::function<void()> f) { observe.push_back(std::move(f)); }
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_OUTBOX_H_
