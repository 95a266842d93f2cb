// Cryptographically secure random TensorFlow ops for tf-encrypted.
//
// Implements what tf_encrypted/operations/secure_random/secure_random.py calls:
//   secure_seeded_random_uniform(shape, seed, minval, maxval)
//   secure_random_uniform(shape, minval, maxval)
//   secure_seed()
// for int8/int16/int32/int64. The i128 variants are left out: the project only
// uses tf-encrypted's int64 tensor factory.
//
// Randomness comes from libsodium: randombytes_buf (the OS CSPRNG) for fresh
// values and seeds; a ChaCha20 keystream keyed by the seed for seeded values, so
// the same seed always expands to the same tensor. Integers in [minval, maxval)
// are drawn by rejection sampling, so there is no modulo bias.

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor_util.h"

#ifndef PRIVATEMODEL_TENSORFLOW_VERSION
#error "build with: python -m privatemodel.runtime.secure_random.build"
#endif

// Lets build.py tell which TensorFlow this library was built for without loading it.
extern "C" __attribute__((used, visibility("default"))) const char privatemodel_built_for[] =
    "privatemodel-secure-random-built-for-tensorflow=" PRIVATEMODEL_TENSORFLOW_VERSION;

namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::TensorShapeUtils;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;
namespace errors = ::tensorflow::errors;

// A seed is a 256-bit ChaCha20 key, carried as int32[8] as tf-encrypted expects.
constexpr int kSeedWords = 8;
static_assert(kSeedWords * sizeof(int32_t) == crypto_stream_chacha20_ietf_KEYBYTES,
              "a seed must be exactly one ChaCha20 key");

constexpr size_t kChaChaBlockBytes = 64;
// ChaCha20-IETF has a 32-bit block counter: one seed expands to at most 2^32 blocks.
constexpr uint64_t kChaChaMaxBlocks = uint64_t{1} << 32;
// The seed is the whole key: a fixed nonce is fine, as one seed is meant to give one stream.
constexpr unsigned char kNonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {
    'p', 'r', 'i', 'v', 'a', 't', 'e', 'm', 'o', 'd', 'e', 'l'};

// Fresh bytes from the operating system's CSPRNG.
class SystemBytes {
 public:
  bool Fill(unsigned char* buffer, size_t length) {
    randombytes_buf(buffer, length);
    return true;
  }
};

// The ChaCha20 keystream under a seed, continued across calls.
class SeededBytes {
 public:
  explicit SeededBytes(const unsigned char* seed) { std::memcpy(key_, seed, sizeof key_); }
  ~SeededBytes() { sodium_memzero(key_, sizeof key_); }

  // `length` must be a multiple of the ChaCha20 block size so calls join seamlessly.
  bool Fill(unsigned char* buffer, size_t length) {
    const uint64_t blocks = length / kChaChaBlockBytes;
    if (next_block_ + blocks > kChaChaMaxBlocks) return false;
    std::memset(buffer, 0, length);
    crypto_stream_chacha20_ietf_xor_ic(buffer, buffer, length, kNonce,
                                       static_cast<uint32_t>(next_block_), key_);
    next_block_ += blocks;
    return true;
  }

 private:
  unsigned char key_[crypto_stream_chacha20_ietf_KEYBYTES];
  uint64_t next_block_ = 0;
};

// Hands out fixed-size words from a byte source, refilling a buffer as needed.
template <typename ByteSource>
class WordReader {
 public:
  explicit WordReader(ByteSource* source) : source_(source) {}
  ~WordReader() { sodium_memzero(buffer_, sizeof buffer_); }

  template <typename Word>
  bool Next(Word* word) {
    if (position_ + sizeof(Word) > sizeof buffer_) {
      if (!source_->Fill(buffer_, sizeof buffer_)) return false;
      position_ = 0;
    }
    std::memcpy(word, buffer_ + position_, sizeof(Word));
    position_ += sizeof(Word);
    return true;
  }

 private:
  static constexpr size_t kBufferBytes = 64 * kChaChaBlockBytes;
  ByteSource* source_;
  unsigned char buffer_[kBufferBytes];
  size_t position_ = kBufferBytes;
};

// Fills `out` with integers uniform in [minval, maxval); requires minval < maxval.
// Works in the unsigned type of the same width so full-range bounds (where
// maxval - minval overflows the signed type) are exact. Returns false only if
// the byte source runs out.
template <typename T, typename ByteSource>
bool SampleUniform(WordReader<ByteSource>* reader, T minval, T maxval, T* out, int64_t count) {
  using Word = typename std::make_unsigned<T>::type;
  const Word range = static_cast<Word>(static_cast<Word>(maxval) - static_cast<Word>(minval));
  // 2^bits mod range: accepting only words at or above it leaves a multiple of
  // `range` equally likely words, so `word % range` is exactly uniform.
  const Word first_accepted = static_cast<Word>(static_cast<Word>(Word{0} - range) % range);
  for (int64_t i = 0; i < count; ++i) {
    Word word;
    do {
      if (!reader->Next(&word)) return false;
    } while (word < first_accepted);
    out[i] = static_cast<T>(static_cast<Word>(static_cast<Word>(minval) + word % range));
  }
  return true;
}

