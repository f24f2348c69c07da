// Tests for the files of an attempt (services/worker/attempt_files.h) in a temporary directory:
// the resume checkpoint confined to the checkpoint root, the attempt's directories emptied and
// probed, config.json written, and the refusals' reasons (the paths are blocked by files, not
// by permissions, so that the tests also hold when run as root).
#include "services/worker/attempt_files.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class AttemptFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/sgt_attempt_files_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = fs::canonical(tmpl).string();
    root_ = dir_ + "/ck";
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  AttemptLaunch Launch(const std::string& work, const std::string& root) {
    AttemptOptions o;
    o.work_dir = work;
    o.checkpoint_root = root;
    o.train_program = "sgt-train";
    v1::StartRun s;
    s.set_run_id("r5");
    s.set_attempt(2);
    s.set_config_json("{}");
    return PlanLaunch(s, o, {"cpu:0"}, "");
  }

  std::string dir_, root_;
};

TEST_F(AttemptFilesTest, CheckWritable) {
  EXPECT_EQ(CheckWritable(dir_ + "/a/b/c"), "");
  EXPECT_TRUE(fs::is_directory(dir_ + "/a/b/c"));
  EXPECT_TRUE(fs::is_empty(dir_ + "/a/b/c"));  // the probe is gone
  std::ofstream(dir_ + "/file") << "x";
  EXPECT_THAT(CheckWritable(dir_ + "/file/sub"), StartsWith("cannot create " + dir_ + "/file/sub"));
}

TEST_F(AttemptFilesTest, ResumeInsideTheRoot) {
  fs::create_directories(root_ + "/r5/attempt-1");
  std::ofstream(root_ + "/r5/attempt-1/step-10.sgtckpt") << "ckpt";
  for (const std::string& path :
       {root_ + "/r5/attempt-1/step-10.sgtckpt", std::string("r5/attempt-1/step-10.sgtckpt"),
        root_ + "/r5/attempt-1/../attempt-1/step-10.sgtckpt"}) {
    absl::StatusOr<std::string> p = ResolveResume(root_, path, "w2");
    ASSERT_TRUE(p.ok()) << path << ": " << p.status();
    EXPECT_EQ(*p, root_ + "/r5/attempt-1/step-10.sgtckpt") << path;
  }
}

TEST_F(AttemptFilesTest, ResumeOutsideTheRootIsRefused) {
  std::ofstream(dir_ + "/outside.sgtckpt") << "ckpt";
  fs::create_symlink(dir_ + "/outside.sgtckpt", root_ + "/link.sgtckpt");
  for (const std::string& path :
       {dir_ + "/outside.sgtckpt", std::string("../outside.sgtckpt"), root_ + "/link.sgtckpt"}) {
    absl::StatusOr<std::string> p = ResolveResume(root_, path, "w2");
    ASSERT_FALSE(p.ok()) << path << " gave " << *p;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(p.status().message()), StartsWith("resume checkpoint refused on w2: "));
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr("; workers resume only from their --checkpoint-root"));
  }
}

TEST_F(AttemptFilesTest, ResumeThatIsNotAFileIsRefused) {
  fs::create_directories(root_ + "/r5/attempt-1");
  for (const std::string& path : {root_ + "/r5/attempt-1/missing.sgtckpt", root_ + "/r5"}) {
    absl::StatusOr<std::string> p = ResolveResume(root_, path, "w2");
    ASSERT_FALSE(p.ok()) << path << " gave " << *p;
    EXPECT_EQ(p.status().message(),
              "resume checkpoint " + path +
                  " is not a file on w2; is the checkpoint root shared between the workers?");
  }
}

TEST_F(AttemptFilesTest, PrepareEmptiesTheDirectoryAndWritesTheConfig) {
  const AttemptLaunch l = Launch(dir_ + "/work", root_);
  fs::create_directories(l.dir);
  std::ofstream(l.dir + "/stderr.log") << "an earlier process's attempt\n";
  ASSERT_TRUE(PrepareAttemptFiles(l, R"({"train":{}})", root_, "w2").ok());
  EXPECT_FALSE(fs::exists(l.dir + "/stderr.log"));
  EXPECT_EQ(ReadFile(l.config_path), "{\"train\":{}}\n");
  EXPECT_TRUE(fs::is_directory(l.checkpoint_dir));
  EXPECT_EQ(l.checkpoint_dir, root_ + "/r5/attempt-2");
}

TEST_F(AttemptFilesTest, UnwritableWorkDirectoryIsRefused) {
  std::ofstream(dir_ + "/work") << "a file where the work directory should be";
  const AttemptLaunch l = Launch(dir_ + "/work", root_);
  absl::Status s = PrepareAttemptFiles(l, "{}", root_, "w2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              StartsWith("work directory on w2 is not writable: cannot create " + l.dir));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("; fix its permissions or start the worker with another --work-dir"));
}

TEST_F(AttemptFilesTest, UnwritableCheckpointRootIsRefused) {
  std::ofstream(root_ + "/r5") << "a file where the run's checkpoints should go";
  const AttemptLaunch l = Launch(dir_ + "/work", root_);
  absl::Status s = PrepareAttemptFiles(l, "{}", root_, "w2");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()),
              StartsWith("checkpoint root " + root_ + " is not writable on w2: cannot create " +
                         l.checkpoint_dir));
  EXPECT_THAT(
      std::string(s.message()),
      HasSubstr("; fix its permissions or start the worker with another --checkpoint-root"));
}

}  // namespace
}  // namespace sgt::worker
