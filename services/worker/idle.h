// When a worker started with --exit-when-idle has been idle long enough to exit (docs/worker.md,
// "Batch allocations"): pure, no clock of its own, so that the rule is tested without waiting.
//
// A worker is busy while it holds an attempt: from the StartRun that created it until the
// coordinator acknowledged its final status. It is idle from its start, or from the moment its
// last attempt was forgotten; a StartRun refused at once (no free devices, shutting down) does
// not make it busy.
//
//   if (sgt::worker::IdleExpired(load.attempts, load.idle_since, Mono(), limit_s)) Stop();
#ifndef SGT_SERVICES_WORKER_IDLE_H_
#define SGT_SERVICES_WORKER_IDLE_H_

namespace sgt::worker {

// Whether a worker holding `attempts` attempts, idle since `idle_since` (seconds, the clock of
// `now`), has been idle for `limit_s` seconds or more. Never true while it holds one; never true
// for a limit of 0 or less (the flag is off).
bool IdleExpired(int attempts, double idle_since, double now, double limit_s);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_IDLE_H_