// Reads the output shape and bounds shared by both uniform ops.
template <typename T>
Status ReadUniformArguments(const Tensor& shape_tensor, const Tensor& minval_tensor,
                            const Tensor& maxval_tensor, TensorShape* shape, T* minval,
                            T* maxval) {
  TF_RETURN_IF_ERROR(::tensorflow::tensor::MakeShape(shape_tensor, shape));
  if (!TensorShapeUtils::IsScalar(minval_tensor.shape())) {
    return errors::InvalidArgument("minval must be a scalar, got shape ",
                                   minval_tensor.shape().DebugString());
  }
  if (!TensorShapeUtils::IsScalar(maxval_tensor.shape())) {
    return errors::InvalidArgument("maxval must be a scalar, got shape ",
                                   maxval_tensor.shape().DebugString());
  }
  *minval = minval_tensor.scalar<T>()();
  *maxval = maxval_tensor.scalar<T>()();
  if (!(*minval < *maxval)) {
    // Widened so int8 bounds print as numbers, not characters.
    return errors::InvalidArgument("need minval < maxval, got minval=",
                                   static_cast<int64_t>(*minval),
                                   " maxval=", static_cast<int64_t>(*maxval));
  }
  return ::tensorflow::OkStatus();
}

class SodiumOpKernel : public OpKernel {
 public:
  explicit SodiumOpKernel(OpKernelConstruction* context) : OpKernel(context) {
    // sodium_init is idempotent and thread-safe; -1 means no usable entropy source.
    OP_REQUIRES(context, sodium_init() >= 0,
                errors::Internal("libsodium failed to initialize; no secure randomness available"));
  }
};

template <typename T>
class SecureSeededRandomUniformOp : public SodiumOpKernel {
 public:
  using SodiumOpKernel::SodiumOpKernel;

  void Compute(OpKernelContext* context) override {
    const Tensor& seed = context->input(1);
    OP_REQUIRES(context, seed.dims() == 1 && seed.NumElements() == kSeedWords,
                errors::InvalidArgument("seed must be an int32 vector of shape [", kSeedWords,
                                        "], got shape ", seed.shape().DebugString()));
    TensorShape shape;
    T minval, maxval;
    OP_REQUIRES_OK(context, ReadUniformArguments(context->input(0), context->input(2),
                                                 context->input(3), &shape, &minval, &maxval));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &output));

    // One sequential stream per seed: rejections make the stream position of
    // each element depend on all before it, which is what keeps it reproducible.
    SeededBytes source(reinterpret_cast<const unsigned char*>(seed.flat<int32_t>().data()));
    WordReader<SeededBytes> reader(&source);
    OP_REQUIRES(context,
                SampleUniform(&reader, minval, maxval, output->flat<T>().data(),
                              output->NumElements()),
                errors::ResourceExhausted("a seed expands to at most 256 GiB of random bytes"));
  }
};

template <typename T>
class SecureRandomUniformOp : public SodiumOpKernel {
 public:
  using SodiumOpKernel::SodiumOpKernel;

  void Compute(OpKernelContext* context) override {
    TensorShape shape;
    T minval, maxval;
    OP_REQUIRES_OK(context, ReadUniformArguments(context->input(0), context->input(1),
                                                 context->input(2), &shape, &minval, &maxval));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &output));

    SystemBytes source;
    WordReader<SystemBytes> reader(&source);
    // The system source never runs out, so the result needs no check.
    SampleUniform(&reader, minval, maxval, output->flat<T>().data(), output->NumElements());
  }
};

class SecureSeedOp : public SodiumOpKernel {
 public:
  using SodiumOpKernel::SodiumOpKernel;

  void Compute(OpKernelContext* context) override {
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({kSeedWords}), &output));
    randombytes_buf(output->flat<int32_t>().data(), kSeedWords * sizeof(int32_t));
  }
};

Status ScalarBounds(InferenceContext* c, int minval_index) {
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(minval_index), 0, &unused));
  return c->WithRank(c->input(minval_index + 1), 0, &unused);
}

Status OutputShapeFromShapeInput(InferenceContext* c) {
  ShapeHandle output;
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(0, &output));
  c->set_output(0, output);
  return ::tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("SecureSeededRandomUniform")
    .Input("shape: T")
    .Input("seed: int32")
    .Input("minval: dtype")
    .Input("maxval: dtype")
    .Output("output: dtype")
    .Attr("dtype: {int8, int16, int32, int64}")
    .Attr("T: {int32, int64}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle seed;
      DimensionHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &seed));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(seed, 0), kSeedWords, &unused));
      TF_RETURN_IF_ERROR(ScalarBounds(c, 2));
      return OutputShapeFromShapeInput(c);
    })
    .Doc("Integers uniform in [minval, maxval), expanded deterministically from a 256-bit seed.");

REGISTER_OP("SecureRandomUniform")
    .Input("shape: T")
    .Input("minval: dtype")
    .Input("maxval: dtype")
    .Output("output: dtype")
    .Attr("dtype: {int8, int16, int32, int64}")
    .Attr("T: {int32, int64}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarBounds(c, 1));
      return OutputShapeFromShapeInput(c);
    })
    .Doc("Integers uniform in [minval, maxval) from the operating system's CSPRNG.");

REGISTER_OP("SecureSeed")
    .Output("output: int32")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(kSeedWords));
      return ::tensorflow::OkStatus();
    })
    .Doc("A fresh 256-bit seed for SecureSeededRandomUniform, as int32[8].");

#define REGISTER_UNIFORM_KERNELS(T)                                                          \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("SecureSeededRandomUniform").Device(DEVICE_CPU).TypeConstraint<T>("dtype"),       \
      SecureSeededRandomUniformOp<T>);                                                       \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("SecureRandomUniform").Device(DEVICE_CPU).TypeConstraint<T>("dtype"),             \
      SecureRandomUniformOp<T>)

REGISTER_UNIFORM_KERNELS(int8_t);
REGISTER_UNIFORM_KERNELS(int16_t);
REGISTER_UNIFORM_KERNELS(int32_t);
REGISTER_UNIFORM_KERNELS(int64_t);

REGISTER_KERNEL_BUILDER(Name("SecureSeed").Device(DEVICE_CPU), SecureSeedOp);
