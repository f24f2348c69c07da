// Where `sgtctl export -o FILE` writes: FILE.partial, renamed to FILE only once everything is
// written, so that an interrupted or failed export never leaves a FILE that looks complete.
// Without a path, standard output. Tested in tests/cli/output_file_test.cc.
//
//   OutputFile output;
//   if (absl::Status opened = output.Open(path); !opened.ok()) return Fail(2, opened.message());
//   output.stream() << rows;
//   if (absl::Status done = output.Commit(); !done.ok()) return Fail(2, done.message());
#ifndef SGT_CLI_OUTPUT_FILE_H_
#define SGT_CLI_OUTPUT_FILE_H_

#include <fstream>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace sgt::cli {

class OutputFile {
 public:
  // `standard_output`: where to write without a path (std::cout in sgtctl).
  explicit OutputFile(std::ostream* standard_output);
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // Removes the partial file unless Commit renamed it.
  ~OutputFile();

  // Creates (or truncates) `path`.partial; "" writes to standard output. InvalidArgument
  // "cannot write PATH.partial: <OS error>; fix -o" when it cannot be created.
  absl::Status Open(const std::string& path);
  std::ostream& stream() { return path_.empty() ? *standard_output_ : file_; }
  // Closes the partial file and renames it to its path; InvalidArgument naming the file and the
  // OS error when it cannot be written or renamed (the partial file is then removed). Without a
  // path, InvalidArgument when standard output failed.
  absl::Status Commit();

 private:
  std::ostream* standard_output_;
  std::string path_;
  std::string partial_;
  std::ofstream file_;
  bool committed_ = false;
};

}  // namespace sgt::cli

#endif  // SGT_CLI_OUTPUT_FILE_H_
