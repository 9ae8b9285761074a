// `ferry demo`: flags for the README's main job (demo/demo.h).
#include <memory>

#include "command.h"
#include "demo/demo.h"

namespace ferry::cli {

FERRY_REGISTER_COMMAND(
    demo, "demo",
    "Runs prefill + decode + proxy on this machine, sends requests through the proxy and to a "
    "colocated instance, checks the answers are byte-identical, stops",
    [](CLI::App& cmd) -> Runner {
      auto f = std::make_shared<demo::DemoOptions>();
      cmd.add_option("--model", f->model, "HF model directory (default: a generated tiny one)");
      cmd.add_option("--proxy-port", f->proxy_port, "Proxy port")->capture_default_str();
      cmd.add_option("--prefill-port", f->prefill_port, "Prefill port")->capture_default_str();
      cmd.add_option("--decode-port", f->decode_port, "Decode port")->capture_default_str();
      cmd.add_option("--colocated-port", f->colocated_port,
                     "Port of the colocated instance the answers are compared with")
          ->capture_default_str();
      cmd.add_option("--bootstrap-port", f->bootstrap_port, "VLLM_MOONCAKE_BOOTSTRAP_PORT")
          ->capture_default_str();
      cmd.add_flag("--free-ports", f->free_ports, "Pick free ports instead of the defaults");
      cmd.add_flag("--keep-logs", f->keep, "Keep the instances' logs");
      return [f] { return demo::RunDemo(*f); };
    });

}  // namespace ferry::cli
