// Tests for the worker's telemetry spool, on real files in a scratch directory: append and ack,
// segment rotation and deletion, recovery on reopen (torn and corrupt records included), the
// bound on live bytes, callbacks that re-enter the spool, and the errors Open and replay report.
#include "services/worker/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
using sgt::v1::TelemetryBatch;

constexpr int64_t kHeaderBytes = 12;  // magic, length, CRC-32

TelemetryBatch Batch(const std::string& run, int32_t attempt, int64_t sequence) {
  TelemetryBatch b;
  b.set_run_id(run);
  b.set_attempt(attempt);
  b.set_sequence(sequence);
  for (int i = 0; i < 4; ++i) {
    sgt::v1::ScalarRow* row = b.add_scalars();
    row->set_step(100 + i);
    row->set_name("train/loss");
    row->set_value(0.5 * i + static_cast<double>(sequence));
  }
  return b;
}

// The on-disk size of Batch("r1", 1, n) for n < 128 (every such batch has the same size).
int64_t RecordBytes() {
  return kHeaderBytes + static_cast<int64_t>(Batch("r1", 1, 1).ByteSizeLong());
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/spool_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl + "/spool";  // not there yet: Open creates it
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(fs::path(dir_).parent_path(), ec);
  }

  std::unique_ptr<Spool> OpenSpool(int64_t max_bytes = int64_t{256} << 20,
                                   int64_t segment_bytes = int64_t{4} << 20) {
    absl::StatusOr<std::unique_ptr<Spool>> s =
        Spool::Open({.dir = dir_, .max_bytes = max_bytes, .segment_bytes = segment_bytes});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // The segment files, sorted by name.
  std::vector<std::string> Segments() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
  int64_t DiskBytes() const {
    int64_t total = 0;
    for (const auto& e : fs::directory_iterator(dir_)) total += fs::file_size(e.path());
    return total;
  }
  std::string Seg(int n) const {
    char name[32];
    snprintf(name, sizeof name, "seg-%08d.spool", n);
    return dir_ + "/" + name;
  }

  static std::vector<std::string> Unacked(Spool& spool) {
    std::vector<std::string> out;
    absl::Status s = spool.ForEachUnacked(
        [&](const TelemetryBatch& b) { out.push_back(b.SerializeAsString()); });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string dir_;
};

TEST_F(SpoolTest, AppendAckRoundTrip) {
  std::unique_ptr<Spool> spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->Pending(), 0);
  EXPECT_EQ(spool->OldestAgeSeconds(), 0);
  const std::vector<TelemetryBatch> batches = {Batch("r1", 1, 1), Batch("r1", 1, 2),
                                               Batch("r2", 3, 1)};
  for (const TelemetryBatch& b : batches) ASSERT_TRUE(spool->Append(b).ok());
  EXPECT_EQ(spool->Pending(), 3);
  EXPECT_EQ(spool->Pending("r1", 1), 2);
  EXPECT_EQ(spool->Pending("r2", 3), 1);
  EXPECT_EQ(spool->Pending("r1", 2), 0);
  EXPECT_EQ(spool->Bytes(), DiskBytes());
  EXPECT_GT(spool->Bytes(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_GE(spool->OldestAgeSeconds(), 0.03);
  EXPECT_EQ(Unacked(*spool), (std::vector<std::string>{batches[0].SerializeAsString(),
                                                       batches[1].SerializeAsString(),
                                                       batches[2].SerializeAsString()}));

  spool->Ack("r1", 1, 1);
  spool->Ack("r1", 1, 99);  // unknown: ignored
  spool->Ack("r9", 1, 1);
  EXPECT_EQ(spool->Pending(), 2);
  EXPECT_EQ(spool->Pending("r1", 1), 1);
  EXPECT_EQ(Unacked(*spool), (std::vector<std::string>{batches[1].SerializeAsString(),
                                                       batches[2].SerializeAsString()}));
  spool->Ack("r1", 1, 2);
  spool->Ack("r2", 3, 1);
  EXPECT_EQ(spool->Pending(), 0);
  EXPECT_EQ(spool->Bytes(), 0);
  EXPECT_EQ(DiskBytes(), 0);
  EXPECT_EQ(spool->OldestAgeSeconds(), 0);
  EXPECT_TRUE(Unacked(*spool).empty());
}

TEST_F(SpoolTest, SameKeyTwiceIsTwoRecordsAndOneAckRemovesBoth) {
  std::unique_ptr<Spool> spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 1)).ok());
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 2)).ok());
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 1)).ok());
  EXPECT_EQ(spool->Pending("r1", 1), 3);
  EXPECT_EQ(Unacked(*spool).size(), 3u);
  spool->Ack("r1", 1, 1);
  EXPECT_EQ(spool->Pending("r1", 1), 1);
  EXPECT_EQ(Unacked(*spool), std::vector<std::string>{Batch("r1", 1, 2).SerializeAsString()});
}

