// One place that sets up the CPU runtime for training: thread counts and the allocator.
//
// LibTorch's at::set_num_threads sizes its OpenMP pool, but Debian's LibTorch calls BLAS through
// libblas.so.3, which is whichever OpenBLAS build the system selected. OpenBLAS's pthread build
// keeps a second pool of its own: with two pools on two cores, OpenMP workers spin while BLAS
// threads run, and a training step takes about twice as long (docs/benchmarks.md). Its OpenMP
// build shares LibTorch's pool, which is why scripts/install-deps selects it. Either way both
// counts are set here, so a 1-thread run never oversubscribes the machine.
#ifndef SGT_TORCH_THREADS_H_
#define SGT_TORCH_THREADS_H_

#include <string>

namespace sgt {

struct ComputeRuntime {
  int threads = 1;       // LibTorch intra-op threads
  int blas_threads = -1; // OpenBLAS threads afterwards; -1 when OpenBLAS is not loaded
  // "openblas-openmp", "openblas-pthreads", "openblas-sequential" or "not-openblas".
  std::string blas;
};

// Sets LibTorch's intra-op threads and, when the process uses OpenBLAS, OpenBLAS's threads.
// Prints one warning to stderr when OpenBLAS's pthread build would run beside a multi-thread
// OpenMP pool (the slow combination above).
ComputeRuntime SetComputeThreads(int threads);

// Keeps freed memory in the process instead of returning it to the kernel after every step.
// glibc serves LibTorch's large activation buffers with mmap and unmaps them on free, so each
// training step faulted in fresh zeroed pages: 5-15 % of a step's time on the benchmark model,
// in libsgt and in the PyTorch reference alike (docs/benchmarks.md). Call once, early in main; a
// no-op on other C libraries.
void KeepFreedMemoryMapped();

}  // namespace sgt

#endif  // SGT_TORCH_THREADS_H_
