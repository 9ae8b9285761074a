// `ferry store ...`: the KV cache pool by hand (docs/store.md).
//
//   ferry store member --global_segment_size 4GB      # lend 4 GiB of DRAM until SIGTERM
//   ferry store put KEY --value hello                 # or --file PATH, or --size 1M
//   ferry store get KEY [--out PATH]
//   ferry store ls [--regex 'kv/.*']
//   ferry store rm KEY [--force] | --all | --regex RE
//
// Every command takes the client setup of Mooncake's Python API, under the same names:
// --local_hostname, --metadata_server, --master_server_address (alias
// --master_server_addr), --global_segment_size, --local_buffer_size, --protocol,
// --device_name. Sizes accept 16MB, 16 MB, 4GiB, 1.5G. Exit codes: 0 done, 1 the store
// refused (the message names the store's error, e.g. OBJECT_NOT_FOUND), 2 bad flags.
#include <fmt/core.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "command.h"
#include "common/byte_size.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/message_auth.h"
#include "http/http_server.h"
#include "stop_signals.h"
#include "store/client.h"
#include "store/master_client.h"

namespace {

using ferry::store::Client;
using ferry::store::ClientOptions;
using ferry::store::ErrorCodeName;
using ferry::store::ErrorCodeOf;

struct StoreFlags {
  std::string local_hostname = "127.0.0.1";
  std::string metadata_server = "P2PHANDSHAKE";
  std::string master_server_address = "127.0.0.1:50051";
  std::string global_segment_size = "0";
  std::string local_buffer_size = "16MB";
  std::string protocol = "auto";
  std::string device_name;
  std::string fault;  // testing: fault-transport parameters wrapped around --protocol
  int rpc_timeout_ms = 5000;
  int transfer_timeout_ms = 30000;
  bool enable_ssd_offload = false;
  std::string ssd_offload_path;  // "" = MOONCAKE_OFFLOAD_FILE_STORAGE_PATH
  std::string ssd_capacity = "0";
  int metrics_port = -1;  // member only: -1 none, 0 any free port
};

void AddClientFlags(CLI::App& cmd, StoreFlags* f, const std::string& segment_default) {
  f->global_segment_size = segment_default;
  cmd.add_option("--local_hostname", f->local_hostname, "This host's address (host or host:port)")
      ->capture_default_str();
  cmd.add_option("--metadata_server", f->metadata_server,
                 "Transfer-engine metadata: P2PHANDSHAKE, http://..., etcd://...")
      ->capture_default_str();
  cmd.add_option("--master_server_address,--master_server_addr", f->master_server_address,
                 "The master, host:port")
      ->capture_default_str();
  cmd.add_option("--global_segment_size", f->global_segment_size, "DRAM lent to the pool")
      ->capture_default_str();
  cmd.add_option("--local_buffer_size", f->local_buffer_size, "Staging memory (accepted)")
      ->capture_default_str();
  cmd.add_option("--protocol", f->protocol, "tcp, shm, auto or rdma (rdma: auto for now)")
      ->capture_default_str();
  cmd.add_option("--device_name", f->device_name, "RDMA devices (accepted; unused)");
  cmd.add_option("--rpc_timeout_ms", f->rpc_timeout_ms, "Deadline of each master call")
      ->capture_default_str();
  cmd.add_option("--transfer_timeout_ms", f->transfer_timeout_ms, "Deadline of each transfer")
      ->capture_default_str();
  cmd.add_option("--fault", f->fault,
                 "Testing: fault-transport parameters around --protocol (delay_ms=...)");
  cmd.add_option("--enable_ssd_offload", f->enable_ssd_offload,
                 "Lend a disk to the pool (the master needs --enable_offload)")
      ->capture_default_str()
      ->expected(0, 1)
      ->default_str("true");
  cmd.add_option("--ssd_offload_path", f->ssd_offload_path,
                 "The SSD tier's directory (default: MOONCAKE_OFFLOAD_FILE_STORAGE_PATH)");
  cmd.add_option("--ssd_capacity", f->ssd_capacity,
                 "Most bytes the SSD tier keeps (0: as much as the disk holds)")
      ->capture_default_str();
}

// A client and, with --fault, the engine it was given.
struct OpenedClient {
  std::unique_ptr<ferry::TransferEngine> engine;  // only with --fault
  std::unique_ptr<Client> client;
};

int Fail(const char* what, const ferry::Status& s) {
  fmt::print(stderr, "ferry store {}: {} ({})\n", what, s.ToString(),
             ErrorCodeName(ErrorCodeOf(s)));
  return 1;
}

// Opens the client the flags describe into `out`; returns 0, or the exit code after
// printing why not (2 for a bad flag, 1 when the store or the master refused).
int OpenClient(const StoreFlags& f, const char* what, OpenedClient* out) {
  ferry::InitLoggingFromEnv();
  ClientOptions o;
  o.local_hostname = f.local_hostname;
  o.metadata_server = f.metadata_server;
  o.master_server_address = f.master_server_address;
  auto seg = ferry::ParseByteSize(f.global_segment_size);
  auto buf = ferry::ParseByteSize(f.local_buffer_size);
  if (!seg.ok() || !buf.ok()) {
    fmt::print(stderr, "ferry store {}: {}\n", what,
               !seg.ok() ? "--global_segment_size: " + seg.status().message()
                         : "--local_buffer_size: " + buf.status().message());
    return 2;
  }
  o.global_segment_size = *seg;
  o.local_buffer_size = *buf;
  o.protocol = f.protocol;
  o.device_name = f.device_name;
  o.rpc_timeout = std::chrono::milliseconds(f.rpc_timeout_ms);
  o.transfer_timeout = std::chrono::milliseconds(f.transfer_timeout_ms);
  auto ssd = ferry::ParseByteSize(f.ssd_capacity);
  if (!ssd.ok()) {
    fmt::print(stderr, "ferry store {}: --ssd_capacity: {}\n", what, ssd.status().message());
    return 2;
  }
  o.enable_ssd_offload = f.enable_ssd_offload;
  o.ssd_offload_path = f.ssd_offload_path;
  o.ssd_capacity = *ssd;
  if (!f.fault.empty()) {
    ferry::TransferEngineOptions eo;
    eo.local_name = f.local_hostname.find(':') == std::string::npos ? f.local_hostname + ":0"
                                                                    : f.local_hostname;
    eo.metadata = f.metadata_server;
    eo.transport = "fault:" + (f.protocol == "auto" ? std::string("tcp") : f.protocol);
    eo.transport_params = f.fault;
    eo.secret = o.secret;
    auto engine = ferry::TransferEngine::Create(eo);
    if (!engine.ok()) return Fail(what, engine.status());
    out->engine = std::move(*engine);
    o.engine = out->engine.get();
  }
  auto client = Client::Create(o);
  if (!client.ok()) return Fail(what, client.status());
  out->client = std::move(*client);
  return 0;
}

int RunMember(const StoreFlags& f) {
  const sigset_t signals = ferry::cli::BlockStopSignals();
  OpenedClient opened;
  if (int rc = OpenClient(f, "member", &opened); rc != 0) return rc;
  Client& c = *opened.client;
  std::unique_ptr<ferry::http::HttpServer> metrics;
  if (f.metrics_port >= 0) {
    ferry::http::HttpServerOptions ho;
    ho.name = "store-member";
    ho.worker_threads = 1;
    auto http = ferry::http::HttpServer::Create(ho);
    if (!http.ok()) return Fail("member", http.status());
    metrics = std::move(*http);
    metrics->Route("GET", "/metrics", [&c](const ferry::http::Request&, ferry::http::Response& r) {
      r.Set(200, c.MetricsText(), "text/plain; version=0.0.4");
    });
    auto self = ferry::ParseHostPort(f.local_hostname, 0);
    if (!self.ok() || f.metrics_port > 65535) {
      return Fail("member", ferry::InvalidArgumentError("--metrics_port or --local_hostname"));
    }
    ferry::Status s = metrics->Start(self->host, static_cast<uint16_t>(f.metrics_port));
    if (!s.ok()) return Fail("member", s.WithContext("--metrics_port"));
  }
  fmt::print("ferry store member ready {} ({} lent to {}{})\n", c.hostname(),
             ferry::FormatByteSize(*ferry::ParseByteSize(f.global_segment_size)),
             f.master_server_address,
             metrics ? fmt::format("; metrics on port {}", metrics->port()) : "");
  std::fflush(stdout);
  const int sig = ferry::cli::WaitForStopSignal(signals);
  if (metrics) metrics->Stop();
  FERRY_LOG_INFO("store member: signal {}, unmounting", sig);
  ferry::Status s = c.Close();
  if (!s.ok()) return Fail("member", s);
  return 0;
}

struct PutFlags {
  std::string key, value, file, size;
  bool upsert = false;
  size_t replicas = 1;
};

int RunPut(const StoreFlags& f, const PutFlags& p) {
  std::string value;
  const int given = !p.value.empty() + !p.file.empty() + !p.size.empty();
  if (given != 1) {
    fmt::print(stderr, "ferry store put: give exactly one of --value, --file, --size\n");
    return 2;
  }
  if (!p.file.empty()) {
    std::ifstream in(p.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "ferry store put: cannot read {}\n", p.file);
      return 2;
    }
    value.assign(std::istreambuf_iterator<char>(in), {});
  } else if (!p.size.empty()) {
    auto n = ferry::ParseByteSize(p.size);
    if (!n.ok()) {
      fmt::print(stderr, "ferry store put: --size: {}\n", n.status().message());
      return 2;
    }
    value.resize(*n);
    for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + i % 26);
  } else {
    value = p.value;
  }
  OpenedClient opened;
  if (int rc = OpenClient(f, "put", &opened); rc != 0) return rc;
  ferry::store::ReplicateConfig config;
  config.replica_num = p.replicas;
  ferry::Status s = opened.client->Put(
      p.key, std::as_bytes(std::span(value)), config,
      p.upsert ? ferry::store::PutMode::kUpsert : ferry::store::PutMode::kInsert);
  if (!s.ok()) return Fail("put", s);
  fmt::print("put {} ({} bytes)\n", p.key, value.size());
  return 0;
}

