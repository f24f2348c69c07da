// torchrun's environment, checked (dist_env.h).
#include "libsgt/core/dist_env.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sgt {
namespace {

absl::Status Bad(const char* name, const std::string& value, const std::string& fix) {
  return absl::InvalidArgumentError(
      absl::StrCat("environment variable ", name, "='", value, "': ", fix));
}

// An integer variable in [lo, hi]; `*out` untouched when unset.
absl::Status ReadInt(const std::function<const char*(const char*)>& getenv, const char* name,
                     int64_t lo, int64_t hi, int* out, bool* set) {
  const char* v = getenv(name);
  *set = v != nullptr && *v != '\0';
  if (!*set) return absl::OkStatus();
  int64_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < lo || n > hi) {
    return Bad(name, v, absl::StrCat("expected an integer in [", lo, ", ", hi, "]"));
  }
  *out = static_cast<int>(n);
  return absl::OkStatus();
}

absl::Status ReadSeconds(const std::function<const char*(const char*)>& getenv, const char* name,
                         double lo, double hi, double* out) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return absl::OkStatus();
  double d = 0;
  if (!absl::SimpleAtod(v, &d) || !(d >= lo && d <= hi)) {
    return Bad(name, v, absl::StrCat("expected a number in [", lo, ", ", hi, "]"));
  }
  *out = d;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DistEnv> DistEnvFromEnvironment(
    const std::function<const char*(const char*)>& getenv) {
  DistEnv e;
  bool has_world = false, has_rank = false, has_local = false, has_local_world = false,
       has_port = false;
  constexpr int kMaxRanks = 1 << 16;
  if (absl::Status s = ReadInt(getenv, "WORLD_SIZE", 1, kMaxRanks, &e.world_size, &has_world);
      !s.ok())
    return s;
  if (absl::Status s = ReadInt(getenv, "RANK", 0, kMaxRanks - 1, &e.rank, &has_rank); !s.ok())
    return s;
  if (absl::Status s = ReadInt(getenv, "LOCAL_RANK", 0, kMaxRanks - 1, &e.local_rank, &has_local);
      !s.ok())
    return s;
  if (absl::Status s = ReadInt(getenv, "LOCAL_WORLD_SIZE", 1, kMaxRanks, &e.local_world_size,
                               &has_local_world);
      !s.ok())
    return s;
  if (absl::Status s = ReadInt(getenv, "MASTER_PORT", 1, 65535, &e.master_port, &has_port);
      !s.ok())
    return s;
  if (absl::Status s = ReadSeconds(getenv, "SGT_DIST_TIMEOUT_S", 1, 86400, &e.timeout_s); !s.ok())
    return s;
  if (absl::Status s = ReadSeconds(getenv, "SGT_DIST_BUCKET_MB", 0.001, 4096, &e.bucket_mb);
      !s.ok())
    return s;
  const char* addr = getenv("MASTER_ADDR");
  if (addr != nullptr) e.master_addr = addr;

  if (!has_world || e.world_size == 1) {
    if (has_rank && e.rank != 0) {
      return Bad("RANK", std::to_string(e.rank),
                 "RANK is set but WORLD_SIZE is not (or is 1); set WORLD_SIZE to the number of "
                 "ranks, or unset RANK for a single process");
    }
    return DistEnv{0, 1, 0, 1, "", 0, e.timeout_s, e.bucket_mb};
  }
  if (!has_rank) {
    return Bad("RANK", "", absl::StrCat("WORLD_SIZE=", e.world_size,
                                        " needs RANK, this process's rank in [0, ",
                                        e.world_size - 1, "]"));
  }
  if (e.rank >= e.world_size) {
    return Bad("RANK", std::to_string(e.rank),
               absl::StrCat("must be below WORLD_SIZE=", e.world_size));
  }
  if (e.master_addr.empty()) {
    return Bad("MASTER_ADDR", "",
               "a distributed run needs the address of rank 0's node (e.g. 127.0.0.1 on one "
               "machine)");
  }
  if (!has_port) {
    return Bad("MASTER_PORT", "", "a distributed run needs the port rank 0 serves its store on");
  }
  if (!has_local) e.local_rank = e.rank;
  if (!has_local_world) e.local_world_size = e.world_size;
  if (e.local_rank >= e.local_world_size) {
    return Bad("LOCAL_RANK", std::to_string(e.local_rank),
               absl::StrCat("must be below LOCAL_WORLD_SIZE=", e.local_world_size));
  }
  if (e.local_world_size > e.world_size) {
    return Bad("LOCAL_WORLD_SIZE", std::to_string(e.local_world_size),
               absl::StrCat("cannot exceed WORLD_SIZE=", e.world_size));
  }
  return e;
}

absl::StatusOr<RankShare> ShareOfBatch(int64_t batch_size, int64_t micro_batch_size, int rank,
                                       int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside a world of ", world_size));
  }
  if (batch_size % world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.batch_size ", batch_size, " does not divide among ", world_size,
        " ranks; make the global batch a multiple of the rank count (devices x nodes), or run on ",
        "a rank count that divides it"));
  }
  RankShare s;
  s.count = batch_size / world_size;
  s.first = s.count * rank;
  s.micro = std::min(micro_batch_size, s.count);
  if (s.count % s.micro != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.micro_batch_size ", micro_batch_size, " does not divide each rank's ", s.count,
        " sequences (train.batch_size ", batch_size, " over ", world_size,
        " ranks); choose a micro-batch that divides ", s.count));
  }
  return s;
}

}  // namespace sgt
