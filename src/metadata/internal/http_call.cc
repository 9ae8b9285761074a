#include "metadata/internal/http_call.h"

#include <algorithm>

namespace ferry::metadata::internal {
namespace {

constexpr std::chrono::milliseconds kInfiniteTimeout = std::chrono::hours(24);
constexpr std::chrono::milliseconds kTimerSlack(2);

// Splits a millisecond count into cpp-httplib's (seconds, microseconds) pair.
void SplitMs(std::chrono::milliseconds ms, time_t* sec, time_t* usec) {
  *sec = static_cast<time_t>(ms.count() / 1000);
  *usec = static_cast<time_t>((ms.count() % 1000) * 1000);
}

}  // namespace

void ApplyDeadline(httplib::Client& client, Deadline deadline,
                   std::chrono::nanoseconds connect_cap) {
  std::chrono::milliseconds left = kInfiniteTimeout;
  if (!deadline.IsInfinite()) {
    // Round up so that the timeout never fires before the deadline.
    left = std::chrono::ceil<std::chrono::milliseconds>(deadline.Remaining());
    left = std::max(left, std::chrono::milliseconds(1));
  }
  std::chrono::milliseconds connect = left;
  if (connect_cap < std::chrono::nanoseconds::max()) {
    connect = std::min(connect, std::max(std::chrono::ceil<std::chrono::milliseconds>(connect_cap),
                                         std::chrono::milliseconds(1)));
  }
  time_t sec = 0;
  time_t usec = 0;
  SplitMs(connect, &sec, &usec);
  client.set_connection_timeout(sec, usec);
  SplitMs(left, &sec, &usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  client.set_keep_alive(false);
}

bool NearlyExpired(Deadline deadline) {
  return !deadline.IsInfinite() && deadline.Remaining() <= kTimerSlack;
}

bool IsConnectFailure(httplib::Error error) {
  return error == httplib::Error::Connection || error == httplib::Error::ConnectionTimeout ||
         error == httplib::Error::BindIPAddress;
}

Status StatusFromHttpError(httplib::Error error, Deadline deadline, std::string_view what) {
  std::string detail = httplib::to_string(error);
  if (NearlyExpired(deadline)) {
    return DeadlineExceededError(std::string(what) + ": no answer before the deadline (" + detail +
                                 ")");
  }
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      return UnavailableError(std::string(what) + ": cannot connect (" + detail +
                              "); is the server running and the address right?");
    case httplib::Error::Canceled:
      return DeadlineExceededError(std::string(what) + ": reply not complete before the deadline");
    default:
      return UnavailableError(std::string(what) + ": " + detail);
  }
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char c : text) {
    auto b = static_cast<unsigned char>(c);
    bool unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
                      b == '-' || b == '.' || b == '_' || b == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

}  // namespace ferry::metadata::internal
