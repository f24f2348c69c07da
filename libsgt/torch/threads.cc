// CPU runtime set-up for LibTorch and OpenBLAS. See threads.h for why.
#include "libsgt/torch/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <cstdio>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sgt {

ComputeRuntime SetComputeThreads(int threads) {
  at::set_num_threads(threads);
  ComputeRuntime rt;
  rt.threads = threads;
  rt.blas = "not-openblas";
  // Looked up at run time so that builds against MKL or the reference BLAS work unchanged.
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  auto parallel = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
  if (set == nullptr || get == nullptr) return rt;
  set(threads);
  rt.blas_threads = get();
  // openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP.
  const int kind = parallel != nullptr ? parallel() : -1;
  rt.blas = kind == 0   ? "openblas-sequential"
            : kind == 2 ? "openblas-openmp"
                        : "openblas-pthreads";
  static bool warned = false;
  if (kind == 1 && threads > 1 && !warned) {
    warned = true;
    std::fprintf(stderr,
                 "sgt: warning: OpenBLAS's pthread build runs its own thread pool beside "
                 "LibTorch's OpenMP pool, which makes %d-thread training about twice as slow; "
                 "select the OpenMP build (scripts/install-deps does: update-alternatives --set "
                 "libblas.so.3-x86_64-linux-gnu "
                 "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3)\n",
                 threads);
  }
  return rt;
}

void KeepFreedMemoryMapped() {
#if defined(__GLIBC__)
  // Serve every allocation from the heap rather than one mmap each (glibc maps anything over
  // 32 MiB at most, such as the logits and their gradient), never trim the heap back, and grow
  // it in large steps. Training holds its peak working set for the whole run anyway. glibc
  // still falls back to mmap when the heap cannot grow, so no allocation fails because of this.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);
  mallopt(M_TOP_PAD, 256 << 20);
#endif
}

}  // namespace sgt
