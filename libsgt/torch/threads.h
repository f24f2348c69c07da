// One place that sets how many CPU threads training uses.
//
// LibTorch's at::set_num_threads sizes its OpenMP pool, but Debian's LibTorch calls BLAS through
// libblas.so.3, which is OpenBLAS's pthread build when libopenblas0-pthread is installed: that
// library keeps its own pool, sized to every core, unless told otherwise. Both must agree or
// a 1-thread run oversubscribes the machine (and, with two runs side by side, spins in the kernel).
#ifndef SGT_TORCH_THREADS_H_
#define SGT_TORCH_THREADS_H_

namespace sgt {

// Sets LibTorch's intra-op threads and, when the process uses OpenBLAS, OpenBLAS's threads.
// Returns the number of threads OpenBLAS reports afterwards, or -1 if OpenBLAS is not loaded.
int SetComputeThreads(int threads);

}  // namespace sgt

#endif  // SGT_TORCH_THREADS_H_
