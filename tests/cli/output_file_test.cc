// Tests for `sgtctl export`'s output (cli/output_file.h): FILE appears only when complete, a
// failed export leaves neither FILE.partial nor a changed FILE, and errors name the file.
#include "cli/output_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"

namespace sgt::cli {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sgt_output_file_test_" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(OutputFileTest, TheFileAppearsOnlyWhenCommitted) {
  const fs::path path = dir_ / "decisions.csv";
  std::ostringstream standard_output;
  {
    OutputFile output(&standard_output);
    ASSERT_TRUE(output.Open(path.string()).ok());
    output.stream() << "step,layer\n100,2\n";
    output.stream().flush();
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(Read(dir_ / "decisions.csv.partial"), "step,layer\n100,2\n");
    ASSERT_TRUE(output.Commit().ok());
  }
  EXPECT_EQ(Read(path), "step,layer\n100,2\n");
  EXPECT_FALSE(fs::exists(dir_ / "decisions.csv.partial"));
  EXPECT_EQ(standard_output.str(), "");  // nothing went to standard output
}

TEST_F(OutputFileTest, WithoutCommitThePartialFileGoesAndAnOldFileStays) {
  const fs::path path = dir_ / "entropy.csv";
  std::ofstream(path) << "an earlier export\n";
  std::ostringstream standard_output;
  {
    OutputFile output(&standard_output);
    ASSERT_TRUE(output.Open(path.string()).ok());
    output.stream() << "half of it";
    EXPECT_TRUE(fs::exists(dir_ / "entropy.csv.partial"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "entropy.csv.partial"));
  EXPECT_EQ(Read(path), "an earlier export\n");
}

TEST_F(OutputFileTest, AFileThatCannotBeCreatedIsNamedWithTheFix) {
  std::ostringstream standard_output;
  OutputFile output(&standard_output);
  const std::string path = (dir_ / "no-such-dir" / "x.csv").string();
  absl::Status opened = output.Open(path);
  EXPECT_EQ(opened.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(opened.message(),
            "cannot write " + path + ".partial: No such file or directory; fix -o");
}

TEST_F(OutputFileTest, ARenameThatFailsIsAnErrorAndLeavesNoPartialFile) {
  const fs::path path = dir_ / "taken";
  fs::create_directories(path / "not-empty");  // a non-empty directory cannot be replaced
  std::ostringstream standard_output;
  {
    OutputFile output(&standard_output);
    ASSERT_TRUE(output.Open(path.string()).ok());
    output.stream() << "rows";
    absl::Status committed = output.Commit();
    EXPECT_EQ(committed.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(committed.message(), "cannot rename " + path.string() +
                                                          ".partial to " + path.string() + ": "))
        << committed.message();
  }
  EXPECT_FALSE(fs::exists(dir_ / "taken.partial"));
  EXPECT_TRUE(fs::is_directory(path / "not-empty"));
}

TEST_F(OutputFileTest, WithoutAPathStandardOutput) {
  std::ostringstream standard_output;
  OutputFile output(&standard_output);
  ASSERT_TRUE(output.Open("").ok());
  EXPECT_EQ(&output.stream(), &standard_output);
  output.stream() << "step\n";
  EXPECT_TRUE(output.Commit().ok());
  EXPECT_EQ(standard_output.str(), "step\n");
  EXPECT_TRUE(fs::is_empty(dir_));  // no file anywhere

  standard_output.setstate(std::ios::badbit);  // stdout closed or full
  absl::Status committed = output.Commit();
  EXPECT_EQ(committed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(committed.message(), "cannot write to standard output");
}

}  // namespace
}  // namespace sgt::cli