TEST_F(SpoolTest, SegmentsRotateAndEmptiedSegmentsGo) {
  const int64_t r = RecordBytes();
  std::unique_ptr<Spool> spool = OpenSpool(int64_t{1} << 20, 2 * r);  // two records a segment
  ASSERT_NE(spool, nullptr);
  for (int seq = 1; seq <= 5; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
  EXPECT_EQ(Segments(), (std::vector<std::string>{"seg-00000001.spool", "seg-00000002.spool",
                                                  "seg-00000003.spool"}));
  EXPECT_EQ(fs::file_size(Seg(1)), static_cast<uintmax_t>(2 * r));
  EXPECT_EQ(fs::file_size(Seg(3)), static_cast<uintmax_t>(r));
  EXPECT_EQ(spool->Bytes(), 5 * r);

  spool->Ack("r1", 1, 1);  // segment 1 still holds batch 2
  EXPECT_TRUE(fs::exists(Seg(1)));
  EXPECT_EQ(spool->Bytes(), 5 * r);
  spool->Ack("r1", 1, 2);
  EXPECT_FALSE(fs::exists(Seg(1)));
  EXPECT_EQ(spool->Bytes(), 3 * r);
  spool->Ack("r1", 1, 5);  // the current segment, emptied: truncated, not deleted
  EXPECT_TRUE(fs::exists(Seg(3)));
  EXPECT_EQ(fs::file_size(Seg(3)), 0u);
  EXPECT_EQ(spool->Bytes(), 2 * r);
  spool->Ack("r1", 1, 4);
  spool->Ack("r1", 1, 3);
  EXPECT_EQ(Segments(), std::vector<std::string>{"seg-00000003.spool"});
  EXPECT_EQ(spool->Bytes(), 0);

  // The truncated current segment is written again from its start.
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 6)).ok());
  EXPECT_EQ(fs::file_size(Seg(3)), static_cast<uintmax_t>(r));
  EXPECT_EQ(Unacked(*spool), std::vector<std::string>{Batch("r1", 1, 6).SerializeAsString()});
  EXPECT_EQ(spool->Bytes(), DiskBytes());
}

TEST_F(SpoolTest, ReopenReplaysTheUnackedInOrder) {
  const int64_t r = RecordBytes();
  const auto bytes = [](const std::string& run, int64_t seq) {
    return Batch(run, 1, seq).SerializeAsString();
  };
  {
    // Segments: 1 = {1, 2}, 2 = {3, 4}, 3 = {5}.
    std::unique_ptr<Spool> spool = OpenSpool(int64_t{1} << 20, 2 * r);
    ASSERT_NE(spool, nullptr);
    for (int seq = 1; seq <= 5; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
    for (int seq : {1, 2, 5}) spool->Ack("r1", 1, seq);
  }
  std::unique_ptr<Spool> spool = OpenSpool(int64_t{1} << 20, 2 * r);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->Pending(), 2);
  EXPECT_EQ(spool->Pending("r1", 1), 2);
  EXPECT_GE(spool->OldestAgeSeconds(), 0);
  EXPECT_EQ(spool->Bytes(), 2 * r);
  EXPECT_EQ(spool->Bytes(), DiskBytes());
  // The emptied segment 3 is gone; new appends go to a fresh segment after the old ones, and
  // are replayed after them.
  ASSERT_TRUE(spool->Append(Batch("r2", 1, 1)).ok());
  EXPECT_EQ(Segments(), (std::vector<std::string>{"seg-00000002.spool", "seg-00000004.spool"}));
  EXPECT_EQ(Unacked(*spool),
            (std::vector<std::string>{bytes("r1", 3), bytes("r1", 4), bytes("r2", 1)}));

  // An acknowledged batch whose segment still holds an unacknowledged one is on disk still: a
  // restart replays it (at least once; the coordinator keeps it once).
  spool->Ack("r1", 1, 3);
  EXPECT_EQ(spool->Pending(), 2);
  spool.reset();
  spool = OpenSpool(int64_t{1} << 20, 2 * r);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(Unacked(*spool),
            (std::vector<std::string>{bytes("r1", 3), bytes("r1", 4), bytes("r2", 1)}));

  // Acknowledging what was recovered removes the old files; an empty spool reopens empty.
  for (int seq : {3, 4}) spool->Ack("r1", 1, seq);
  spool->Ack("r2", 1, 1);
  EXPECT_EQ(Segments(), std::vector<std::string>{"seg-00000005.spool"});
  EXPECT_EQ(spool->Bytes(), 0);
  spool.reset();
  spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->Pending(), 0);
  EXPECT_EQ(Segments(), std::vector<std::string>{"seg-00000006.spool"});
}