int RunGet(const StoreFlags& f, const std::string& key, const std::string& out_path) {
  OpenedClient opened;
  if (int rc = OpenClient(f, "get", &opened); rc != 0) return rc;
  auto got = opened.client->Get(key);
  if (!got.ok()) return Fail("get", got.status());
  if (out_path.empty()) {
    std::fwrite(got->data(), 1, got->size(), stdout);
  } else {
    std::ofstream out(out_path, std::ios::binary);
    out.write(got->data(), static_cast<std::streamsize>(got->size()));
    if (!out) {
      fmt::print(stderr, "ferry store get: cannot write {}\n", out_path);
      return 1;
    }
  }
  return 0;
}

int RunLs(const StoreFlags& f, const std::string& regex) {
  auto master =
      ferry::store::MasterClient::Create(f.master_server_address, ferry::SecretFromEnvironment(),
                                         std::chrono::milliseconds(f.rpc_timeout_ms));
  if (!master.ok()) return Fail("ls", master.status());
  ferry::store::rpc::ListKeysRequest req;
  req.set_regex(regex);
  auto rep = (*master)->ListKeys(req);
  if (!rep.ok()) return Fail("ls", rep.status());
  if (ferry::Status s = ferry::store::ToStatus(rep->result()); !s.ok()) return Fail("ls", s);
  for (const auto& k : rep->keys()) {
    fmt::print("{}\t{}\t{}\t{}\n", k.key(), k.size(),
               k.status() == ferry::store::rpc::COMPLETE ? "complete" : "processing", k.replicas());
  }
  if (rep->truncated()) fmt::print(stderr, "(more keys than listed)\n");
  return 0;
}

