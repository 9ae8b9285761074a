// The AVX2 path of checksum.h; this file alone is built with -mavx2 (CMakeLists.txt) and
// includes nothing but xxhash inline, so no AVX2 code leaks into shared inline functions.
#include "store/disk/internal/checksum_impl.h"

#if defined(__x86_64__) && defined(__AVX2__)
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace ferry::store::internal {
namespace {
FERRY_DEFINE_CHECKSUM_PATH(Avx2Path)
}  // namespace
const ChecksumPath* Avx2ChecksumPath() { return &Avx2Path(); }
}  // namespace ferry::store::internal
#else
namespace ferry::store::internal {
const ChecksumPath* Avx2ChecksumPath() { return nullptr; }
}  // namespace ferry::store::internal
#endif
