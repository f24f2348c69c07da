// The idle rule of --exit-when-idle (idle.h).
#include "services/worker/idle.h"

namespace sgt::worker {

bool IdleExpired(int attempts, double idle_since, double now, double limit_s) {
  return limit_s > 0 && attempts == 0 && now - idle_since >= limit_s;
}

}  // namespace sgt::worker
