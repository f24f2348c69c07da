// The worker's on-disk telemetry spool (spool.h): append, acknowledge, replay and the bound.
#include "services/worker/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A segment file is a run of records: a header of three little-endian u32 (kMagic, the payload's
// length, the payload's CRC-32) and then the payload, a serialized TelemetryBatch.
constexpr uint32_t kMagic = 0x4c505353;  // "SSPL"
constexpr size_t kHeaderBytes = 12;

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

// CRC-32 (IEEE 802.3; the same values as zlib's crc32).
uint32_t Crc32(absl::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = kCrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

absl::Status OsError(const std::string& path, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("spool segment ", path, ": ", what, ": ", std::strerror(errno)));
}

// Closes its descriptor when it goes out of scope.
struct Fd {
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
};

// Reads up to n bytes at off; fewer only at the end of the file. -1 (errno set) on error.
int64_t ReadAt(int fd, char* buf, size_t n, int64_t off) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = pread(fd, buf + done, n - done, off + static_cast<int64_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<int64_t>(done);
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t w = write(fd, data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

// "seg-00000042.spool" -> 42.
bool SegmentNumber(absl::string_view name, uint64_t* n) {
  if (name.size() <= 10 || !absl::StartsWith(name, "seg-") || !absl::EndsWith(name, ".spool")) {
    return false;
  }
  const absl::string_view digits = name.substr(4, name.size() - 10);
  return digits.find_first_not_of("0123456789") == absl::string_view::npos &&
         absl::SimpleAtoi(digits, n);
}

}  // namespace

struct Spool::Impl {
  using Key = std::tuple<std::string, int32_t, int64_t>;  // run, attempt, sequence
  using Pos = std::pair<uint64_t, int64_t>;               // segment, offset of the header
  struct Record {
    Key key;
    uint32_t length;  // of the payload
    Clock::time_point appended;
    uint64_t id;  // tells a record from a later one at the same place (after a truncation)
  };
  struct Segment {
    int64_t size = 0;
    int64_t live = 0;
  };

  Options options;
  mutable std::mutex mu;
  std::condition_variable acked;
  std::map<Pos, Record> records;  // the unacknowledged, in append order
  std::map<Key, std::vector<Pos>> by_key;
  std::map<std::pair<std::string, int32_t>, int64_t> by_attempt;
  std::map<uint64_t, Segment> segments;  // the files on disk
  int64_t bytes = 0;                     // their total size
  uint64_t current = 0;                  // the segment being written, open as fd
  int fd = -1;
  uint64_t next_id = 0;

  ~Impl() {
    if (fd >= 0) close(fd);
  }

  std::string Path(uint64_t segment) const {
    return absl::StrCat(options.dir, "/", absl::StrFormat("seg-%08d.spool", segment));
  }

  void Index(const Pos& pos, Key key, uint32_t length, Clock::time_point t) {
    ++segments[pos.first].live;
    ++by_attempt[{std::get<0>(key), std::get<1>(key)}];
    by_key[key].push_back(pos);
    records[pos] = Record{std::move(key), length, t, next_id++};
  }

  bool Live(const Pos& pos, uint64_t id) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = records.find(pos);
    return it != records.end() && it->second.id == id;
  }

  // Starts segment `n` as the one being written.
  absl::Status StartSegment(uint64_t n) {
    const std::string path = Path(n);
    const int f = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (f < 0) return OsError(path, "cannot create");
    if (fd >= 0) close(fd);
    fd = f;
    current = n;
    segments[n];
    return absl::OkStatus();
  }

  // Indexes the valid records of a segment left by an earlier process and cuts off what follows
  // them (a record torn by a crash mid-write); removes the file when nothing valid is left.
  absl::Status Recover(uint64_t segment, Clock::time_point now) {
    const std::string path = Path(segment);
    Fd f(open(path.c_str(), O_RDWR | O_CLOEXEC));
    struct stat st;
    if (f.fd < 0) return OsError(path, "cannot open");
    if (fstat(f.fd, &st) != 0) return OsError(path, "cannot stat");
    const int64_t size = st.st_size;
    int64_t off = 0;
    char header[kHeaderBytes];
    std::string payload;
    while (off + static_cast<int64_t>(kHeaderBytes) <= size) {
      int64_t r = ReadAt(f.fd, header, kHeaderBytes, off);
      if (r < 0) return OsError(path, "cannot read");
      const uint32_t length = GetU32(header + 4);
      if (GetU32(header) != kMagic || length > size - off - static_cast<int64_t>(kHeaderBytes)) {
        break;
      }
      payload.resize(length);
      r = ReadAt(f.fd, payload.data(), length, off + kHeaderBytes);
      if (r < 0) return OsError(path, "cannot read");
      sgt::v1::TelemetryBatch batch;
      if (r < length || Crc32(payload) != GetU32(header + 8) || !batch.ParseFromString(payload)) {
        break;
      }
      Index({segment, off}, {batch.run_id(), batch.attempt(), batch.sequence()}, length, now);
      off += static_cast<int64_t>(kHeaderBytes) + length;
    }
    if (off < size && ftruncate(f.fd, off) != 0) return OsError(path, "cannot truncate");
    if (segments.count(segment) == 0) {
      if (unlink(path.c_str()) != 0 && errno != ENOENT) return OsError(path, "cannot remove");
      return absl::OkStatus();
    }
    segments[segment].size = off;
    bytes += off;
    return absl::OkStatus();
  }
};

