// How the daemons stop (signals.h): SIGTERM and SIGINT blocked everywhere and taken by one
// waiting thread.
#include "services/common/signals.h"

#include <signal.h>

#include <atomic>
#include <ctime>

namespace sgt::signals {

namespace {

std::atomic<int> g_caught{0};

void Record(int sig) { g_caught.store(sig); }

sigset_t StopSet() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  return s;
}

}  // namespace

void BlockStopSignals() {
  struct sigaction sa = {};
  sa.sa_handler = Record;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const sigset_t s = StopSet();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int WaitForStop() {
  const sigset_t s = StopSet();
  const timespec tick = {0, 200 * 1000 * 1000};
  while (true) {
    const int sig = sigtimedwait(&s, nullptr, &tick);
    if (sig > 0) return sig;
    if (const int caught = g_caught.load(); caught != 0) return caught;
  }
}

}  // namespace sgt::signals
