// libsgt_spm.so: SentencePiece behind a C interface, loaded by Tokenizer (tokenizer.cc) with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Debian's libsentencepiece carries its own copy of protobuf-lite and exports its symbols. In a
// process that also has LibTorch's libprotobuf, linking libsentencepiece normally mixes the two
// copies (each binds some of the other's symbols) and the process crashes while loading. Loaded
// locally and deep-bound, SentencePiece and this shim resolve protobuf to SentencePiece's own
// copy, and LibTorch keeps its own. Only plain C types cross the boundary; memory is the caller's.
#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

void CopyError(const std::string& message, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  const size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

const sentencepiece::SentencePieceProcessor* Sp(const void* handle) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
}

}  // namespace

#define SGT_SPM_EXPORT extern "C" __attribute__((visibility("default")))

// A loaded model, or null with the reason in `error`.
SGT_SPM_EXPORT void* sgt_spm_load(const char* path, char* error, size_t error_size) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    CopyError(status.ToString(), error, error_size);
    delete sp;
    return nullptr;
  }
  return sp;
}

SGT_SPM_EXPORT void sgt_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

SGT_SPM_EXPORT int64_t sgt_spm_eos_id(const void* handle) { return Sp(handle)->eos_id(); }

SGT_SPM_EXPORT int64_t sgt_spm_piece_size(const void* handle) {
  return Sp(handle)->GetPieceSize();
}

// Encodes text[0, size) into ids[0, capacity); returns the id count (more than capacity: call
// again with room for that many), or -1 with the reason in `error`.
SGT_SPM_EXPORT int64_t sgt_spm_encode(const void* handle, const char* text, size_t size,
                                      int32_t* ids, size_t capacity, char* error,
                                      size_t error_size) {
  std::vector<int> out;
  const auto status = Sp(handle)->Encode(std::string(text, size), &out);
  if (!status.ok()) {
    CopyError(status.ToString(), error, error_size);
    return -1;
  }
  for (size_t i = 0; i < out.size() && i < capacity; ++i) ids[i] = out[i];
  return static_cast<int64_t>(out.size());
}

// Decodes ids[0, count) into text[0, capacity); returns the text's size in bytes (more than
// capacity: call again with that much room), or -1 with the reason in `error`.
SGT_SPM_EXPORT int64_t sgt_spm_decode(const void* handle, const int32_t* ids, size_t count,
                                      char* text, size_t capacity, char* error,
                                      size_t error_size) {
  std::vector<int> in(ids, ids + count);
  std::string out;
  const auto status = Sp(handle)->Decode(in, &out);
  if (!status.ok()) {
    CopyError(status.ToString(), error, error_size);
    return -1;
  }
  if (out.size() <= capacity) std::memcpy(text, out.data(), out.size());
  return static_cast<int64_t>(out.size());
}
