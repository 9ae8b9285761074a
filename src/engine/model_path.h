// ResolveModelPath: where `ferry serve MODEL` finds MODEL, as vLLM users expect.
//
// Example:
//   FERRY_ASSIGN_OR_RETURN(std::string dir, ResolveModelPath("Qwen/Qwen2.5-0.5B-Instruct"));
//
// 1. An existing directory is used as is.
// 2. A Hugging Face repo id ("org/name" or "name") is looked up in the local HF hub cache,
//    the one `huggingface-cli download` fills: $HF_HUB_CACHE, else $HF_HOME/hub, else
//    ~/.cache/huggingface/hub (XDG_CACHE_HOME honoured), directory
//    models--org--name/snapshots/<revision>, where <revision> is the commit refs/main names
//    or, without refs/main, the only or newest snapshot. Ferry never downloads.
//
// Errors: NotFound naming every place looked at and how to get the model there.
#pragma once

#include <string>

#include "ferry/status.h"

namespace ferry::engine {

Result<std::string> ResolveModelPath(const std::string& model);

}  // namespace ferry::engine
