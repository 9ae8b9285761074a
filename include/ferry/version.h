// The version of libferry a program runs against (the project version of the build).
//
//   std::string_view v = ferry::Version();  // e.g. "0.1.0"
#pragma once

#include <string_view>

namespace ferry {

// "major.minor.patch" of the library that was loaded (not of the headers compiled against).
std::string_view Version();

}  // namespace ferry
