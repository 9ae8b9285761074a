// TcpClient: per-peer pools of persistent TcpConnections (the initiator side).
//
// Each peer ("host:port") gets up to `connections_per_peer` connections, opened lazily on
// first use and replaced when broken (so a peer that restarted at the same address is
// reachable again on the next call). Operations are spread over the live connections by
// least outstanding bytes.
//
// Example:
//   TcpClient client(/*secret=*/"", /*connections_per_peer=*/2, std::chrono::seconds(5));
//   std::vector<char> buf(4096);
//   auto op = std::make_shared<TcpOp>();
//   op->type = FrameType::kRead;  // fill buf from the peer's registered memory
//   op->local = buf.data();
//   op->remote = 0x7f0000000000;  // an address inside a buffer the peer registered
//   op->length = buf.size();
//   op->deadline = Deadline::In(std::chrono::seconds(1));
//   op->done = [](const Status& s) { /* runs once, on some thread, by op->deadline */ };
//   std::vector<std::shared_ptr<TcpOp>> ops{op};
//   client.Submit("127.0.0.1", 17000, ops);
//   auto get = std::make_shared<TcpOp>();
//   get->type = FrameType::kGetDescriptor;
//   FERRY_RETURN_IF_ERROR(client.Call("127.0.0.1", 17000, get));  // get->reply: the answer
//
// Thread safety: thread-safe. Destruction fails pending operations with Aborted and joins
// every connection thread.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/deadline.h"
#include "common/mutex.h"
#include "ferry/status.h"
#include "transfer/tcp/tcp_connection.h"

namespace ferry::transfer::tcp {

class TcpClient {
 public:
  TcpClient(std::string secret, int connections_per_peer,
            std::chrono::milliseconds connect_timeout);
  ~TcpClient();

  // Starts `ops` towards peer `host:port`. If no connection can be made, every op fails
  // with the connect error (Unavailable / DeadlineExceeded / PermissionDenied).
  void Submit(const std::string& host, uint16_t port, std::span<std::shared_ptr<TcpOp>> ops);

  // Runs one op and waits for it (deadline: op->deadline); op->done is replaced. On an
  // idle connection the op runs on this thread (TcpConnection::TryRunInline), else it is
  // queued like Submit. Returns the op's status (connect errors as Submit).
  Status Call(const std::string& host, uint16_t port, std::shared_ptr<TcpOp> op);

  // Opens the missing connections to `host:port` now (by `deadline`); errors as Submit's.
  Status Connect(const std::string& host, uint16_t port, Deadline deadline);

  // Closes and forgets the connections to `host:port`.
  void Forget(const std::string& key);

 private:
  struct Peer {
    Mutex mu;  // Serializes (re)connecting; taken before nothing else.
    std::vector<std::shared_ptr<TcpConnection>> conns FERRY_GUARDED_BY(mu);
  };
  // Live connections to the peer, connecting missing/broken ones first.
  Result<std::vector<std::shared_ptr<TcpConnection>>> Connections(const std::string& host,
                                                                  uint16_t port, Deadline d);

  const std::string secret_;
  const int connections_per_peer_;
  const std::chrono::milliseconds connect_timeout_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_ FERRY_GUARDED_BY(mu_);
};

}  // namespace ferry::transfer::tcp
