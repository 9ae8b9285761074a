// `ferry demo`: the README's main job. Runs the deployment of the Mooncake connector guide
// on this machine: a prefill instance, a decode instance and the proxy on a tiny generated
// model (random weights: its text is gibberish by design), plus one colocated instance;
// sends a completion and a chat request through the proxy and the same requests to the
// colocated instance, prints both answers, checks that they are byte-identical (exit 1
// if not), prints the KV bytes moved and the time it took, and stops everything.
#pragma once

#include <string>

namespace ferry::demo {

struct DemoOptions {
  std::string model;  // "" = generate the tiny model
  int proxy_port = 8000;
  int prefill_port = 8010;
  int decode_port = 8020;
  int colocated_port = 8030;
  int bootstrap_port = 8998;
  bool free_ports = false;
  bool keep = false;
};

// Runs the demo; returns the exit code (0: "demo OK" printed). Spawns `ferry serve` and
// `ferry proxy` as /proc/self/exe, so it runs inside the `ferry` binary.
int RunDemo(const DemoOptions& options);

}  // namespace ferry::demo
