// Tests for services/common/checkpoint_path: IsWirePath, the lexical rule, on strings; and
// ConfinedPath, on a real scratch tree: paths inside the checkpoint root come back
// resolved; "..", absolute paths elsewhere, symbolic links that lead out, and sibling
// directories that merely share the root's prefix are refused with kPermissionDenied naming the
// path and the root; an empty path is kInvalidArgument.
#include "services/common/checkpoint_path.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ConfinedPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/sgt_checkpoint_path_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    // The scratch dir itself may sit behind a symbolic link (/tmp on some systems): resolve it
    // so the expected paths are what ConfinedPath returns.
    base_ = fs::canonical(tmpl).string();
    root_ = base_ + "/root";
    outside_ = base_ + "/outside";
    fs::create_directories(root_ + "/run1/attempt-1");
    fs::create_directories(outside_);
    std::ofstream(root_ + "/run1/attempt-1/step-10.sgtckpt") << "ck";
    std::ofstream(outside_ + "/secret") << "s";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  // Expects `path` refused as outside the root, the message naming the path and the root.
  void ExpectOutside(const std::string& root, const std::string& path) {
    absl::StatusOr<std::string> p = ConfinedPath(root, path);
    ASSERT_FALSE(p.ok()) << path << " accepted as " << *p;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kPermissionDenied) << p.status();
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(path));
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("outside the checkpoint root"));
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(root_));
  }

  std::string base_, root_, outside_;
};

TEST(IsWirePathTest, AbsoluteAndFreeOfDotDot) {
  EXPECT_TRUE(IsWirePath("/ck/r1/attempt-1/step-0000040.sgtckpt"));
  EXPECT_TRUE(IsWirePath("/"));
  EXPECT_TRUE(IsWirePath("/ck/..hidden/step.sgtckpt"));  // a name that starts with "..", not ".."
  EXPECT_TRUE(IsWirePath("/ck/a../x"));
  EXPECT_TRUE(IsWirePath("/ck/./x"));  // "." names the same directory: plain enough
}

TEST(IsWirePathTest, RelativeEmptyOrDotDotIsRefused) {
  EXPECT_FALSE(IsWirePath(""));
  EXPECT_FALSE(IsWirePath("step-0000040.sgtckpt"));
  EXPECT_FALSE(IsWirePath("ck/step.sgtckpt"));
  EXPECT_FALSE(IsWirePath("../ck/step.sgtckpt"));
  EXPECT_FALSE(IsWirePath("/ck/../etc/passwd"));
  EXPECT_FALSE(IsWirePath("/ck/.."));
  EXPECT_FALSE(IsWirePath("/.."));
  EXPECT_FALSE(IsWirePath("/../x"));
  EXPECT_FALSE(IsWirePath("/ck/../../x/"));
}

// What a worker sends (ConfinedPath's result) is what the coordinator accepts (IsWirePath).
TEST_F(ConfinedPathTest, ResultsPassTheWireRule) {
  fs::create_directory_symlink("run1/attempt-1", root_ + "/current");
  for (const std::string& path :
       {root_ + "/run1/attempt-1/../attempt-1/./step-10.sgtckpt", std::string("run1/x"),
        std::string("current/../current/step-11.sgtckpt"), root_}) {
    absl::StatusOr<std::string> p = ConfinedPath(root_, path);
    ASSERT_TRUE(p.ok()) << path << ": " << p.status();
    EXPECT_TRUE(IsWirePath(*p)) << path << " -> " << *p;
  }
}

TEST_F(ConfinedPathTest, AbsolutePathInsideIsAcceptedAsIs) {
  const std::string ck = root_ + "/run1/attempt-1/step-10.sgtckpt";
  absl::StatusOr<std::string> p = ConfinedPath(root_, ck);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, ck);
}

TEST_F(ConfinedPathTest, RelativePathIsTakenRelativeToTheRoot) {
  absl::StatusOr<std::string> p = ConfinedPath(root_, "run1/attempt-1/step-10.sgtckpt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/attempt-1/step-10.sgtckpt");
}

TEST_F(ConfinedPathTest, DotDotThatStaysInsideIsResolved) {
  absl::StatusOr<std::string> p =
      ConfinedPath(root_, root_ + "/run1/attempt-1/../attempt-1/./step-10.sgtckpt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/attempt-1/step-10.sgtckpt");
}

TEST_F(ConfinedPathTest, NonexistentFileInsideIsAccepted) {
  // Checkpoints not yet written: the missing part is resolved lexically.
  absl::StatusOr<std::string> p = ConfinedPath(root_, root_ + "/run2/attempt-3/step-99.sgtckpt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run2/attempt-3/step-99.sgtckpt");
  EXPECT_FALSE(fs::exists(*p));  // nothing created on the way
  EXPECT_FALSE(fs::exists(root_ + "/run2"));
}

TEST_F(ConfinedPathTest, TheRootItselfIsInside) {
  absl::StatusOr<std::string> p = ConfinedPath(root_, root_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_);
}