TEST_F(SpoolTest, TornTailIsCutOffOnReopen) {
  const int64_t r = RecordBytes();
  {
    std::unique_ptr<Spool> spool = OpenSpool();
    ASSERT_NE(spool, nullptr);
    for (int seq = 1; seq <= 3; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
  }
  fs::resize_file(Seg(1), 3 * r - 5);  // the third record torn mid-payload
  {
    std::unique_ptr<Spool> spool = OpenSpool();
    ASSERT_NE(spool, nullptr);
    EXPECT_EQ(spool->Pending(), 2);
    EXPECT_EQ(fs::file_size(Seg(1)), static_cast<uintmax_t>(2 * r));
    EXPECT_EQ(spool->Bytes(), 2 * r);
    EXPECT_EQ(Unacked(*spool), (std::vector<std::string>{Batch("r1", 1, 1).SerializeAsString(),
                                                         Batch("r1", 1, 2).SerializeAsString()}));
  }
  { std::ofstream(Seg(1), std::ios::binary | std::ios::app) << "garbage after the records"; }
  fs::resize_file(Seg(2), 7);  // a segment holding a torn header only: removed
  {
    std::unique_ptr<Spool> spool = OpenSpool();
    ASSERT_NE(spool, nullptr);
    EXPECT_EQ(spool->Pending(), 2);
    EXPECT_EQ(fs::file_size(Seg(1)), static_cast<uintmax_t>(2 * r));
    EXPECT_FALSE(fs::exists(Seg(2)));
  }
}

TEST_F(SpoolTest, CorruptRecordCutsItsSegmentThereOnReopen) {
  const int64_t r = RecordBytes();
  {
    std::unique_ptr<Spool> spool = OpenSpool();
    ASSERT_NE(spool, nullptr);
    for (int seq = 1; seq <= 3; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
  }
  const int fd = open(Seg(1).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "X", 1, r + kHeaderBytes + 3), 1);  // the second record's payload
  close(fd);
  std::unique_ptr<Spool> spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(Unacked(*spool), std::vector<std::string>{Batch("r1", 1, 1).SerializeAsString()});
  EXPECT_EQ(fs::file_size(Seg(1)), static_cast<uintmax_t>(r));
}

TEST_F(SpoolTest, ReplayReportsADamagedRecordNamingItsFile) {
  std::unique_ptr<Spool> spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 1)).ok());
  const int fd = open(Seg(1).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "XY", 2, kHeaderBytes + 2), 2);
  close(fd);
  int calls = 0;
  absl::Status s = spool->ForEachUnacked([&](const TelemetryBatch&) { ++calls; });
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(Seg(1)), std::string::npos) << s;
  EXPECT_EQ(calls, 0);
}

