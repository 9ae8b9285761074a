// `ferry demo-transfer`: flags for the transfer engine's own demo (demo/transfer_demo.h).
#include <fmt/core.h>

#include <memory>
#include <string>

#include "command.h"
#include "common/byte_size.h"
#include "demo/transfer_demo.h"

namespace ferry::cli {

FERRY_REGISTER_COMMAND(demo_transfer, "demo-transfer",
                       "Moves 1 GiB between two local processes over tcp and shm, and checks it",
                       [](CLI::App& cmd) -> Runner {
                         auto ws = std::make_shared<std::string>("1G");
                         cmd.add_option("--bytes", *ws, "Bytes to move per transport (default 1G)");
                         return [ws] {
                           auto n = ParseByteSize(*ws);
                           if (n.ok() && *n < (4u << 20))
                             n = InvalidArgumentError("--bytes must be at least 4M");
                           if (!n.ok()) {
                             fmt::print(stderr, "--bytes: {}\n", n.status().message());
                             return 2;
                           }
                           *n -= *n % (4u << 20);
                           if (*n == 0) *n = 4u << 20;
                           return demo::RunTransferDemo(*n);
                         };
                       });

}  // namespace ferry::cli
