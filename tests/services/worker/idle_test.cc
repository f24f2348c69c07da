// Tests of the --exit-when-idle rule (services/worker/idle.h): busy never expires, idle expires
// exactly at the limit counted from when the worker became idle, and a limit of 0 is off.
#include "services/worker/idle.h"

#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

TEST(IdleExpiredTest, ABusyWorkerNeverExpires) {
  EXPECT_FALSE(IdleExpired(1, 0, 1e6, 10));
  EXPECT_FALSE(IdleExpired(3, 0, 1e6, 0.5));
}

TEST(IdleExpiredTest, AnIdleWorkerExpiresAtTheLimitCountedFromWhenItBecameIdle) {
  EXPECT_FALSE(IdleExpired(0, 100, 100, 30));
  EXPECT_FALSE(IdleExpired(0, 100, 129.9, 30));
  EXPECT_TRUE(IdleExpired(0, 100, 130, 30));
  EXPECT_TRUE(IdleExpired(0, 100, 500, 30));
  // Its last attempt was forgotten at 200: the clock starts again there.
  EXPECT_FALSE(IdleExpired(0, 200, 229, 30));
  EXPECT_TRUE(IdleExpired(0, 200, 230, 30));
}

TEST(IdleExpiredTest, ALimitOfZeroIsOff) {
  EXPECT_FALSE(IdleExpired(0, 0, 1e9, 0));
  EXPECT_FALSE(IdleExpired(0, 0, 1e9, -1));
}

}  // namespace
}  // namespace sgt::worker
