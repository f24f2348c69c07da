// Exact training checkpoints (sgt-method.md §8).
//
// The file's layout and header are libsgt/core/checkpoint_format.h (torch-free); this adds the
// payload, a LibTorch archive of the parameters, the AdamW state and the RNG state. Files are
// written to a temporary name, synced, then renamed, so a reader never sees half a checkpoint
// under the final name.
#ifndef SGT_TORCH_CHECKPOINT_H_
#define SGT_TORCH_CHECKPOINT_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "libsgt/core/checkpoint_format.h"

namespace sgt {

struct CheckpointWritten {
  std::string path;
  int64_t bytes = 0;
  std::string sha256;  // of the whole file
};

// Writes `model`, `optimizer` and the default CPU generator's state with `header` to `path`.
absl::StatusOr<CheckpointWritten> WriteCheckpoint(const std::string& path,
                                                  const CheckpointHeader& header,
                                                  torch::nn::Module& model,
                                                  torch::optim::Optimizer& optimizer);

// Reads only the header, checking the magic, lengths and payload checksum.
absl::StatusOr<CheckpointHeader> ReadCheckpointHeader(const std::string& path);

// Reads the header and loads parameters, optimizer state and RNG state. Refuses a truncated or
// corrupted file (DataLoss) before touching `model` or `optimizer`.
absl::StatusOr<CheckpointHeader> LoadCheckpoint(const std::string& path, torch::nn::Module& model,
                                                torch::optim::Optimizer& optimizer);

// Loads only the parameters of a parsed checkpoint (`parts` from ParseCheckpointBytes) into
// `model`: for inference, which needs no optimizer state and must not reset the process's RNG.
// A payload whose tensors do not fit `model` is kDataLoss naming `path`.
absl::Status LoadCheckpointParameters(const CheckpointParts& parts, const std::string& path,
                                      torch::nn::Module& model);

// The same in two halves, for a data-parallel run where rank 0 reads the file and every rank
// loads the bytes it broadcast: the file's bytes (NotFound when it cannot be read), and the load
// of such bytes (`path` only names them in errors).
absl::StatusOr<std::string> ReadCheckpointFile(const std::string& path);
absl::StatusOr<CheckpointHeader> LoadCheckpointBytes(const std::string& bytes,
                                                     const std::string& path,
                                                     torch::nn::Module& model,
                                                     torch::optim::Optimizer& optimizer);

}  // namespace sgt

#endif  // SGT_TORCH_CHECKPOINT_H_
