#include "demo/kv_moved.h"

#include <cerrno>
#include <cstdlib>
#include <string>

namespace ferry::demo {
namespace {

// The value of the unlabelled sample `name` in `text`.
Result<double> Sample(std::string_view text, std::string_view name) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= name.size() || line.substr(0, name.size()) != name ||
        line[name.size()] != ' ') {
      continue;
    }
    const std::string value(line.substr(name.size() + 1));
    char* stop = nullptr;
    errno = 0;
    const double v = std::strtod(value.c_str(), &stop);
    if (stop == value.c_str() || errno == ERANGE) {
      return InvalidArgumentError(std::string(name) + ": not a number: " + value);
    }
    return v;
  }
  return NotFoundError("no " + std::string(name) + " sample in /metrics");
}

}  // namespace

Result<KvMoved> ParseKvMoved(std::string_view prometheus_text) {
  KvMoved kv;
  FERRY_ASSIGN_OR_RETURN(kv.bytes, Sample(prometheus_text, "ferry_kv_bytes_sent_total"));
  FERRY_ASSIGN_OR_RETURN(kv.transfers, Sample(prometheus_text, "ferry_kv_transfers_total"));
  FERRY_ASSIGN_OR_RETURN(kv.seconds, Sample(prometheus_text, "ferry_kv_transfer_seconds_sum"));
  return kv;
}

}  // namespace ferry::demo
