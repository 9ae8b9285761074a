#include "engine/tokenizer_bpe.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ferry::engine {

using json = nlohmann::json;

namespace {

std::optional<std::string> ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tokenizer_config.json writes tokens as "text" or {"content": "text", ...}.
std::string TokenText(const json& j, const char* key) {
  if (!j.contains(key)) return "";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

// The steps of a tokenizer.json component: the `list_key` array of a {"type": "Sequence"},
// or the component itself.
std::vector<json> SequenceSteps(const json& component, const char* list_key) {
  if (component.is_object() && component.value("type", json()) == "Sequence" &&
      component.contains(list_key) && component[list_key].is_array()) {
    return component[list_key].get<std::vector<json>>();
  }
  return {component};
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir) {
  const std::string path = model_dir + "/tokenizer.json";
  auto text = ReadFileText(path);
  if (!text) return NotFoundError("no tokenizer.json in " + model_dir);
  std::string config = ReadFileText(model_dir + "/tokenizer_config.json").value_or("");
  // Newer transformers save the template beside the config; like them, it wins.
  if (auto jinja = ReadFileText(model_dir + "/chat_template.jinja")) {
    json c = config.empty() ? json::object() : json::parse(config, nullptr, false);
    if (c.is_object()) {
      c["chat_template"] = *jinja;
      config = c.dump();
    }
  }
  FERRY_ASSIGN_OR_RETURN(auto tok, BpeTokenizer::Create(*text, config, model_dir));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(std::string_view tokenizer_json,
                                                           std::string_view config_json,
                                                           const std::string& source) {
  const std::string file = source + "/tokenizer.json";
  json j = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError(file + ": not JSON");
  auto tok = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  if (!j.contains("model") || !j["model"].is_object()) {
    return InvalidArgumentError(file + ": no \"model\" object");
  }
  FERRY_RETURN_IF_ERROR(tok->ParseModel(j["model"], file));
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    if (!n.is_object() || n.value("type", json()) != "NFC") {
      return InvalidArgumentError(file + ": normalizer " + n.dump().substr(0, 200) +
                                  " is not supported (null or NFC are)");
    }
    tok->nfc_ = true;
  }
  FERRY_RETURN_IF_ERROR(tok->ParsePreTokenizer(j.value("pre_tokenizer", json()), file));
  if (j.contains("decoder") && !j["decoder"].is_null() &&
      (!j["decoder"].is_object() || j["decoder"].value("type", json()) != "ByteLevel")) {
    return InvalidArgumentError(file + ": decoder " + j["decoder"].dump() +
                                " is not supported (ByteLevel is)");
  }
  // Added tokens: literal matches, ids may lie past the BPE vocabulary.
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string() || a["id"].get<int64_t>() < 0 ||
          a["id"].get<int64_t>() > (1 << 24)) {
        return InvalidArgumentError(file + ": malformed added_tokens entry " + a.dump());
      }
      AddedToken t{a["content"].get<std::string>(), static_cast<int32_t>(a["id"].get<int64_t>()),
                   a.contains("special") && a["special"] == json(true)};
      if (t.content.empty()) continue;
      if (t.id >= static_cast<int32_t>(tok->id_to_token_.size())) {
        tok->id_to_token_.resize(t.id + 1);
        tok->is_added_.resize(t.id + 1, 0);
        tok->is_special_.resize(t.id + 1, 0);
      }
      tok->id_to_token_[t.id] = t.content;
      tok->is_added_[t.id] = 1;
      tok->is_special_[t.id] = t.special ? 1 : 0;
      tok->added_first_byte_[static_cast<unsigned char>(t.content[0])] = 1;
      tok->added_.push_back(std::move(t));
    }
  }
  std::stable_sort(
      tok->added_.begin(), tok->added_.end(),
      [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  FERRY_RETURN_IF_ERROR(tok->ParsePostProcessor(j.value("post_processor", json()), file));
  json config = json::object();
  if (!config_json.empty()) {
    config = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return InvalidArgumentError(source + "/tokenizer_config.json: not a JSON object");
    }
  }
  tok->ParseConfig(config);
  for (size_t id = 0; id < tok->id_to_token_.size(); ++id) {
    const std::string& t = tok->id_to_token_[id];
    const size_t bytes = tok->is_added_[id] ? t.size() : UnicodeToBytes(t).size();
    tok->max_token_bytes_ = std::max(tok->max_token_bytes_, bytes);
  }
  return tok;
}

Status BpeTokenizer::ParseModel(const json& m, const std::string& file) {
  if (m.value("type", json()) != "BPE") {
    return InvalidArgumentError(file + ": model.type " + m.value("type", json()).dump() +
                                " is not supported (BPE is)");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return InvalidArgumentError(file + ": model.vocab is not an object");
  }
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 24)) {
      return InvalidArgumentError(file + ": model.vocab[" + it.key() + "] is not a valid id");
    }
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    vocab_[it.key()] = id;
    if (id >= static_cast<int32_t>(id_to_token_.size())) id_to_token_.resize(id + 1);
    id_to_token_[id] = it.key();
  }
  is_added_.assign(id_to_token_.size(), 0);
  is_special_.assign(id_to_token_.size(), 0);
  if (m.contains("merges") && m["merges"].is_array()) {
    int32_t rank = 0;
    for (const json& mg : m["merges"]) {
      std::string key;
      if (mg.is_string()) {  // "left right"
        key = mg.get<std::string>();
        if (key.find(' ') == std::string::npos) {
          return InvalidArgumentError(file + ": merge \"" + key + "\" has no space");
        }
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        key = mg[0].get<std::string>() + " " + mg[1].get<std::string>();
      } else {
        return InvalidArgumentError(file + ": malformed merge " + mg.dump());
      }
      merge_ranks_.emplace(std::move(key), rank++);
    }
  }
  ignore_merges_ = m.value("ignore_merges", json(false)) == json(true);
  return OkStatus();
}

