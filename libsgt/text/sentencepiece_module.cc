// The SentencePiece calls the Tokenizer needs, as a plain C interface in a module that
// tokenizer.cc loads with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) instead of linking SentencePiece.
//
// Why: Debian's libsentencepiece.so.0 carries its own copy of the protobuf runtime (3.14) and
// exports its symbols, and LibTorch loads the system libprotobuf.so.32 (3.21). Linked into one
// process, one library's protobuf calls bind to the other's copy: the process crashes while
// loading, or protobuf aborts on the version mismatch. Loaded local and deep-bound, SentencePiece
// binds to its own copy and its symbols stay out of the process's global scope.
//
// Strings and id arrays cross the boundary in malloc'd buffers that the caller frees with free().
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char* Copy(const std::string& s, size_t* len) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  if (len != nullptr) *len = s.size();
  return out;
}

}  // namespace

extern "C" {

// A loaded processor, or null with *error set (free it).
__attribute__((visibility("default"))) void* sgt_sp_load(const char* path, char** error) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto s = sp->Load(path);
  if (!s.ok()) {
    *error = Copy(s.ToString(), nullptr);
    delete sp;
    return nullptr;
  }
  return sp;
}

__attribute__((visibility("default"))) void sgt_sp_free(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// 0 and *ids (*n of them; free it), or -1 with *error set.
__attribute__((visibility("default"))) int sgt_sp_encode(const void* sp, const char* text,
                                                         size_t len, int** ids, size_t* n,
                                                         char** error) {
  std::vector<int> out;
  const auto s = static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->Encode(
      std::string(text, len), &out);
  if (!s.ok()) {
    *error = Copy(s.ToString(), nullptr);
    return -1;
  }
  *n = out.size();
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (*ids == nullptr) return -1;
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return 0;
}

// 0 and *text (*len bytes; free it), or -1 with *error set.
__attribute__((visibility("default"))) int sgt_sp_decode(const void* sp, const int* ids, size_t n,
                                                         char** text, size_t* len, char** error) {
  std::string out;
  const auto s = static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->Decode(
      std::vector<int>(ids, ids + n), &out);
  if (!s.ok()) {
    *error = Copy(s.ToString(), nullptr);
    return -1;
  }
  *text = Copy(out, len);
  return *text == nullptr ? -1 : 0;
}

__attribute__((visibility("default"))) int sgt_sp_eos_id(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->eos_id();
}

__attribute__((visibility("default"))) int sgt_sp_piece_size(const void* sp) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(sp)->GetPieceSize();
}

}  // extern "C"
