// `ferry serve MODEL_DIR`: the OpenAI-compatible server over the CPU engine, with flags
// named like `vllm serve`. Runs until SIGINT/SIGTERM, then stops the HTTP server (aborting
// requests in flight) and the engine thread, and exits 0.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <fmt/core.h>

#include "command.h"
#include "common/log.h"
#include "connector/kv_connector_factory.h"
#include "connector/kv_transfer_config.h"
#include "engine/llm_engine.h"
#include "engine/model.h"
#include "engine/model_path.h"
#include "engine/tokenizer.h"
#include "server/openai_server.h"

namespace ferry::cli {
namespace {

struct ServeFlags {
  std::string model_dir;
  // All interfaces, as `vllm serve`: the guide's proxy reaches P and D on their own hosts
  // without a --host flag. The KV transfer engine still binds one address (see
  // AdvertisedHostIp: VLLM_HOST_IP, --host, else the first non-loopback IPv4).
  std::string host = "0.0.0.0";
  int port = 8000;
  int max_model_len = 0;
  int block_size = 16;
  int num_kv_blocks = 0;
  int kv_cache_memory_mb = 1024;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 1024;
  std::string served_model_name;
  int threads = 1;
  std::string dtype = "auto";  // weight storage: auto|float32|float (f32), bfloat16
  std::string kv_transfer_config;
  bool no_prefix_caching = false;
  bool enable_prefix_caching = false;
  // Flags people copy from `vllm serve` (RunServe says what each means here).
  std::string api_key;  // also VLLM_API_KEY
  int tensor_parallel_size = 1;
  double gpu_memory_utilization = -1;  // -1: not given
  bool trust_remote_code = false;
  std::optional<uint64_t> seed;
  bool disable_log_requests = false;
  std::string uvicorn_log_level;
};

volatile sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int sig) { g_stop_signal = sig; }

int Fail(int code, const std::string& msg) {
  fmt::print(stderr, "ferry serve: {}\n", msg);
  return code;
}

// Blocks from the KV memory budget, at least one max-length sequence, at most enough for
// max_num_seqs of them.
int32_t DefaultNumBlocks(const ServeFlags& f, const engine::KvCacheLayout& one_block,
                         int32_t max_len) {
  const int64_t per_seq = (max_len + f.block_size - 1) / f.block_size;
  const int64_t budget =
      static_cast<int64_t>(f.kv_cache_memory_mb) * (1 << 20) / one_block.block_bytes();
  return static_cast<int32_t>(std::max(per_seq, std::min(budget, per_seq * f.max_num_seqs)));
}

// The vLLM flags that mean something else (or nothing) on Ferry: a clear error for what
// Ferry cannot do, one info line for each accepted one.
Status ApplyVllmFlags(ServeFlags* f) {
  if (f->tensor_parallel_size != 1) {
    return InvalidArgumentError("--tensor-parallel-size " +
                                std::to_string(f->tensor_parallel_size) +
                                ": Ferry has no tensor parallelism yet; use -tp 1");
  }
  if (f->no_prefix_caching && f->enable_prefix_caching) {
    return InvalidArgumentError(
        "--enable-prefix-caching and --no-enable-prefix-caching contradict each other");
  }
  if (f->gpu_memory_utilization != -1 &&
      !(f->gpu_memory_utilization > 0 && f->gpu_memory_utilization <= 1)) {
    return InvalidArgumentError("--gpu-memory-utilization must be in (0, 1], got " +
                                std::to_string(f->gpu_memory_utilization));
  }
  if (f->gpu_memory_utilization != -1) {
    f->kv_cache_memory_mb =
        std::max(1, static_cast<int>(f->kv_cache_memory_mb * f->gpu_memory_utilization));
    FERRY_LOG_INFO(
        "--gpu-memory-utilization {}: Ferry runs on the CPU; the KV cache gets that share of "
        "--kv-cache-memory-mb: {} MiB",
        f->gpu_memory_utilization, f->kv_cache_memory_mb);
  }
  if (f->trust_remote_code) {
    FERRY_LOG_INFO("--trust-remote-code: accepted; Ferry runs no code from the model repo");
  }
  if (f->seed) {
    FERRY_LOG_INFO("--seed {}: the seed of sampling requests that give none", *f->seed);
  }
  if (f->enable_prefix_caching) {
    FERRY_LOG_INFO("--enable-prefix-caching: the prefix cache is on (Ferry's default)");
  }
  if (f->disable_log_requests) {
    FERRY_LOG_INFO("--disable-log-requests: accepted; Ferry does not log requests one by one");
  }
  if (f->api_key.empty()) {
    if (const char* env = std::getenv("VLLM_API_KEY"); env != nullptr) f->api_key = env;
  }
  if (!f->api_key.empty()) {
    FERRY_LOG_INFO("API key set: /v1/* requests need \"Authorization: Bearer <key>\"");
  }
  if (!f->uvicorn_log_level.empty()) {
    // Ferry's HTTP layer logs through the process log; FERRY_LOG_LEVEL, if set, wins. Last,
    // so that the notes above are printed whatever the level.
    std::string level = f->uvicorn_log_level;
    if (level == "warning") level = "warn";
    if (level == "critical") level = "error";
    const bool env_wins = std::getenv("FERRY_LOG_LEVEL") != nullptr;
    FERRY_LOG_INFO("--uvicorn-log-level {}: Ferry's log level (HTTP layer included) is {}",
                   f->uvicorn_log_level, env_wins ? "FERRY_LOG_LEVEL's" : level);
    if (!env_wins) SetLogLevel(level);
  }
  return OkStatus();
}

int RunServe(ServeFlags f) {
  if (Status st = ApplyVllmFlags(&f); !st.ok()) return Fail(2, st.message());
  std::optional<connector::KvTransferConfig> kv_config;
  if (!f.kv_transfer_config.empty()) {
    auto kv = connector::ParseKvTransferConfig(f.kv_transfer_config);
    if (!kv.ok()) return Fail(2, kv.status().message());
    kv_config = *kv;
  }
  auto dir = engine::ResolveModelPath(f.model_dir);
  if (!dir.ok()) return Fail(1, dir.status().message());
  if (*dir != f.model_dir) FERRY_LOG_INFO("serve: model {} found at {}", f.model_dir, *dir);
  // vLLM's --dtype names; compute is float32 either way, so "auto" keeps float32.
  const engine::WeightDType dtype =
      f.dtype == "bfloat16" ? engine::WeightDType::kBF16 : engine::WeightDType::kF32;
  auto model = engine::Model::Load(*dir, {.threads = f.threads, .weight_dtype = dtype});
  if (!model.ok()) return Fail(1, "loading the model: " + model.status().ToString());
  FERRY_LOG_INFO("model: {} layers, weights stored as {}", (*model)->config().num_layers,
                 engine::WeightDTypeName(dtype));
  auto tokenizer = engine::Tokenizer::Load(*dir);
  if (!tokenizer.ok()) return Fail(1, "loading the tokenizer: " + tokenizer.status().ToString());

  const auto& cfg = (*model)->config();
  int32_t max_len = f.max_model_len > 0 ? f.max_model_len : cfg.max_position_embeddings;
  if (max_len <= 0) max_len = 2048;
  if (cfg.max_position_embeddings > 0 && max_len > cfg.max_position_embeddings) {
    return Fail(2, fmt::format("--max-model-len {} exceeds the model's max_position_embeddings {}",
                               max_len, cfg.max_position_embeddings));
  }
  const engine::KvCacheLayout one = (*model)->MakeKvLayout(f.block_size, 1);
  engine::EngineOptions eo;
  eo.block_size = f.block_size;
  eo.num_kv_blocks = f.num_kv_blocks > 0 ? f.num_kv_blocks : DefaultNumBlocks(f, one, max_len);
  eo.max_num_seqs = f.max_num_seqs;
  eo.max_num_batched_tokens = f.max_num_batched_tokens;
  eo.max_model_len = max_len;
  eo.enable_prefix_caching = !f.no_prefix_caching;

  // SIGINT/SIGTERM only set a flag (threads started by libraries before main, such as
  // OpenBLAS's, may receive them); the loop below polls it.
  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const std::string served_name = f.served_model_name.empty() ? f.model_dir : f.served_model_name;
  std::shared_ptr<const engine::Tokenizer> tok(std::move(tokenizer).value());
  auto eng = engine::LlmEngine::Create(std::move(model).value(), tok, eo);
  if (!eng.ok()) return Fail(1, eng.status().ToString());
  if (kv_config) {
    // The engine owns the connector from here; it stops it before its KV cache goes.
    auto conn = connector::CreateKvConnector(*kv_config, {f.host, served_name});
    Status st = conn.ok() ? (*eng)->AttachKvConnector(std::move(conn).value()) : conn.status();
    if (!st.ok()) return Fail(1, "starting the KV connector: " + st.ToString());
  }
  if (Status st = (*eng)->Start(); !st.ok()) return Fail(1, st.ToString());

  server::OpenAiServerOptions so;
  so.host = f.host;
  so.port = f.port;
  so.served_model_name = served_name;
  so.api_key = f.api_key;
  so.default_seed = f.seed;
  auto srv = server::OpenAiServer::Create(so, eng->get());
  if (!srv.ok()) return Fail(1, srv.status().ToString());
  if (Status st = (*srv)->Start(); !st.ok()) return Fail(1, st.ToString());
  FERRY_LOG_INFO(
      "engine: {} KV blocks x {} tokens ({:.1f} MiB), max_model_len {}, "
      "max_num_seqs {}",
      eo.num_kv_blocks, eo.block_size,
      static_cast<double>((*eng)->kv_cache().size_bytes()) / (1 << 20), (*eng)->max_model_len(),
      eo.max_num_seqs);

  int exit_code = 0;
  while (g_stop_signal == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!(*eng)->alive()) {
      FERRY_LOG_ERROR("the engine thread stopped; shutting down");
      exit_code = 1;
      break;
    }
  }
  if (g_stop_signal != 0)
    FERRY_LOG_INFO("signal {}: shutting down", static_cast<int>(g_stop_signal));
  (*srv)->Stop();
  (*eng)->Stop();  // also stops the KV connector
  return exit_code;
}

}  // namespace
}  // namespace ferry::cli

