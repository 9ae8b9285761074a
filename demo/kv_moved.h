// What the demo reads from the prefill instance's /metrics to show that KV moved from
// prefill to decode.
//
// Example:
//   std::string_view metrics_body = "ferry_kv_bytes_sent_total 4096\n";  // GET /metrics
//   FERRY_ASSIGN_OR_RETURN(KvMoved kv, ParseKvMoved(metrics_body));
//   // kv.bytes bytes moved in kv.transfers transfers
#pragma once

#include <string_view>

#include "ferry/status.h"

namespace ferry::demo {

// The connector's KV transfer totals on a producer.
struct KvMoved {
  double bytes = 0;      // ferry_kv_bytes_sent_total
  double transfers = 0;  // ferry_kv_transfers_total
  double seconds = 0;    // ferry_kv_transfer_seconds_sum
};

// Reads the three unlabelled samples above from Prometheus text. Errors: NotFound naming
// the first metric that is missing, InvalidArgument for a value that is not a number.
Result<KvMoved> ParseKvMoved(std::string_view prometheus_text);

}  // namespace ferry::demo
