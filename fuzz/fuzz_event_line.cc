// Fuzzes the event-log line parser (libsgt/core/event_log.h, ParseEventLine) and the worker's
// translation of lines into telemetry rows (services/worker/events.h, EventTranslator), over the
// lines of one input as the worker reads them from a child's events.jsonl. A parsed event
// written again by the writer (EventLine) must parse again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "libsgt/core/event_log.h"
#include "services/worker/events.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sgt::worker::EventTranslator translator("/ckpt");
  sgt::v1::TelemetryBatch batch;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    absl::StatusOr<sgt::events::ParsedEvent> parsed = sgt::events::ParseEventLine(line);
    if (parsed.ok() && parsed->event) {
      const std::string again = sgt::events::EventLine(*parsed->event, parsed->time);
      if (!sgt::events::ParseEventLine(again).ok()) std::abort();
    }
    (void)translator.Add(line, &batch);
  }
  return 0;
}
