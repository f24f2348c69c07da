// What a worker offers at Register: its devices, CPU slots or CUDA GPUs (`--devices`), and where
// other nodes meet a data-parallel run whose rank 0 it runs (`--rendezvous-host`,
// `--rendezvous-ports`).
#ifndef SGT_SERVICES_WORKER_DEVICES_H_
#define SGT_SERVICES_WORKER_DEVICES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sgt/v1/types.pb.h"

namespace sgt::worker {

// GPUs the CUDA runtime sees, or -1 with *why set when this worker was built without CUDA or the
// runtime fails (no driver, say).
int CudaDeviceCount(std::string* why);

// Parses a --devices value:
//   cpu:N       N CPU slots cpu:0 .. cpu:N-1 (a run gets one rank of one thread per slot)
//   cuda        every GPU the CUDA runtime sees
//   cuda:0,1    those GPUs (checked against what the runtime sees)
// `cuda_count` is CudaDeviceCount()'s answer and `cuda_why` its reason when it is -1.
// Errors name the value and the accepted forms.
absl::StatusOr<std::vector<sgt::v1::Device>> ParseDevices(const std::string& spec, int cuda_count,
                                                          const std::string& cuda_why = "");

// Where a data-parallel run whose rank 0 is on this worker meets: the host other nodes reach it
// at, and the ports [port_base, port_base + port_count) the coordinator may name for it.
struct RendezvousOffer {
  std::string host;
  int port_base = 29500;
  int port_count = 100;
};

// Parses a --rendezvous-ports value "BASE-END" (both included, 1 <= BASE <= END <= 65535) into
// `offer`'s ports. Errors (kInvalidArgument) name the value and the form.
absl::Status ParseRendezvousPorts(const std::string& spec, RendezvousOffer* offer);

// OK when `host` can be a --rendezvous-host: a host name or IP address, non-empty, at most 253
// characters, without spaces or control characters. Errors (kInvalidArgument) name the value.
absl::Status CheckRendezvousHost(const std::string& host);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_DEVICES_H_
