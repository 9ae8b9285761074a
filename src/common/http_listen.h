// Starting a cpp-httplib server the way every Ferry HTTP service needs it.
//
//   httplib::Server server;   ... routes ...
//   std::thread listener;
//   FERRY_ASSIGN_OR_RETURN(uint16_t port, http::Listen(server, "127.0.0.1", 0, &listener));
//   ...
//   server.stop(); listener.join();
//
// Two things Debian's libcpp-httplib gets wrong for us are fixed here: its default socket
// options add SO_REUSEPORT, which lets a second server bind the same port and silently take
// half the connections (two prefill instances sharing a bootstrap port, say); and it
// listens with a backlog of 5, which makes bursts of clients wait for SYN retransmits.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <string>
#include <thread>

#include "ferry/status.h"

namespace ferry::http {

// Binds `server` to host:port (port 0: any free port) with SO_REUSEADDR only and a listen
// backlog of 1024, runs its accept loop on a new thread stored in *listener, and returns
// once the loop runs (httplib's stop() is a no-op before that). Returns the bound port.
// Errors: AlreadyExists (port in use, or the address is not local), Internal (the loop did
// not start within 5 s; *listener is then joined).
Result<uint16_t> Listen(httplib::Server& server, const std::string& host, uint16_t port,
                        std::thread* listener);

// Sets connect, read and write timeouts of a client.
void SetTimeouts(httplib::Client& client, std::chrono::milliseconds connect,
                 std::chrono::milliseconds io);

}  // namespace ferry::http
