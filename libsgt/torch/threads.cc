// Thread-count control for LibTorch and OpenBLAS. See threads.h for why both.
#include "libsgt/torch/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace sgt {

int SetComputeThreads(int threads) {
  at::set_num_threads(threads);
  // Looked up at run time so that builds against MKL or the reference BLAS work unchanged.
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return -1;
  set(threads);
  return get();
}

}  // namespace sgt
