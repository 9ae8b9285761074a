#include <fmt/core.h>

#include "command.h"

FERRY_REGISTER_COMMAND(version, "version", "Prints Ferry's version",
                       [](CLI::App&) -> ferry::cli::Runner {
                         return [] {
                           fmt::print("ferry {}\n", FERRY_VERSION);
                           return 0;
                         };
                       });
