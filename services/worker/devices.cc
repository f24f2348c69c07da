// What a worker offers (devices.h): parsing --devices, and CUDA discovery when built with
// SGT_WORKER_CUDA; parsing --rendezvous-ports and checking --rendezvous-host.
#include "services/worker/devices.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#ifdef SGT_WORKER_CUDA
#include <cuda_runtime_api.h>
#endif

namespace sgt::worker {

namespace {

constexpr char kForms[] = "use cpu:N (N CPU slots), cuda (every GPU) or cuda:0,1 (those GPUs)";

sgt::v1::Device Make(const std::string& kind, int index) {
  sgt::v1::Device d;
  d.set_id(absl::StrCat(kind, ":", index));
  d.set_kind(kind);
  return d;
}

}  // namespace

int CudaDeviceCount(std::string* why) {
#ifdef SGT_WORKER_CUDA
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    *why = absl::StrCat("the CUDA runtime reports ", cudaGetErrorString(err));
    return -1;
  }
  return n;
#else
  *why = "this sgt-worker was built without CUDA (configure with -DSGT_WORKER_CUDA=ON)";
  return -1;
#endif
}

absl::StatusOr<std::vector<sgt::v1::Device>> ParseDevices(const std::string& spec, int cuda_count,
                                                          const std::string& cuda_why) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("--devices ", spec, ": ", what, "; ", kForms));
  };
  std::vector<sgt::v1::Device> out;
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "cpu") {
    int n = 0;
    if (!absl::SimpleAtoi(rest, &n) || n < 1 || n > 4096) {
      return bad("cpu needs a slot count from 1 to 4096");
    }
    for (int i = 0; i < n; ++i) out.push_back(Make("cpu", i));
    return out;
  }
  if (kind != "cuda") return bad("unknown device kind");
  if (cuda_count < 0) return bad(cuda_why.empty() ? "CUDA is not available" : cuda_why);
  if (colon == std::string::npos) {
    if (cuda_count == 0) return bad("the CUDA runtime sees no GPU");
    for (int i = 0; i < cuda_count; ++i) out.push_back(Make("cuda", i));
    return out;
  }
  std::set<int> seen;
  for (absl::string_view part : absl::StrSplit(rest, ',')) {
    int i = 0;
    if (!absl::SimpleAtoi(part, &i) || i < 0) {
      return bad(absl::StrCat("'", part, "' is not a GPU index"));
    }
    if (i >= cuda_count) {
      return bad(absl::StrCat("GPU ", i, " does not exist; the CUDA runtime sees ", cuda_count,
                              " (0 to ", cuda_count - 1, ")"));
    }
    if (!seen.insert(i).second) return bad(absl::StrCat("GPU ", i, " is listed twice"));
    out.push_back(Make("cuda", i));
  }
  return out;
}

absl::Status ParseRendezvousPorts(const std::string& spec, RendezvousOffer* offer) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rendezvous-ports ", spec, ": ", why,
                     "; use BASE-END, e.g. 29500-29599 (the ports other ",
                     "nodes may reach a data-parallel run's rank 0 on, both included)"));
  };
  const std::vector<std::string> parts = absl::StrSplit(spec, '-');
  int base = 0, end = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &base) ||
      !absl::SimpleAtoi(parts[1], &end)) {
    return bad("not two port numbers joined by '-'");
  }
  if (base < 1 || end > 65535) return bad("ports are 1 to 65535");
  if (end < base) return bad(absl::StrCat("END ", end, " is below BASE ", base));
  offer->port_base = base;
  offer->port_count = end - base + 1;
  return absl::OkStatus();
}

absl::Status CheckRendezvousHost(const std::string& host) {
  const bool odd = std::any_of(host.begin(), host.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
  });
  if (host.empty() || host.size() > 253 || odd) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rendezvous-host '", host,
                     "': not a host name or IP address; give the name or address other nodes "
                     "reach this worker at"));
  }
  return absl::OkStatus();
}

}  // namespace sgt::worker
