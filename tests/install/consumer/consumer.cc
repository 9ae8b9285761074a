// An outside program built against an installed libferry (tests/install): two transfer
// engines in one process; B lends a buffer, A opens B's segment over tcp, writes into it
// with a notification, reads it back, and checks every byte. Exits 0 only if all of that
// held; prints what failed otherwise.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <ferry/status.h>
#include <ferry/transfer_engine.h>
#include <ferry/version.h>

namespace {

int Fail(const std::string& what, const ferry::Status& status) {
  std::fprintf(stderr, "FAIL: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  ferry::TransferEngineOptions options;
  options.transport = "tcp";
  auto target = ferry::TransferEngine::Create(options);
  if (!target.ok()) return Fail("create target", target.status());
  auto initiator = ferry::TransferEngine::Create(options);
  if (!initiator.ok()) return Fail("create initiator", initiator.status());

  constexpr size_t kBytes = 1 << 20;
  std::vector<unsigned char> lent(kBytes, 0);
  ferry::Status s = (*target)->RegisterMemory({lent.data(), lent.size()});
  if (!s.ok()) return Fail("register", s);

  std::vector<unsigned char> source(kBytes);
  for (size_t i = 0; i < kBytes; ++i) source[i] = static_cast<unsigned char>(i * 7 + 3);
  auto segment = (*initiator)->OpenSegment((*target)->local_name());
  if (!segment.ok()) return Fail("open segment", segment.status());

  const auto remote = reinterpret_cast<uint64_t>(lent.data());
  const std::string note = "written";
  ferry::TransferRequest write{ferry::TransferOp::kWrite, source.data(), *segment, remote, kBytes};
  s = (*initiator)->TransferSync({&write, 1}, std::chrono::seconds(10), &note);
  if (!s.ok()) return Fail("write", s);
  if (std::memcmp(lent.data(), source.data(), kBytes) != 0) {
    std::fprintf(stderr, "FAIL: the target's buffer differs from what was written\n");
    return 1;
  }

  std::vector<unsigned char> back(kBytes, 0);
  ferry::TransferRequest read{ferry::TransferOp::kRead, back.data(), *segment, remote, kBytes};
  s = (*initiator)->TransferSync({&read, 1}, std::chrono::seconds(10));
  if (!s.ok()) return Fail("read", s);
  if (back != source) {
    std::fprintf(stderr, "FAIL: read back bytes differ\n");
    return 1;
  }

  // The notification follows the write; give it the same 10 s.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<ferry::Notification> notes;
  while (notes.empty() && std::chrono::steady_clock::now() < until) {
    notes = (*target)->TakeNotifications();
    if (notes.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (notes.size() != 1 || notes[0].message != note) {
    std::fprintf(stderr, "FAIL: expected one notification \"%s\", got %zu\n", note.c_str(),
                 notes.size());
    return 1;
  }
  std::printf("consumer OK: libferry %.*s moved %zu bytes each way\n",
              static_cast<int>(ferry::Version().size()), ferry::Version().data(), kBytes);
  return 0;
}