int RunRm(const StoreFlags& f, const std::string& key, bool all, const std::string& regex,
          bool force) {
  if ((key.empty() ? 0 : 1) + (all ? 1 : 0) + (regex.empty() ? 0 : 1) != 1) {
    fmt::print(stderr, "ferry store rm: give exactly one of KEY, --all, --regex\n");
    return 2;
  }
  OpenedClient opened;
  if (int rc = OpenClient(f, "rm", &opened); rc != 0) return rc;
  Client& c = *opened.client;
  if (!key.empty()) {
    ferry::Status s = c.Remove(key, force);
    if (!s.ok()) return Fail("rm", s);
    fmt::print("removed 1\n");
    return 0;
  }
  auto n = all ? c.RemoveAll(force) : c.RemoveByRegex(regex, force);
  if (!n.ok()) return Fail("rm", n.status());
  fmt::print("removed {}\n", *n);
  return 0;
}

ferry::cli::Runner SetupMember(CLI::App& cmd) {
  auto f = std::make_shared<StoreFlags>();
  AddClientFlags(cmd, f.get(), "1GB");
  cmd.add_option("--metrics_port", f->metrics_port,
                 "HTTP /metrics of this member (0: any free port; default: none)");
  return [f] { return RunMember(*f); };
}

ferry::cli::Runner SetupPut(CLI::App& cmd) {
  auto f = std::make_shared<StoreFlags>();
  auto p = std::make_shared<PutFlags>();
  AddClientFlags(cmd, f.get(), "0");
  cmd.add_option("key", p->key, "Object key")->required();
  cmd.add_option("--value", p->value, "The value as text");
  cmd.add_option("--file", p->file, "Read the value from a file");
  cmd.add_option("--size", p->size, "A generated value of this size");
  cmd.add_flag("--upsert", p->upsert, "Replace an existing value");
  cmd.add_option("--replicas", p->replicas, "Copies, on distinct segments")->capture_default_str();
  return [f, p] { return RunPut(*f, *p); };
}

