#include "ferry/version.h"

namespace ferry {

std::string_view Version() { return FERRY_VERSION; }

}  // namespace ferry
