#include "common/http_listen.h"

#include <sys/socket.h>

#include <atomic>
#include <memory>

#include "common/deadline.h"

namespace ferry::http {

Result<uint16_t> Listen(httplib::Server& server, const std::string& host, uint16_t port,
                        std::thread* listener) {
  auto listen_fd = std::make_shared<std::atomic<int>>(-1);
  server.set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd->store(sock);
  });
  int bound = port == 0 ? server.bind_to_any_port(host)
                        : (server.bind_to_port(host, port) ? static_cast<int>(port) : -1);
  if (bound <= 0) {
    return AlreadyExistsError("cannot listen on " + host + ":" + std::to_string(port) +
                              " (port in use, or the address is not local)");
  }
  constexpr int kBacklog = 1024;
  if (listen_fd->load() >= 0) ::listen(listen_fd->load(), kBacklog);
  *listener = std::thread([&server] { server.listen_after_bind(); });
  const Deadline deadline = Deadline::In(std::chrono::seconds(5));
  while (!server.is_running()) {
    if (deadline.Expired()) {
      server.stop();
      listener->join();
      return InternalError("HTTP server on " + host + ":" + std::to_string(bound) +
                           " did not start within 5 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return static_cast<uint16_t>(bound);
}

void SetTimeouts(httplib::Client& client, std::chrono::milliseconds connect,
                 std::chrono::milliseconds io) {
  client.set_connection_timeout(connect.count() / 1000, (connect.count() % 1000) * 1000);
  client.set_read_timeout(io.count() / 1000, (io.count() % 1000) * 1000);
  client.set_write_timeout(io.count() / 1000, (io.count() % 1000) * 1000);
}

}  // namespace ferry::http
