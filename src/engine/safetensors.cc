#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/unique_fd.h"

namespace ferry::engine {

using json = nlohmann::json;

// A read-only mapping of a whole file. Unmapped on destruction.
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, "open " + path);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "stat " + path);
    auto f = std::unique_ptr<MappedFile>(new MappedFile());
    f->path_ = path;
    f->size_ = static_cast<size_t>(st.st_size);
    if (f->size_ > 0) {
      void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
      if (p == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path);
      f->data_ = static_cast<const uint8_t*>(p);
    }
    return f;
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200 : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into exp: ok
  return static_cast<uint16_t>(half);
}

namespace {

Result<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return InvalidArgumentError("dtype " + s + " is not supported (F32, F16, BF16 are)");
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

SafetensorsReader::~SafetensorsReader() = default;

Status SafetensorsReader::AddFile(const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  auto bad = [&](const std::string& what) { return InvalidArgumentError(path + ": " + what); };
  if (file->size() < 8) return bad("file is shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file->data()[i];
  if (header_len > file->size() - 8) {
    return bad("header length " + std::to_string(header_len) + " runs past the end of the " +
               std::to_string(file->size()) + "-byte file (truncated?)");
  }
  const char* hbegin = reinterpret_cast<const char*>(file->data() + 8);
  json header = json::parse(hbegin, hbegin + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return bad("header is not a JSON object");
  const size_t data_start = 8 + header_len;
  const size_t data_len = file->size() - data_start;
  const bool first = files_.empty();
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return bad("__metadata__ is not an object");
      if (first) {
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
        }
      }
      continue;
    }
    auto tbad = [&](const std::string& what) { return bad("tensor " + name + ": " + what); };
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") ||
        !v["shape"].is_array() || !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2) {
      return tbad("entry needs dtype, shape and data_offsets [begin, end]");
    }
    TensorView t;
    t.name = name;
    t.file = path;
    auto dtype = ParseDType(v["dtype"].get<std::string>());
    if (!dtype.ok()) return tbad(dtype.status().message());
    t.dtype = *dtype;
    int64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) return tbad("shape entries must be non-negative integers");
      int64_t dim = d.get<int64_t>();
      if (dim > (int64_t{1} << 40) || (dim > 0 && numel > (int64_t{1} << 40) / dim)) {
        return tbad("shape is implausibly large");
      }
      numel *= dim;
      t.shape.push_back(dim);
    }
    const json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      return tbad("data_offsets must be non-negative integers");
    }
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_len) {
      return tbad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] outside the " + std::to_string(data_len) + " data bytes (truncated file?)");
    }
    if (end - begin != static_cast<uint64_t>(numel) * DTypeSize(t.dtype)) {
      return tbad("data_offsets span " + std::to_string(end - begin) + " bytes but shape and " +
                  DTypeName(t.dtype) + " need " +
                  std::to_string(static_cast<uint64_t>(numel) * DTypeSize(t.dtype)));
    }
    t.data = file->data() + data_start + begin;
    t.nbytes = end - begin;
    if (tensors_.count(name)) return tbad("appears in more than one file");
    tensors_.emplace(name, std::move(t));
  }
  files_.push_back(std::move(file));
  return OkStatus();
}

Result<std::unique_ptr<SafetensorsReader>> SafetensorsReader::OpenFile(const std::string& path) {
  auto r = std::unique_ptr<SafetensorsReader>(new SafetensorsReader());
  FERRY_RETURN_IF_ERROR(r->AddFile(path));
  return r;
}