FERRY_REGISTER_COMMAND(
    serve, "serve", "Serves a model with an OpenAI-compatible HTTP API",
    [](CLI::App& cmd) -> ferry::cli::Runner {
      auto f = std::make_shared<ferry::cli::ServeFlags>();
      cmd.add_option(
             "model", f->model_dir,
             "HF-format model directory, or a repo id (org/name) in the local Hugging Face cache")
          ->required();
      cmd.add_option("--host", f->host, "Listen address (default: all interfaces, as vllm serve)")
          ->capture_default_str();
      cmd.add_option("--port", f->port, "Listen port")
          ->check(CLI::Range(0, 65535))
          ->capture_default_str();
      cmd.add_option("--max-model-len", f->max_model_len,
                     "Prompt + output tokens per request (default: model's)")
          ->check(CLI::NonNegativeNumber);
      cmd.add_option("--block-size", f->block_size, "Tokens per KV block")
          ->check(CLI::Range(1, 1024))
          ->capture_default_str();
      cmd.add_option("--num-kv-blocks", f->num_kv_blocks,
                     "KV blocks (default: from --kv-cache-memory-mb)")
          ->check(CLI::NonNegativeNumber);
      cmd.add_option("--kv-cache-memory-mb", f->kv_cache_memory_mb,
                     "KV memory budget when --num-kv-blocks is not given")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str();
      cmd.add_option("--max-num-seqs", f->max_num_seqs, "Running requests at most")
          ->check(CLI::Range(1, 4096))
          ->capture_default_str();
      cmd.add_option("--max-num-batched-tokens", f->max_num_batched_tokens,
                     "Tokens per forward pass")
          ->check(CLI::Range(1, 1 << 20))
          ->capture_default_str();
      cmd.add_option("--served-model-name", f->served_model_name,
                     "Model name in the API (default: MODEL as given)");
      cmd.add_option("--threads", f->threads, "Threads for matrix work")
          ->check(CLI::Range(1, 256))
          ->capture_default_str();
      cmd.add_option("--dtype", f->dtype,
                     "Weight storage: auto or float32 (float32), bfloat16 (half the memory; "
                     "compute stays float32)")
          ->check(CLI::IsMember({"auto", "float32", "float", "bfloat16"}))
          ->capture_default_str();
      cmd.add_option("--kv-transfer-config", f->kv_transfer_config,
                     "KV connector config (JSON, as in vLLM): MooncakeConnector (P2P "
                     "disaggregation), MooncakeStoreConnector (KV pool, MOONCAKE_CONFIG_PATH) "
                     "or MultiConnector");
      cmd.add_flag("--no-enable-prefix-caching", f->no_prefix_caching, "Turn the prefix cache off");
      cmd.add_flag("--enable-prefix-caching", f->enable_prefix_caching,
                   "Keep the prefix cache on (the default)");
      cmd.add_option("--api-key", f->api_key,
                     "Require \"Authorization: Bearer KEY\" on /v1/* (default: $VLLM_API_KEY; "
                     "/health and /metrics stay open)");
      // `-tp` is rewritten to this by RunMain (CLI11 has no multi-letter short flags).
      cmd.add_option("--tensor-parallel-size", f->tensor_parallel_size,
                     "Only 1 (also -tp): Ferry has no tensor parallelism")
          ->check(CLI::PositiveNumber)
          ->capture_default_str();
      cmd.add_option("--gpu-memory-utilization", f->gpu_memory_utilization,
                     "Share (0, 1] of --kv-cache-memory-mb given to the KV cache");
      cmd.add_flag("--trust-remote-code", f->trust_remote_code,
                   "Accepted; Ferry runs no code from the model repo");
      cmd.add_option_function<uint64_t>(
          "--seed", [f](const uint64_t& seed) { f->seed = seed; },
          "Seed of sampling requests that give none");
      cmd.add_flag("--disable-log-requests", f->disable_log_requests,
                   "Accepted; Ferry does not log requests one by one");
      cmd.add_option("--uvicorn-log-level", f->uvicorn_log_level,
                     "Log level of the HTTP layer (Ferry's log level)")
          ->check(CLI::IsMember({"critical", "error", "warning", "info", "debug", "trace"}));
      return [f] { return ferry::cli::RunServe(*f); };
    });
