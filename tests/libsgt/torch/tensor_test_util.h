// What the libsgt torch tests share: the largest absolute entry of a tensor, and a guard that sets
// the compute thread count for one scope.
#ifndef SGT_TESTS_LIBSGT_TORCH_TENSOR_TEST_UTIL_H_
#define SGT_TESTS_LIBSGT_TORCH_TENSOR_TEST_UTIL_H_

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace sgt {

inline double MaxAbs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

// Sets the compute thread count and restores the previous one when it goes out of scope.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }
  ~ThreadCount() { at::set_num_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

}  // namespace sgt

#endif  // SGT_TESTS_LIBSGT_TORCH_TENSOR_TEST_UTIL_H_
