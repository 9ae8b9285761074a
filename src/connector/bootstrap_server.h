// BootstrapServer: the prefill side's rendezvous point (protocol.md, "Bootstrap server").
//
// Workers of a prefill engine register their side-channel address per (dp, tp, pp) rank;
// decoders query the whole table once per remote engine.
//
//   POST /register {"engine_id":E,"dp_rank":0,"tp_rank":0,"pp_rank":0,"addr":"tcp://IP:PORT"}
//        -> 200 {"status":"ok"}; 400 {"error":...} when the rank already has another address
//           or the dp rank belongs to another engine id; re-registering the same is OK.
//   GET  /query -> {"<dp>":{"engine_id":E,"worker_addr":{"<tp>":{"<pp>":"tcp://IP:PORT"}}}}
//                  (or, with query_format kByEngineId, {"<E>":{"<dp>":{"<tp>":{"<pp>":...}}}})
//   GET  /health -> {"status":"ok"}
//
// The HTTP layer is http::HttpServer (src/http) with 8 workers: slow or idle clients hold
// a connection slot, never a worker, and every limit of docs/http_server.md applies (a
// body over 64 KiB is answered 413 before it is read). Errors, the server's own
// included, are {"error": message}.
//
//   FERRY_ASSIGN_OR_RETURN(auto server, BootstrapServer::Create({.host = "0.0.0.0", .port =
//   8998}));
//   ... server->port() ...;   // destructor stops and joins the HTTP threads
//
// Thread safety: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "ferry/status.h"
#include "http/http_server_options.h"

namespace ferry::connector {

// The registered table: dp rank -> engine id and tp rank -> pp rank -> address.
struct BootstrapEntry {
  std::string engine_id;
  std::map<int, std::map<int, std::string>> worker_addr;  // tp -> pp -> "tcp://ip:port"
};
using BootstrapTable = std::map<int, BootstrapEntry>;  // dp rank -> entry

// Applies one registration to `table`. Errors: InvalidArgument (conflicting address or
// engine id, negative ranks, empty fields) with a message for the 400 body.
Status ApplyRegistration(BootstrapTable& table, const std::string& engine_id, int dp_rank,
                         int tp_rank, int pp_rank, const std::string& addr);

// The shape of GET /query's answer. vLLM's bootstrap server changed it once, and the two
// shapes cannot be told apart by a client that expects one of them, so a server answers
// in one (docs/connector.md, "bootstrap_query_format").
enum class BootstrapQueryFormat {
  // {"<dp>":{"engine_id":E,"worker_addr":{"<tp>":{"<pp>":addr}}}}: vLLM's current shape.
  kByDpRank,
  // {"<E>":{"<dp>":{"<tp>":{"<pp>":addr}}}}: the shape vLLM's mooncake proxy reads at
  // revision f1b4b28 (its connector's bootstrap server answered so then).
  kByEngineId,
};
// "by_dp_rank" or "by_engine_id". Errors: InvalidArgument naming both.
Result<BootstrapQueryFormat> ParseBootstrapQueryFormat(const std::string& name);

// The /query JSON of a table.
std::string BootstrapTableToJson(const BootstrapTable& table,
                                 BootstrapQueryFormat format = BootstrapQueryFormat::kByDpRank);
// Parses /query JSON of either shape. Errors: InvalidArgument naming what is malformed.
Result<BootstrapTable> BootstrapTableFromJson(const std::string& json);

class BootstrapServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";  // Default: all interfaces, as the reference does.
    uint16_t port = 8998;          // Default: VLLM_MOONCAKE_BOOTSTRAP_PORT's default. 0: any.
    // The deployment's shared secret. When set, /register and /query need a valid
    // X-Ferry-Auth tag (message_auth.h, channel "bootstrap"; 401 otherwise) and their
    // replies carry X-Ferry-Auth-Reply. Default: "" (open, as the reference).
    std::string secret = "";
    // Limits and deadlines of the HTTP layer. Default: the HttpLimits defaults with
    // max_body_bytes 64 KiB (a registration is a few hundred bytes).
    http::HttpLimits http_limits = {.max_body_bytes = 64 << 10};
    // The shape of /query's answer. Default: kByDpRank (vLLM's current one).
    BootstrapQueryFormat query_format = BootstrapQueryFormat::kByDpRank;
  };

  // Binds and starts serving on a thread it owns. Errors: AlreadyExists (port taken),
  // InvalidArgument (bad host).
  static Result<std::unique_ptr<BootstrapServer>> Create(const Options& options);
  virtual ~BootstrapServer() = default;

  virtual uint16_t port() const = 0;
  virtual BootstrapTable Snapshot() const = 0;
};

}  // namespace ferry::connector
