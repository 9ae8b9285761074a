#include "metadata_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ferry::metadata::testing {
namespace {

constexpr char kDefaultEtcd[] = "/usr/bin/etcd";

// Binds a TCP socket to 127.0.0.1:0; returns it with the port chosen.
UniqueFd BindLoopback(uint16_t* port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UniqueFd();
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

uint16_t FreePort() {
  uint16_t port = 0;
  UniqueFd fd = BindLoopback(&port);
  return port;  // fd closes here: nothing listens on the port
}

BlackHoleListener::BlackHoleListener() {
  fd_ = BindLoopback(&port_);
  if (fd_.valid()) ::listen(fd_.get(), 64);
}

ScriptedHttpServer::ScriptedHttpServer() : server_(std::make_unique<httplib::Server>()) {}

ScriptedHttpServer::~ScriptedHttpServer() {
  if (!thread_.joinable()) return;
  while (!done_.load() && !server_->is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

bool ScriptedHttpServer::Start() {
  int port = server_->bind_to_any_port("127.0.0.1");
  if (port <= 0) return false;
  port_ = static_cast<uint16_t>(port);
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    done_.store(true);
  });
  Deadline deadline = Deadline::In(std::chrono::seconds(5));
  while (!server_->is_running()) {
    if (deadline.Expired() || done_.load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

Result<std::unique_ptr<EtcdProcess>> EtcdProcess::Start(Deadline deadline) {
  const char* env = std::getenv("FERRY_ETCD_BINARY");
  std::string binary = env != nullptr && env[0] != '\0' ? env : kDefaultEtcd;
  if (::access(binary.c_str(), X_OK) != 0) {
    return FailedPreconditionError("etcd not found at " + binary +
                                   ": run scripts/install_deps.sh (Debian package etcd-server)");
  }
  Status last;
  // A free port can be taken between FreePort() and etcd's bind: retry with new ports.
  for (int attempt = 0; attempt < 3 && !deadline.Expired(); ++attempt) {
    std::unique_ptr<EtcdProcess> etcd(new EtcdProcess());
    FERRY_RETURN_IF_ERROR(etcd->Launch(binary));
    last = etcd->WaitHealthy(deadline);
    if (last.ok()) return etcd;
  }
  return last.ok() ? DeadlineExceededError("etcd did not start before the deadline") : last;
}

Status EtcdProcess::Launch(const std::string& binary) {
  char tmpl[] = "/tmp/ferry-etcd-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  dir_ = tmpl;
  binary_ = binary;
  client_port_ = FreePort();
  peer_port_ = FreePort();
  return Exec();
}

Status EtcdProcess::Exec() {
  const std::string binary = binary_;
  const std::string client_url = "http://127.0.0.1:" + std::to_string(client_port_);
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> args = {binary,
                                   "--name=ferry-test",
                                   "--data-dir=" + dir_ + "/data",
                                   "--listen-client-urls=" + client_url,
                                   "--advertise-client-urls=" + client_url,
                                   "--listen-peer-urls=" + peer_url,
                                   "--initial-advertise-peer-urls=" + peer_url,
                                   "--initial-cluster=ferry-test=" + peer_url,
                                   "--initial-cluster-state=new",
                                   "--logger=zap",
                                   "--log-level=warn"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = dir_ + "/etcd.log";

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  return OkStatus();
}

Status EtcdProcess::WaitHealthy(Deadline deadline) {
  while (true) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return UnavailableError("etcd exited during start-up; its log:\n" + Log());
    }
    httplib::Client client("127.0.0.1", client_port_);
    client.set_connection_timeout(0, 200'000);
    client.set_read_timeout(1, 0);
    auto res = client.Get("/health");
    if (res && res->status == 200 && res->body.find("true") != std::string::npos) {
      return OkStatus();
    }
    if (deadline.Expired()) {
      return UnavailableError("etcd on 127.0.0.1:" + std::to_string(client_port_) +
                              " not healthy before the deadline; its log:\n" + Log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void EtcdProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  Deadline deadline = Deadline::In(std::chrono::seconds(5));
  while (::waitpid(pid_, nullptr, WNOHANG) == 0 && !deadline.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

Status EtcdProcess::Restart(Deadline deadline) {
  Kill();
  FERRY_RETURN_IF_ERROR(Exec());
  return WaitHealthy(deadline);
}

EtcdProcess::~EtcdProcess() {
  Kill();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string EtcdProcess::endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

std::string EtcdProcess::Log() const {
  std::ifstream in(dir_ + "/etcd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<EtcdProcess> StartEtcdOrFail() {
  auto etcd = EtcdProcess::Start(Deadline::In(std::chrono::seconds(30)));
  EXPECT_TRUE(etcd.ok()) << etcd.status().ToString();
  return etcd.ok() ? std::move(etcd).value() : nullptr;
}

}  // namespace ferry::metadata::testing
