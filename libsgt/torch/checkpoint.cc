// Checkpoint writing and reading. See checkpoint.h for the file layout.
#include "libsgt/torch/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "libsgt/core/checkpoint_format.h"
#include "libsgt/core/sha256.h"

namespace sgt {
namespace {

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create checkpoint ", tmp, ": ", std::strerror(errno),
                     "; check that the output directory exists and is writable"));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("writing checkpoint ", tmp, ": ", std::strerror(err),
                                              "; check free disk space"));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("syncing checkpoint ", tmp, ": ", std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("renaming ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  // Make the rename itself durable.
  const std::string dir =
      path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointParts> ParseFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadCheckpointFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseCheckpointBytes(*bytes, path);
}

}  // namespace

absl::StatusOr<std::string> ReadCheckpointFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", path,
                                            " does not exist or cannot be read; pass the path of "
                                            "a .sgtckpt file written by sgt-train"));
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

absl::StatusOr<CheckpointWritten> WriteCheckpoint(const std::string& path,
                                                  const CheckpointHeader& header,
                                                  torch::nn::Module& model,
                                                  torch::optim::Optimizer& optimizer) {
  std::ostringstream payload_stream;
  try {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive model_archive, optim_archive;
    model.save(model_archive);
    optimizer.save(optim_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optim_archive);
    archive.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
    archive.save_to(payload_stream);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("serialising checkpoint ", path, ": ", e.what_without_backtrace()));
  }
  const std::string file = CheckpointFileBytes(header, payload_stream.str());
  if (absl::Status s = WriteFileAtomically(path, file); !s.ok()) return s;
  return CheckpointWritten{path, static_cast<int64_t>(file.size()),
                           Sha256Hex(file.data(), file.size())};
}

absl::StatusOr<CheckpointHeader> ReadCheckpointHeader(const std::string& path) {
  absl::StatusOr<CheckpointParts> p = ParseFile(path);
  if (!p.ok()) return p.status();
  return p->header;
}

absl::StatusOr<CheckpointHeader> LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                                                torch::optim::Optimizer& optimizer) {
  absl::StatusOr<std::string> bytes = ReadCheckpointFile(path);
  if (!bytes.ok()) return bytes.status();
  return LoadCheckpointBytes(*bytes, path, model, optimizer);
}

absl::StatusOr<CheckpointHeader> LoadCheckpointBytes(const std::string& bytes,
                                                     const std::string& path,
                                                     torch::nn::Module& model,
                                                     torch::optim::Optimizer& optimizer) {
  absl::StatusOr<CheckpointParts> p = ParseCheckpointBytes(bytes, path);
  if (!p.ok()) return p.status();
  try {
    std::istringstream payload_stream(p->payload);
    torch::serialize::InputArchive archive, model_archive, optim_archive;
    archive.load_from(payload_stream);
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    torch::Tensor rng;
    archive.read("rng_cpu", rng);
    model.load(model_archive);
    optimizer.load(optim_archive);
    at::Generator cpu_gen = at::detail::getDefaultCPUGenerator();  // a handle, shared state
    cpu_gen.set_state(rng);
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, " passed its checksum but its tensors do not fit this model (",
        e.what_without_backtrace(),
        "); resume with the configuration the checkpoint was written with"));
  }
  return p->header;
}

absl::Status LoadCheckpointParameters(const CheckpointParts& parts, const std::string& path,
                                      torch::nn::Module& model) {
  try {
    std::istringstream payload_stream(parts.payload);
    torch::serialize::InputArchive archive, model_archive;
    archive.load_from(payload_stream);
    archive.read("model", model_archive);
    model.load(model_archive);
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, " passed its checksum but its parameters do not fit the model its ",
        "header describes (", e.what_without_backtrace(),
        "); pass a checkpoint written by this version of sgt-train"));
  }
  return absl::OkStatus();
}

}  // namespace sgt