TEST_F(ConfinedPathTest, RootWithTrailingSlash) {
  absl::StatusOr<std::string> p =
      ConfinedPath(root_ + "/", root_ + "/run1/attempt-1/step-10.sgtckpt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/attempt-1/step-10.sgtckpt");
  absl::StatusOr<std::string> rel = ConfinedPath(root_ + "/", "run1/x");
  ASSERT_TRUE(rel.ok()) << rel.status();
  EXPECT_EQ(*rel, root_ + "/run1/x");
  ExpectOutside(root_ + "/", outside_ + "/secret");
  ExpectOutside(root_ + "/", "../outside/secret");
}

TEST_F(ConfinedPathTest, RootGivenThroughASymlinkIsResolvedToo) {
  fs::create_directory_symlink(root_, base_ + "/root-link");
  absl::StatusOr<std::string> p = ConfinedPath(base_ + "/root-link", root_ + "/run1/x");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/x");
  absl::StatusOr<std::string> via = ConfinedPath(root_, base_ + "/root-link/run1/x");
  ASSERT_TRUE(via.ok()) << via.status();
  EXPECT_EQ(*via, root_ + "/run1/x");
}

TEST_F(ConfinedPathTest, AbsolutePathElsewhereIsRefused) {
  ExpectOutside(root_, "/etc/passwd");
  ExpectOutside(root_, outside_ + "/secret");
  ExpectOutside(root_, "/");
  ExpectOutside(root_, base_);  // the root's parent
}

TEST_F(ConfinedPathTest, DotDotOutIsRefusedAbsoluteAndRelative) {
  ExpectOutside(root_, root_ + "/../x");
  ExpectOutside(root_, root_ + "/run1/../../outside/secret");
  ExpectOutside(root_, "../x");
  ExpectOutside(root_, "run1/../../x");
  ExpectOutside(root_, "../../../../../../../../etc/passwd");
  // The message shows where the path leads when that differs from what was given.
  absl::StatusOr<std::string> p = ConfinedPath(root_, "../x");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("(" + base_ + "/x)"));
}

TEST_F(ConfinedPathTest, SiblingSharingTheRootPrefixIsRefused) {
  fs::create_directories(base_ + "/root2");
  ExpectOutside(root_, base_ + "/root2");
  ExpectOutside(root_, base_ + "/root2/ck.sgtckpt");
  ExpectOutside(root_, base_ + "/rootx/ck.sgtckpt");  // nonexistent, same prefix
  ExpectOutside(root_, "../root2/ck.sgtckpt");
}

TEST_F(ConfinedPathTest, SymlinkInsideToADirectoryOutsideIsRefused) {
  fs::create_directory_symlink(outside_, root_ + "/escape");
  ExpectOutside(root_, root_ + "/escape/secret");
  ExpectOutside(root_, root_ + "/escape/not-yet-written.sgtckpt");
  ExpectOutside(root_, "escape/secret");
  ExpectOutside(root_, root_ + "/escape");
  absl::StatusOr<std::string> p = ConfinedPath(root_, "escape/secret");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(outside_ + "/secret"));
}

TEST_F(ConfinedPathTest, SymlinkInsideToAFileOutsideIsRefused) {
  fs::create_symlink(outside_ + "/secret", root_ + "/run1/attempt-1/step-20.sgtckpt");
  ExpectOutside(root_, root_ + "/run1/attempt-1/step-20.sgtckpt");
  ExpectOutside(root_, "run1/attempt-1/step-20.sgtckpt");
  fs::create_symlink("/etc/passwd", root_ + "/passwd");
  ExpectOutside(root_, root_ + "/passwd");
}

TEST_F(ConfinedPathTest, SymlinkInsidePointingInsideIsAccepted) {
  fs::create_symlink(root_ + "/run1/attempt-1/step-10.sgtckpt", root_ + "/latest");
  absl::StatusOr<std::string> p = ConfinedPath(root_, root_ + "/latest");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/attempt-1/step-10.sgtckpt");
  // A relative link to a directory inside.
  fs::create_directory_symlink("run1/attempt-1", root_ + "/current");
  absl::StatusOr<std::string> d = ConfinedPath(root_, "current/step-11.sgtckpt");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, root_ + "/run1/attempt-1/step-11.sgtckpt");
}

TEST_F(ConfinedPathTest, SymlinkOutsidePointingInsideIsAccepted) {
  // Where the path leads decides, not how it is spelled.
  fs::create_directory_symlink(root_ + "/run1", outside_ + "/into-root");
  absl::StatusOr<std::string> p = ConfinedPath(root_, outside_ + "/into-root/attempt-1");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, root_ + "/run1/attempt-1");
}

TEST_F(ConfinedPathTest, EmptyPathIsInvalidArgument) {
  absl::StatusOr<std::string> p = ConfinedPath(root_, "");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("empty path"));
}

}  // namespace
}  // namespace sgt
