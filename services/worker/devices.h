// The devices a worker offers: CPU slots or CUDA GPUs (`--devices`).
#ifndef SGT_SERVICES_WORKER_DEVICES_H_
#define SGT_SERVICES_WORKER_DEVICES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sgt/v1/types.pb.h"

namespace sgt::worker {

// GPUs the CUDA runtime sees, or -1 with *why set when this worker was built without CUDA or the
// runtime fails (no driver, say).
int CudaDeviceCount(std::string* why);

// Parses a --devices value:
//   cpu:N       N CPU slots cpu:0 .. cpu:N-1 (a run gets as many intra-op threads as slots)
//   cuda        every GPU the CUDA runtime sees
//   cuda:0,1    those GPUs (checked against what the runtime sees)
// `cuda_count` is CudaDeviceCount()'s answer and `cuda_why` its reason when it is -1.
// Errors name the value and the accepted forms.
absl::StatusOr<std::vector<sgt::v1::Device>> ParseDevices(const std::string& spec, int cuda_count,
                                                          const std::string& cuda_why = "");

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_DEVICES_H_