Spool::Spool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Spool::~Spool() = default;

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(const Options& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("spool directory: empty path");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("spool directory ", options.dir, ": cannot create: ", ec.message()));
  }
  std::set<uint64_t> found;
  for (fs::directory_iterator it(options.dir, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t n;
    if (SegmentNumber(it->path().filename().string(), &n)) found.insert(n);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("spool directory ", options.dir, ": cannot list: ", ec.message()));
  }
  const Clock::time_point now = Clock::now();
  for (uint64_t n : found) {
    if (absl::Status s = impl->Recover(n, now); !s.ok()) return s;
  }
  if (absl::Status s = impl->StartSegment(found.empty() ? 1 : *found.rbegin() + 1); !s.ok()) {
    return s;
  }
  return std::unique_ptr<Spool>(new Spool(std::move(impl)));
}

absl::Status Spool::Append(const sgt::v1::TelemetryBatch& batch,
                           const std::function<bool()>& give_up) {
  std::string record(kHeaderBytes, '\0');
  if (!batch.AppendToString(&record) || record.size() - kHeaderBytes > UINT32_MAX) {
    return absl::InvalidArgumentError("spool: batch cannot be serialized");
  }
  const absl::string_view payload = absl::string_view(record).substr(kHeaderBytes);
  PutU32(record.data(), kMagic);
  PutU32(record.data() + 4, static_cast<uint32_t>(payload.size()));
  PutU32(record.data() + 8, Crc32(payload));
  const int64_t size = static_cast<int64_t>(record.size());

  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  while (!m.records.empty() && m.bytes + size > m.options.max_bytes) {
    if (give_up) {
      lock.unlock();  // give_up may well ask the spool something
      const bool stop = give_up();
      lock.lock();
      if (stop) return absl::CancelledError("spool: gave up waiting for room");
      if (m.records.empty() || m.bytes + size <= m.options.max_bytes) break;
    }
    m.acked.wait_for(lock, std::chrono::milliseconds(100));
  }
  if (m.segments[m.current].size >= m.options.segment_bytes) {
    const uint64_t old = m.current;
    if (absl::Status s = m.StartSegment(old + 1); !s.ok()) return s;
    if (m.segments[old].live == 0) {  // its truncation in Ack failed
      m.bytes -= m.segments[old].size;
      m.segments.erase(old);
      unlink(m.Path(old).c_str());
    }
  }
  Impl::Segment& seg = m.segments[m.current];
  if (!WriteAll(m.fd, record)) {
    const absl::Status error = OsError(m.Path(m.current), "cannot write");
    if (ftruncate(m.fd, seg.size) != 0) {
      // The file keeps a torn record; a later Open cuts it off.
    }
    return error;
  }
  m.Index({m.current, seg.size}, {batch.run_id(), batch.attempt(), batch.sequence()},
          static_cast<uint32_t>(payload.size()), Clock::now());
  seg.size += size;
  m.bytes += size;
  return absl::OkStatus();
}

