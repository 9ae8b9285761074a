#include "store/disk/internal/checksum.h"

#include <xxhash.h>

#include "store/disk/internal/checksum_impl.h"

namespace ferry::store::internal {
namespace {

FERRY_DEFINE_CHECKSUM_PATH(LibraryPath)

const ChecksumPath& Chosen() {
  static const ChecksumPath& path = []() -> const ChecksumPath& {
#if defined(__x86_64__)
    if (Avx2ChecksumPath() != nullptr && __builtin_cpu_supports("avx2")) {
      return *Avx2ChecksumPath();
    }
#endif
    return BaselineChecksumPath();
  }();
  return path;
}

}  // namespace

const ChecksumPath& BaselineChecksumPath() { return LibraryPath(); }

uint64_t Checksum(const void* data, size_t size) { return Chosen().hash(data, size); }

ChecksumStream::ChecksumStream() : state_(Chosen().new_state()) { Chosen().reset(state_); }
ChecksumStream::~ChecksumStream() { Chosen().free_state(state_); }
void ChecksumStream::Reset() { Chosen().reset(state_); }
void ChecksumStream::Update(const void* data, size_t size) { Chosen().update(state_, data, size); }
uint64_t ChecksumStream::Digest() const { return Chosen().digest(state_); }

}  // namespace ferry::store::internal
