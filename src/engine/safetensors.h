// Safetensors: the HF weight file format, read (mmap) and written.
//
// A file is: u64 little-endian N, then N bytes of JSON header, then the data bytes:
//   {"__metadata__": {"format": "pt"},
//    "model.norm.weight": {"dtype": "BF16", "shape": [64], "data_offsets": [0, 128]}, ...}
// Offsets are relative to the start of the data (8 + N). A sharded checkpoint adds
// model.safetensors.index.json: {"weight_map": {"tensor name": "file name", ...}}.
//
//   FERRY_ASSIGN_OR_RETURN(auto st, SafetensorsReader::OpenDir("/models/tiny"));
//   std::vector<float> w;
//   FERRY_RETURN_IF_ERROR(st->ReadF32("model.norm.weight", {64}, &w));
//
// Every offset and shape is validated against the file size when a file is opened:
// a malformed file yields InvalidArgument naming the file (and tensor), never a crash.
// Thread safety: a reader is immutable after OpenDir; const methods are thread-safe.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ferry/status.h"

namespace ferry::engine {

enum class DType { kF32, kF16, kBF16 };

// "F32" | "F16" | "BF16".
const char* DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

// One tensor inside a mapped file. `data` points into the mapping (owned by the reader).
struct TensorView {
  std::string name;
  std::string file;  // path of the file holding it, for error messages
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // nbytes bytes, little-endian elements
  size_t nbytes = 0;

  int64_t numel() const;
};

// Converts one IEEE half / bfloat16 value to float32. bfloat16 is the top half of a
// float32, so its conversion is a shift, inline so that loops over weights vectorize.
float HalfToFloat(uint16_t h);
inline float Bf16ToFloat(uint16_t b) { return std::bit_cast<float>(uint32_t{b} << 16); }
// float32 -> bf16 / f16 with round-to-nearest-even.
uint16_t FloatToBf16(float f);
uint16_t FloatToHalf(float f);

class MappedFile;

// The tensors of a checkpoint directory (one file, or shards named by the index).
class SafetensorsReader {
 public:
  ~SafetensorsReader();

  // Opens `dir`/model.safetensors.index.json if present (and every shard it names),
  // otherwise `dir`/model.safetensors. Errors: NotFound (no weights), InvalidArgument
  // (malformed header, offsets past the end of file, bad dtype, index naming missing files).
  static Result<std::unique_ptr<SafetensorsReader>> OpenDir(const std::string& dir);
  // Opens one .safetensors file.
  static Result<std::unique_ptr<SafetensorsReader>> OpenFile(const std::string& path);

  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Null when absent.
  const TensorView* Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  // The "__metadata__" entries of the first file.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Copies tensor `name` as float32 into *out (resized). `shape` is the expected shape.
  // Errors: NotFound (no such tensor), InvalidArgument (shape differs; names both).
  Status ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                 std::vector<float>* out) const;
  // Same, as bfloat16 bits: BF16 copied, F32 and F16 rounded to nearest even.
  Status ReadBF16(const std::string& name, const std::vector<int64_t>& shape,
                  std::vector<uint16_t>* out) const;

 private:
  SafetensorsReader() = default;
  Status AddFile(const std::string& path);
  // The tensor, if present with this shape (errors as ReadF32).
  Result<const TensorView*> FindShaped(const std::string& name,
                                       const std::vector<int64_t>& shape) const;

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: float32 values converted to `dtype` on write.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major, numel(shape) values
};

// Writes one .safetensors file (header keys sorted, padded with spaces to 8 bytes, data in
// the order given). Deterministic: same inputs => same bytes. Errors: InvalidArgument
// (values/shape mismatch), errno-mapped status on I/O failure.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata);

}  // namespace ferry::engine
