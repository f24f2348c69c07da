// What libsgt's CPU kernels (cpu_attention.cc, cpu_pass.cc) share: the BLAS entry point LibTorch's
// own CPU products call, and a loop that hands work items to LibTorch's compute threads.
//
// Include only from files that libsgt/CMakeLists.txt compiles with OpenMP and SGT_CPU_KERNELS
// (LibTorch 1.x): at::parallel_for runs in parallel only in a file compiled with OpenMP.
#ifndef SGT_TORCH_CPU_BLAS_H_
#define SGT_TORCH_CPU_BLAS_H_

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

// The Fortran BLAS entry point (libblas.so.3: OpenBLAS under scripts/install-deps). Inside a
// parallel region it runs on the calling thread only.
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c, const int* ldc);

namespace sgt {
namespace cpu {

// Column-major C (m x n) = alpha op(A) op(B) + beta C. A row-major matrix is its transpose in
// column-major terms, which is how the callers read.
inline void Gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  sgemm_(&ta, &tb, &mi, &ni, &ki, &alpha, a, &la, b, &lb, &beta, c, &lc);
}

// Runs f(i, scratch) for i in [0, n) on the compute threads, each taking the next i when it
// finishes one, so a thread slowed by the machine's other work takes fewer. `scratch` points to
// at least `scratch_floats` floats that belong to the calling thread (reused across its items).
// f(i) must not touch another i's data.
template <typename F>
void ForEachItem(int64_t n, int64_t scratch_floats, const F& f) {
  std::vector<std::vector<float>> scratch(at::get_num_threads());
  std::atomic<int64_t> next{0};
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), n);
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    std::vector<float>& mine = scratch[at::get_thread_num()];
    mine.resize(std::max<int64_t>(scratch_floats, 1));
    for (int64_t i = next++; i < n; i = next++) f(i, mine.data());
  });
}

}  // namespace cpu
}  // namespace sgt

#endif  // SGT_TORCH_CPU_BLAS_H_
