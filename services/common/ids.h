// Identifiers on the wire and in sgtctl: a kind letter and the store's numeric id.
// Sweeps "s3", runs "r12", workers "w2". Short enough to type, unambiguous to parse.
#ifndef SGT_SERVICES_COMMON_IDS_H_
#define SGT_SERVICES_COMMON_IDS_H_

#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sgt {

inline std::string SweepId(int64_t n) { return absl::StrCat("s", n); }
inline std::string RunId(int64_t n) { return absl::StrCat("r", n); }
inline std::string WorkerId(int64_t n) { return absl::StrCat("w", n); }

// The number of an id of the given kind ('s', 'r', 'w'), or 0 when `id` is not one.
inline int64_t ParseId(const std::string& id, char kind) {
  int64_t n = 0;
  if (id.size() < 2 || id[0] != kind || !absl::SimpleAtoi(id.substr(1), &n) || n <= 0) return 0;
  return n;
}

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_IDS_H_