TEST_F(SpoolTest, AppendWaitsForAnAckWhenFull) {
  const int64_t r = RecordBytes();
  // One record a segment, room for two.
  std::unique_ptr<Spool> spool = OpenSpool(2 * r, r);
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 1)).ok());
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 2)).ok());
  std::atomic<bool> done{false};
  absl::Status status = absl::UnknownError("not run");
  std::thread appender([&] {
    status = spool->Append(Batch("r1", 1, 3));
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(spool->Pending(), 2);
  spool->Ack("r1", 1, 1);  // deletes segment 1: room for one more
  appender.join();
  EXPECT_TRUE(done.load());
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(spool->Pending(), 2);
  EXPECT_EQ(spool->Bytes(), 2 * r);
  EXPECT_EQ(Unacked(*spool), (std::vector<std::string>{Batch("r1", 1, 2).SerializeAsString(),
                                                       Batch("r1", 1, 3).SerializeAsString()}));
}

TEST_F(SpoolTest, GivingUpWritesNothing) {
  const int64_t r = RecordBytes();
  std::unique_ptr<Spool> spool = OpenSpool(2 * r, r);
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 1)).ok());
  ASSERT_TRUE(spool->Append(Batch("r1", 1, 2)).ok());
  const int64_t disk = DiskBytes();
  int asked = 0;
  absl::Status s = spool->Append(Batch("r1", 1, 3), [&] {
    EXPECT_EQ(spool->Pending(), 2);  // give_up runs without the spool's lock
    return ++asked == 2;             // keeps asking while it waits
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(spool->Pending(), 2);
  EXPECT_EQ(spool->Bytes(), disk);
  EXPECT_EQ(DiskBytes(), disk);
  // With room, give_up is not consulted.
  spool->Ack("r1", 1, 1);
  EXPECT_TRUE(spool->Append(Batch("r2", 1, 1), [] { return true; }).ok());
}

TEST_F(SpoolTest, AnOversizedBatchIsTakenIntoAnEmptySpool) {
  std::unique_ptr<Spool> spool = OpenSpool(/*max_bytes=*/10);
  ASSERT_NE(spool, nullptr);
  ASSERT_GT(RecordBytes(), 10);
  EXPECT_TRUE(spool->Append(Batch("r1", 1, 1), [] { return true; }).ok());
  EXPECT_EQ(spool->Pending(), 1);
  // The next one must wait for it.
  EXPECT_EQ(spool->Append(Batch("r1", 1, 2), [] { return true; }).code(),
            absl::StatusCode::kCancelled);
  spool->Ack("r1", 1, 1);
  EXPECT_TRUE(spool->Append(Batch("r1", 1, 2), [] { return true; }).ok());
}

TEST_F(SpoolTest, ReplayCallbackMayAckAndAppend) {
  std::unique_ptr<Spool> spool = OpenSpool();
  ASSERT_NE(spool, nullptr);
  for (int seq = 1; seq <= 4; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
  std::vector<int64_t> seen;
  absl::Status s = spool->ForEachUnacked([&](const TelemetryBatch& b) {
    seen.push_back(b.sequence());
    spool->Ack(b.run_id(), b.attempt(), b.sequence());
    if (b.sequence() == 1) spool->Ack("r1", 1, 3);  // acked before its turn: skipped
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(spool->Pending(), 0);
  EXPECT_EQ(spool->Bytes(), 0);

  // Acking everything truncates the current segment; a batch appended meanwhile lands where the
  // snapshot's next records were, and must not be mistaken for them.
  for (int seq = 1; seq <= 3; ++seq) ASSERT_TRUE(spool->Append(Batch("r1", 1, seq)).ok());
  seen.clear();
  s = spool->ForEachUnacked([&](const TelemetryBatch& b) {
    seen.push_back(b.sequence());
    for (int seq = 1; seq <= 3; ++seq) spool->Ack("r1", 1, seq);
    EXPECT_EQ(spool->Bytes(), 0);
    EXPECT_TRUE(spool->Append(Batch("r2", 1, 7)).ok());  // where batch 1 was
    EXPECT_TRUE(spool->Append(Batch("r2", 1, 8)).ok());  // where batch 2 was
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(seen, std::vector<int64_t>{1});
  EXPECT_EQ(Unacked(*spool), (std::vector<std::string>{Batch("r2", 1, 7).SerializeAsString(),
                                                       Batch("r2", 1, 8).SerializeAsString()}));
}

TEST_F(SpoolTest, OpenReportsAnUncreatableDirectory) {
  ASSERT_TRUE(fs::create_directories(fs::path(dir_).parent_path()) ||
              fs::exists(fs::path(dir_).parent_path()));
  const std::string file = fs::path(dir_).parent_path() / "a-file";
  std::ofstream(file) << "not a directory";
  const std::string bad = file + "/spool";
  absl::StatusOr<std::unique_ptr<Spool>> s = Spool::Open({.dir = bad});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(bad), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("cannot create"), std::string::npos) << s.status();
  EXPECT_FALSE(Spool::Open({.dir = ""}).ok());
}

}  // namespace
}  // namespace sgt::worker
