// Timeouts of an outgoing cpp-httplib client call (Ferry keeps httplib::Client for the
// calls it makes: proxy -> backends, connector -> bootstrap, metadata clients).
//
//   httplib::Client client(host, port);
//   http::SetTimeouts(client, std::chrono::seconds(2), std::chrono::seconds(30));
//
// cpp-httplib applies the io timeout to each socket read or write, not to the whole call.
#pragma once

#include <httplib.h>

#include <chrono>

namespace ferry::http {

// Sets the connect timeout and the per-operation read and write timeouts of `client`.
inline void SetTimeouts(httplib::Client& client, std::chrono::milliseconds connect,
                        std::chrono::milliseconds io) {
  client.set_connection_timeout(connect.count() / 1000, (connect.count() % 1000) * 1000);
  client.set_read_timeout(io.count() / 1000, (io.count() % 1000) * 1000);
  client.set_write_timeout(io.count() / 1000, (io.count() % 1000) * 1000);
}

}  // namespace ferry::http