Status BpeTokenizer::ParsePreTokenizer(const json& pre, const std::string& file) {
  if (pre.is_null()) return OkStatus();
  for (const json& p : SequenceSteps(pre, "pretokenizers")) {
    const json type = p.is_object() ? p.value("type", json()) : json();
    if (type == "ByteLevel") {
      add_prefix_space_ = p.value("add_prefix_space", json(false)) == json(true);
      if (p.value("use_regex", json(true)) == json(true)) {
        FERRY_ASSIGN_OR_RETURN(auto s, RegexSplitter::Create(kGpt2SplitPattern));
        splitters_.push_back(std::move(s));
      }
    } else if (type == "Split") {
      if (p.value("behavior", json()) != "Isolated" ||
          p.value("invert", json(false)) != json(false)) {
        return InvalidArgumentError(file + ": Split pre-tokenizer " + p.dump() +
                                    " is not supported (behavior Isolated, invert false is)");
      }
      const json pat = p.value("pattern", json());
      bool literal = false;
      std::string pattern;
      if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
        pattern = pat["Regex"].get<std::string>();
      } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
        pattern = pat["String"].get<std::string>();
        literal = true;
      } else {
        return InvalidArgumentError(file + ": Split pattern must be {\"Regex\"} or {\"String\"}");
      }
      auto s = RegexSplitter::Create(pattern, literal);
      if (!s.ok()) return s.status().WithContext(file);
      splitters_.push_back(std::move(s).value());
    } else {
      return InvalidArgumentError(file + ": pre_tokenizer " + p.dump().substr(0, 200) +
                                  " is not supported (Split, ByteLevel or a Sequence of them)");
    }
  }
  return OkStatus();
}

Status BpeTokenizer::ParsePostProcessor(const json& post, const std::string& file) {
  if (post.is_null()) return OkStatus();
  for (const json& p : SequenceSteps(post, "processors")) {
    const json type = p.is_object() ? p.value("type", json()) : json();
    if (type == "ByteLevel") continue;  // only adjusts offsets, which Ferry does not report
    if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array()) {
      return InvalidArgumentError(file + ": post_processor " + p.dump().substr(0, 200) +
                                  " is not supported (ByteLevel, TemplateProcessing or a "
                                  "Sequence of them)");
    }
    const json specials = p.value("special_tokens", json::object());
    bool seen_text = false;
    for (const json& item : p["single"]) {
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_text || item["Sequence"].value("id", json()) != "A") {
          return InvalidArgumentError(file + ": post_processor single template " +
                                      p["single"].dump().substr(0, 200) +
                                      " must hold sequence A exactly once");
        }
        seen_text = true;
        continue;
      }
      const json name =
          item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object()
              ? item["SpecialToken"].value("id", json())
              : json();
      if (!name.is_string()) {
        return InvalidArgumentError(file + ": malformed post_processor item " +
                                    item.dump().substr(0, 200));
      }
      std::vector<int32_t> ids;
      const std::string token = name.get<std::string>();
      if (specials.is_object() && specials.contains(token) && specials[token].is_object() &&
          specials[token].contains("ids") && specials[token]["ids"].is_array()) {
        for (const json& id : specials[token]["ids"]) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
              id.get<int64_t>() >= vocab_size()) {
            return InvalidArgumentError(file + ": post_processor token " + token + " has id " +
                                        id.dump() + " outside the vocabulary");
          }
          ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
      } else if (auto id = TokenId(token)) {
        ids.push_back(*id);
      } else {
        return InvalidArgumentError(file + ": post_processor token " + token +
                                    " is not in the vocabulary");
      }
      auto& dst = seen_text ? prompt_suffix_ : prompt_prefix_;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
    if (!seen_text) {
      return InvalidArgumentError(file + ": post_processor single template has no sequence A");
    }
  }
  return OkStatus();
}

void BpeTokenizer::ParseConfig(const json& config) {
  const std::string eos = TokenText(config, "eos_token");
  if (auto id = TokenId(eos); !eos.empty() && id) eos_ids_.push_back(*id);
  std::string chat_template;
  if (config.contains("chat_template")) {
    const json& ct = config["chat_template"];
    if (ct.is_string()) {
      chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const json& e : ct) {
        if (e.is_object() && e.value("name", json()) == "default" && e.contains("template") &&
            e["template"].is_string()) {
          chat_template = e["template"].get<std::string>();
        }
      }
    }
  }
  auto t = ChatTemplate::Detect(chat_template, TokenText(config, "bos_token"));
  if (t.ok()) {
    chat_ = std::move(t).value();
  } else {
    chat_error_ = t.status();
  }
}

std::optional<int32_t> BpeTokenizer::TokenId(std::string_view token) const {
  for (const AddedToken& a : added_) {
    if (a.content == token) return a.id;
  }
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

bool BpeTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(is_special_.size()) && is_special_[id] != 0;
}

Result<std::string> BpeTokenizer::ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                                    bool add_generation_prompt) const {
  if (!chat_) return chat_error_;
  return chat_->Render(messages, add_generation_prompt);
}

}  // namespace ferry::engine
