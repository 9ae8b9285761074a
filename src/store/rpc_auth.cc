#include "store/rpc_auth.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace ferry::store {

std::string AuthMessage(std::string_view full_method, const google::protobuf::Message& request) {
  std::string out(full_method);
  out.push_back('\n');
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace ferry::store