ferry::cli::Runner SetupGet(CLI::App& cmd) {
  auto f = std::make_shared<StoreFlags>();
  auto key = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  AddClientFlags(cmd, f.get(), "0");
  cmd.add_option("key", *key, "Object key")->required();
  cmd.add_option("--out", *out, "Write the value to this file");
  return [f, key, out] { return RunGet(*f, *key, *out); };
}

ferry::cli::Runner SetupLs(CLI::App& cmd) {
  auto f = std::make_shared<StoreFlags>();
  auto regex = std::make_shared<std::string>();
  AddClientFlags(cmd, f.get(), "0");
  cmd.add_option("--regex", *regex, "Only keys matching (RE2, whole key)");
  return [f, regex] { return RunLs(*f, *regex); };
}

ferry::cli::Runner SetupRm(CLI::App& cmd) {
  auto f = std::make_shared<StoreFlags>();
  auto key = std::make_shared<std::string>();
  auto regex = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  auto force = std::make_shared<bool>(false);
  AddClientFlags(cmd, f.get(), "0");
  cmd.add_option("key", *key, "Object key");
  cmd.add_flag("--all", *all, "Every key");
  cmd.add_option("--regex", *regex, "Keys matching (RE2, whole key)");
  cmd.add_flag("--force", *force, "Also leased objects");
  return [f, key, all, regex, force] { return RunRm(*f, *key, *all, *regex, *force); };
}

}  // namespace

FERRY_REGISTER_COMMAND(store_member, "store member",
                       "Lends DRAM to the KV cache pool until SIGINT/SIGTERM", SetupMember);
FERRY_REGISTER_COMMAND(store_put, "store put", "Puts one object into the pool", SetupPut);
FERRY_REGISTER_COMMAND(store_get, "store get", "Gets one object (to stdout or --out)", SetupGet);
FERRY_REGISTER_COMMAND(store_ls, "store ls", "Lists keys: key, size, status, replicas", SetupLs);
FERRY_REGISTER_COMMAND(store_rm, "store rm", "Removes a key, every key, or keys matching", SetupRm);