Result<std::unique_ptr<SafetensorsReader>> SafetensorsReader::OpenDir(const std::string& dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  if (!FileExists(index_path)) {
    if (!FileExists(single_path)) {
      return NotFoundError("no model.safetensors or model.safetensors.index.json in " + dir);
    }
    return OpenFile(single_path);
  }
  std::ifstream in(index_path);
  json index = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return InvalidArgumentError(index_path + ": not JSON with a \"weight_map\" object");
  }
  std::set<std::string> shards;
  std::map<std::string, std::string> weight_map;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return InvalidArgumentError(index_path + ": weight_map[" + it.key() + "] is not a string");
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos) {
      return InvalidArgumentError(index_path + ": shard name " + shard + " has a '/'");
    }
    shards.insert(shard);
    weight_map[it.key()] = shard;
  }
  auto r = std::unique_ptr<SafetensorsReader>(new SafetensorsReader());
  for (const std::string& shard : shards) {
    const std::string path = dir + "/" + shard;
    if (!FileExists(path)) return NotFoundError(index_path + " names missing shard " + path);
    FERRY_RETURN_IF_ERROR(r->AddFile(path));
  }
  for (const auto& [name, shard] : weight_map) {
    const TensorView* t = r->Find(name);
    if (t == nullptr || t->file != dir + "/" + shard) {
      return InvalidArgumentError(index_path + ": tensor " + name + " is not in " + shard);
    }
  }
  return r;
}

const TensorView* SafetensorsReader::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsReader::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors_) names.push_back(name);
  return names;
}

namespace {
// Element i of little-endian 16-bit data.
uint16_t LoadLe16(const uint8_t* data, size_t i) {
  return static_cast<uint16_t>(data[2 * i] | (data[2 * i + 1] << 8));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

Result<const TensorView*> SafetensorsReader::FindShaped(const std::string& name,
                                                        const std::vector<int64_t>& shape) const {
  const TensorView* t = Find(name);
  if (t == nullptr) return NotFoundError("tensor " + name + " not found in the checkpoint");
  if (t->shape != shape) {
    return InvalidArgumentError(t->file + ": tensor " + name + " has shape " +
                                ShapeString(t->shape) + ", expected " + ShapeString(shape));
  }
  return t;
}

Status SafetensorsReader::ReadBF16(const std::string& name, const std::vector<int64_t>& shape,
                                   std::vector<uint16_t>* out) const {
  FERRY_ASSIGN_OR_RETURN(const TensorView* t, FindShaped(name, shape));
  const size_t n = static_cast<size_t>(t->numel());
  out->resize(n);
  uint16_t* dst = out->data();
  switch (t->dtype) {
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, t->data + 4 * i, 4);
        dst[i] = FloatToBf16(f);
      }
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = FloatToBf16(HalfToFloat(LoadLe16(t->data, i)));
      break;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) dst[i] = LoadLe16(t->data, i);
      break;
  }
  return OkStatus();
}

Status SafetensorsReader::ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                                  std::vector<float>* out) const {
  FERRY_ASSIGN_OR_RETURN(const TensorView* t, FindShaped(name, shape));
  const size_t n = static_cast<size_t>(t->numel());
  out->resize(n);
  float* dst = out->data();
  switch (t->dtype) {
    case DType::kF32:
      std::memcpy(dst, t->data, n * 4);
      break;
    case DType::kF16:
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t v = LoadLe16(t->data, i);
        dst[i] = t->dtype == DType::kF16 ? HalfToFloat(v) : Bf16ToFloat(v);
      }
      break;
  }
  return OkStatus();
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    if (numel != static_cast<int64_t>(t.values.size())) {
      return InvalidArgumentError("tensor " + t.name + ": " + std::to_string(t.values.size()) +
                                  " values for shape " + ShapeString(t.shape));
    }
    uint64_t nbytes = static_cast<uint64_t>(numel) * DTypeSize(t.dtype);
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::string bytes;
  bytes.reserve(8 + h.size() + offset);
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((hl >> (8 * i)) & 0xff));
  bytes += h;
  for (const TensorToWrite& t : tensors) {
    for (float v : t.values) {
      if (t.dtype == DType::kF32) {
        char b[4];
        std::memcpy(b, &v, 4);  // x86/ARM little-endian hosts only
        bytes.append(b, 4);
      } else {
        uint16_t u = t.dtype == DType::kBF16 ? FloatToBf16(v) : FloatToHalf(v);
        bytes.push_back(static_cast<char>(u & 0xff));
        bytes.push_back(static_cast<char>(u >> 8));
      }
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ErrnoToStatus(errno, "create " + path);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return ErrnoToStatus(errno, "write " + path);
  return OkStatus();
}

}  // namespace ferry::engine
