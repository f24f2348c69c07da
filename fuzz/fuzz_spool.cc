// Fuzzes the worker's spool recovery (services/worker/spool.h): the segment files a worker finds
// when it starts again. The input's first byte picks the form: odd, the rest is one segment file
// as is (so headers, lengths and CRCs are arbitrary); even, the rest is records of a u16 length
// and a payload that the harness frames with a valid header and CRC, so the payloads reach the
// TelemetryBatch parser and the index (repeated keys, empty run ids, torn last records). The
// spool is then opened, replayed, acknowledged batch by batch, appended to and replayed again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "services/worker/spool.h"
#include "fuzz/scratch.h"

namespace {

uint32_t Crc32(const std::string& data) {  // IEEE 802.3, as the spool writes it
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// A directory of its own, removed when the fuzzer exits.
const std::string& Dir() {
  static const std::string path = sgt::fuzz::ScratchPath("spool", "spool");
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Payloads with invalid UTF-8 in string fields are refused by protobuf, which logs each.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string file;
  if (data[0] & 1) {
    file = rest;
  } else {
    size_t at = 0;
    while (at + 2 <= rest.size()) {
      const size_t length = static_cast<uint8_t>(rest[at]) | static_cast<uint8_t>(rest[at + 1])
                                                                 << 8;
      at += 2;
      const std::string payload = rest.substr(at, length);  // the last one may be torn
      at += payload.size();
      PutU32(&file, 0x4c505353);  // "SSPL"
      PutU32(&file, static_cast<uint32_t>(length));
      PutU32(&file, Crc32(payload));
      file += payload;
    }
  }
  std::filesystem::remove_all(Dir());
  std::filesystem::create_directories(Dir());
  {
    std::ofstream out(Dir() + "/seg-00000001.spool", std::ios::binary);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }

  absl::StatusOr<std::unique_ptr<sgt::worker::Spool>> spool =
      sgt::worker::Spool::Open({.dir = Dir(), .max_bytes = 1 << 20, .segment_bytes = 4096});
  if (!spool.ok()) return 0;
  std::vector<sgt::v1::TelemetryBatch> seen;
  (void)(*spool)->ForEachUnacked([&](const sgt::v1::TelemetryBatch& b) { seen.push_back(b); });
  sgt::v1::TelemetryBatch next;
  next.set_run_id("r1");
  next.set_attempt(1);
  next.set_sequence(static_cast<int64_t>(seen.size()) + 1);
  (void)(*spool)->Append(next, [] { return true; });
  for (const sgt::v1::TelemetryBatch& b : seen)
    (*spool)->Ack(b.run_id(), b.attempt(), b.sequence());
  (void)(*spool)->ForEachUnacked([](const sgt::v1::TelemetryBatch&) {});
  (*spool)->Pending();
  (*spool)->OldestAgeSeconds();
  return 0;
}
