// The process-wide ZeroMQ context of the side channel (server and client sockets).
#pragma once

#include <zmq.hpp>

namespace ferry::connector::internal {

// Created on first use and never destroyed: sockets may outlive static destructors. Every
// socket made from it sets linger 0, so closing one never blocks.
zmq::context_t& ZmqContext();

// Largest side-channel message accepted (ZMQ_MAXMSGSIZE): a request for 1 M blocks of one
// prompt is about 5 MiB of msgpack. A bigger frame drops the connection before any of it
// is buffered.
inline constexpr int64_t kMaxSideChannelMessage = 16 << 20;

}  // namespace ferry::connector::internal
