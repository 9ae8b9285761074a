// OutputText: the generated text of one request, released to the client in safe pieces.
//
//   OutputText out({"\n\n"});
//   bool stopped = out.Append(tokenizer->Decode({token}));   // per generated token
//   client->Send(out.TakeDelta());                          // may be empty
//   ... at the end: client->Send(out.TakeRest());
//
// Append adds the bytes of newly generated tokens. When a stop string appears the text is
// cut just before it and Append returns true; later Appends are ignored.
// TakeDelta returns the bytes not yet released that are safe to show: it holds back an
// incomplete trailing UTF-8 character and the longest tail that is a prefix of a stop
// string. TakeRest releases whatever is left (call it once the request has finished).
// Decoding a token at a time is exact for byte-level BPE, where the text of a sequence is
// the concatenation of its tokens' bytes.
//
// Thread safety: none (one per request, used by the engine thread).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::engine {

class OutputText {
 public:
  explicit OutputText(std::vector<std::string> stop = {});

  // Returns true when a stop string was found (now or earlier).
  bool Append(std::string_view bytes);
  std::string TakeDelta();
  std::string TakeRest();

  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // everything so far (cut at a stop)

 private:
  std::vector<std::string> stop_;
  size_t max_stop_len_ = 0;
  std::string text_;
  size_t released_ = 0;  // bytes of text_ handed out
  bool stopped_ = false;
};

// Length of an incomplete UTF-8 sequence at the end of `s` (0 if it ends cleanly).
size_t IncompleteUtf8Tail(std::string_view s);

}  // namespace ferry::engine
