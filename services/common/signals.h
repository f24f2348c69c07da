// How the daemons stop: SIGTERM or SIGINT, taken by one waiting thread.
//
//   int main() {
//     sgt::signals::BlockStopSignals();   // first, before any thread starts
//     ... start servers and threads ...
//     int sig = sgt::signals::WaitForStop();
//     ... shut down cleanly ...
//   }
#ifndef SGT_SERVICES_COMMON_SIGNALS_H_
#define SGT_SERVICES_COMMON_SIGNALS_H_

namespace sgt::signals {

// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts later), and
// installs a handler that records them: a signal the kernel hands to some thread anyway (as it
// may right after a SIGSTOP/SIGCONT pair) is then noted instead of killing the process.
void BlockStopSignals();

// Waits for SIGTERM or SIGINT and returns which.
int WaitForStop();

}  // namespace sgt::signals

#endif  // SGT_SERVICES_COMMON_SIGNALS_H_
