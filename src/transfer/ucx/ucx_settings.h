// UcxSettings: the ucx transport's settings, read from TransportOptions (device_name and
// the "ucx_*" keys of options.extra) and checked in one place.
//
//   FERRY_ASSIGN_OR_RETURN(UcxSettings s, UcxSettings::FromOptions(options));
//   // s.config: UCX configuration names and values for ucp_config_modify
//
// Keys of options.extra (the engine's transport_params):
//   ucx_tls          UCX transports, comma separated (UCX_TLS: "tcp", "sm", "rc,ud",
//                    "posix,cma", "^ud", ...). Default: "" (UCX's own default, all).
//   ucx_rndv_rails   how many devices one large transfer is striped across
//                    (UCX_MAX_RNDV_RAILS, 1..8). Default: "" (UCX's default, 2).
//   ucx_err_mode     "peer": endpoints detect a peer's failure and report it (UCX error
//                    mode PEER); "none": they do not (needed for UCX 1.13's shared-memory
//                    transports, which lack peer-failure support: with "peer" UCX runs
//                    shared-memory peers over tcp or not at all). Default: "peer".
//   ucx_poll_us      how long the progress thread busy-polls after its last event while
//                    requests are in flight, before it arms the wake-up fd and sleeps
//                    (0..10000). Default: 50.
// options.device_name ("mlx5_0:1,mlx5_1:1") becomes UCX_NET_DEVICES (default all).
// Other keys of options.extra belong to other transports and are ignored; an unknown key
// starting with "ucx_" is an error.
//
// Thread safety: a value type.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "ferry/status.h"
#include "transfer/transport.h"

namespace ferry::transfer::ucx {

struct UcxSettings {
  // (name, value) pairs for ucp_config_modify, e.g. ("TLS", "tcp"), ("NET_DEVICES", "lo").
  std::vector<std::pair<std::string, std::string>> config;
  std::chrono::microseconds busy_poll{50};
  bool peer_errors = true;  // UCP_ERR_HANDLING_MODE_PEER (else NONE)

  // Errors: InvalidArgument naming the setting and what it accepts.
  static Result<UcxSettings> FromOptions(const TransportOptions& options);
};

}  // namespace ferry::transfer::ucx