void Spool::Ack(const std::string& run_id, int32_t attempt, int64_t sequence) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.by_key.find({run_id, attempt, sequence});
  if (it == m.by_key.end()) return;
  std::set<uint64_t> emptied;
  for (const Impl::Pos& pos : it->second) {
    m.records.erase(pos);
    if (--m.segments[pos.first].live == 0) emptied.insert(pos.first);
  }
  auto attempt_it = m.by_attempt.find({run_id, attempt});
  if ((attempt_it->second -= static_cast<int64_t>(it->second.size())) == 0) {
    m.by_attempt.erase(attempt_it);
  }
  m.by_key.erase(it);
  for (uint64_t n : emptied) {
    Impl::Segment& seg = m.segments[n];
    if (n != m.current) {
      // Should unlink fail, a later Open replays the file's batches: repeats are harmless.
      unlink(m.Path(n).c_str());
      m.bytes -= seg.size;
      m.segments.erase(n);
    } else if (ftruncate(m.fd, 0) == 0) {  // O_APPEND: the next write goes to offset 0
      m.bytes -= seg.size;
      seg.size = 0;
    }
  }
  m.acked.notify_all();
}

absl::Status Spool::ForEachUnacked(const std::function<void(const sgt::v1::TelemetryBatch&)>& fn) {
  Impl& m = *impl_;
  std::vector<std::tuple<Impl::Pos, uint32_t, uint64_t>> todo;  // where, length, id
  {
    std::lock_guard<std::mutex> lock(m.mu);
    todo.reserve(m.records.size());
    for (const auto& [pos, r] : m.records) todo.emplace_back(pos, r.length, r.id);
  }
  Fd file(-1);
  uint64_t file_segment = 0;
  std::string buf;
  for (const auto& [pos, length, id] : todo) {
    if (!m.Live(pos, id)) continue;  // acknowledged meanwhile (perhaps by fn)
    const std::string path = m.Path(pos.first);
    if (file.fd < 0 || file_segment != pos.first) {
      if (file.fd >= 0) close(file.fd);
      file.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      file_segment = pos.first;
      if (file.fd < 0) {
        const absl::Status error = OsError(path, "cannot open");
        if (m.Live(pos, id)) return error;
        continue;
      }
    }
    buf.resize(kHeaderBytes + length);
    const int64_t r = ReadAt(file.fd, buf.data(), buf.size(), pos.second);
    const absl::Status error = r < 0 ? OsError(path, "cannot read") : absl::OkStatus();
    const absl::string_view payload = absl::string_view(buf).substr(kHeaderBytes);
    sgt::v1::TelemetryBatch batch;
    const bool ok = r == static_cast<int64_t>(buf.size()) && GetU32(buf.data()) == kMagic &&
                    GetU32(buf.data() + 4) == length && GetU32(buf.data() + 8) == Crc32(payload) &&
                    batch.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
    if (!ok) {
      if (!m.Live(pos, id)) continue;  // acknowledged and overwritten meanwhile
      if (!error.ok()) return error;
      return absl::DataLossError(
          absl::StrCat("spool segment ", path, ": record at offset ", pos.second, " is damaged"));
    }
    fn(batch);
  }
  return absl::OkStatus();
}

int64_t Spool::Pending(const std::string& run_id, int32_t attempt) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->by_attempt.find({run_id, attempt});
  return it == impl_->by_attempt.end() ? 0 : it->second;
}

int64_t Spool::Pending() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int64_t>(impl_->records.size());
}

int64_t Spool::Bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bytes;
}

int64_t Spool::MaxBytes() const { return impl_->options.max_bytes; }

double Spool::OldestAgeSeconds() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->records.empty()) return 0;
  // Append order is age order: the current segment restarts at offset 0 only when empty.
  const Clock::duration age = Clock::now() - impl_->records.begin()->second.appended;
  return std::chrono::duration<double>(age).count();
}

}  // namespace sgt::worker
