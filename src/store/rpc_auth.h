// What the store's RPC auth tag covers (proto/master.proto, "Conventions").
//
// With a deployment secret, each call carries metadata kAuthMetadataKey holding an AuthTag
// (common/message_auth.h, channel kAuthChannel) over AuthMessage(method, request): the
// full method name, a newline, then the request's deterministic serialization. Client and
// master build the message with this one function so they cannot disagree.
//
//   ferry::MessageAuth auth(secret, std::string(ferry::store::kAuthChannel));
//   std::string tag = auth.Sign(ferry::store::AuthMessage("/ferry.store.rpc.Master/Ping",
//                                                         request)).ToString();
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

namespace ferry::store {

inline constexpr std::string_view kAuthMetadataKey = "x-ferry-auth";
// A standby master refusing a call names the leader in this trailing metadata entry.
inline constexpr std::string_view kLeaderMetadataKey = "x-ferry-leader";
inline constexpr std::string_view kAuthChannel = "store-master";

std::string AuthMessage(std::string_view full_method, const google::protobuf::Message& request);

}  // namespace ferry::store
