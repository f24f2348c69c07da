// A small leveled logger for the daemons: one line per event on stderr,
// "2026-11-23T10:00:00.123Z INFO coordinator: message". Thread-safe; the level is global.
#ifndef SGT_SERVICES_COMMON_LOG_H_
#define SGT_SERVICES_COMMON_LOG_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace sgt::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn", "error"; false for anything else.
bool ParseLevel(const std::string& name, Level* out);
void SetLevel(Level level);
bool Enabled(Level level);
void Write(Level level, const std::string& component, const std::string& message);

template <typename... Args>
void Debug(const std::string& component, const Args&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, component, absl::StrCat(args...));
}
template <typename... Args>
void Info(const std::string& component, const Args&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, component, absl::StrCat(args...));
}
template <typename... Args>
void Warn(const std::string& component, const Args&... args) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, component, absl::StrCat(args...));
}
template <typename... Args>
void Error(const std::string& component, const Args&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, component, absl::StrCat(args...));
}

}  // namespace sgt::log

#endif  // SGT_SERVICES_COMMON_LOG_H_
