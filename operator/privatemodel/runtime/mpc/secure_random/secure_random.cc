// Cryptographically secure random TensorFlow ops for tf-encrypted.
//
// Implements what tf_encrypted/operations/secure_random/secure_random.py calls:
//   secure_seeded_random_uniform(shape, seed, minval, maxval)
//   secure_random_uniform(shape, minval, maxval)
//   secure_seed()
// for int8/int16/int32/int64; and, since it draws on the same seeded streams, one share holder's
// part of SecureNN's PrivateCompare (private_compare.py):
//   secure_nn_bit_shares(values, seed, prime)
//   secure_nn_comparison_terms(bits, c, beta, mask_seed, order_seed, prime, first)
// The i128 variants are left out: the project only uses tf-encrypted's int64 tensor factory.
//
// Randomness comes from libsodium: randombytes_buf (the OS CSPRNG) for fresh
// values and seeds; a ChaCha20 keystream keyed by the seed for seeded values, so
// the same seed always expands to the same tensor. Integers in [minval, maxval)
// are drawn by rejection sampling, so there is no modulo bias.

#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>
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

  // The unread bytes (refilling first when there are none; nullptr if the source ran out), for
  // samplers that take a byte at a time: reading them then Skip(n) is n calls of Next<uint8_t>.
  const unsigned char* Bytes(size_t* available) {
    if (position_ == sizeof buffer_) {
      if (!source_->Fill(buffer_, sizeof buffer_)) return nullptr;
      position_ = 0;
    }
    *available = sizeof buffer_ - position_;
    return buffer_ + position_;
  }
  void Skip(size_t bytes) { position_ += bytes; }

 private:
  static constexpr size_t kBufferBytes = 64 * kChaChaBlockBytes;
  ByteSource* source_;
  unsigned char buffer_[kBufferBytes];
  size_t position_ = kBufferBytes;
};

// Marks a rejected byte in the byte samplers' tables (no one-byte value is below -128).
constexpr int16_t kRejected = -1000;

// Fills out[0 .. count) from the byte stream, one byte per try: accept(byte, index, &value) says
// whether the byte gives out[index]. Two ways through the bytes, giving the same values:
// - byte by byte, branch-free: for samplers that reject often (acceptance is random);
// - kRunsOfAccepted, for samplers whose test depends on the index (as Fisher-Yates' range does)
//   and that accept most bytes: each run of bytes is tried as if all were accepted, up to the
//   first rejected one, after which the next byte tries the same index again. The index is then
//   out of the dependency from one byte to the next (through a multiply and a table): the row's
//   shuffle got several times faster.
template <bool kRunsOfAccepted, typename ByteSource, typename T, typename Accept>
inline bool DrawBytes(WordReader<ByteSource>* reader, int64_t count, Accept accept, T* out) {
  int64_t done = 0;
  while (done < count) {
    size_t available;
    const unsigned char* bytes = reader->Bytes(&available);
    if (bytes == nullptr) return false;
    size_t used = 0;
    if constexpr (kRunsOfAccepted) {
      while (used < available && done < count) {
        const int64_t run = std::min<int64_t>(static_cast<int64_t>(available - used), count - done);
        int64_t accepted = 0;
        while (accepted < run && accept(bytes[used + accepted], done + accepted, &out[done + accepted])) ++accepted;
        done += accepted;
        used += accepted + (accepted < run ? 1 : 0);  // and the rejected byte, if the run ended on one
      }
    } else {
      while (used < available && done < count) done += accept(bytes[used++], done, &out[done]);
    }
    reader->Skip(used);
  }
  return true;
}

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
  if constexpr (sizeof(Word) == 1) {
    // The same values, a byte at a time through a table: a division per value was most of the cost.
    int16_t table[256];
    for (uint32_t word = 0; word < 256; ++word)
      table[word] = word < first_accepted ? kRejected
                                          : static_cast<T>(static_cast<Word>(static_cast<Word>(minval) + word % range));
    return DrawBytes<false>(reader, count, [&](uint8_t byte, int64_t, T* value) {
      *value = static_cast<T>(table[byte]);
      return table[byte] != kRejected;
    }, out);
  }
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

// An integer uniform in [0, range), 1 <= range <= 256, from one byte: Lemire's multiply and reject
// (a byte b maps to b * range / 256; the low byte of the product rejects exactly the 256 mod range
// values that would bias it). `threshold` is 256 mod range. False: rejected, draw another byte.
inline bool BoundedByte(uint8_t byte, uint32_t range, uint32_t threshold, uint32_t* out) {
  const uint32_t product = uint32_t{byte} * range;
  *out = product >> 8;
  return (product & 0xFF) >= threshold;
}

// One share holder's part of SecureNN's PrivateCompare (Wagh et al., Algorithm 3), in one pass.
// For each element: the terms c_i over bit positions i, computed from this holder's shares of the
// bits of server2's mask r, the public value c and the public bit beta; times a nonzero mask and
// permuted, both expanded from seeds the two holders share and server2 does not know. Server2 adds
// the two holders' rows: the sum is zero at one position at most, and where is random.
class ComparisonTermsOp : public SodiumOpKernel {
 public:
  explicit ComparisonTermsOp(OpKernelConstruction* context) : SodiumOpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("prime", &prime_));
    OP_REQUIRES_OK(context, context->GetAttr("first", &first_));
    // Below 128, as for BitSharesOp: server2 adds two terms in uint8 (private_compare.has_zero).
    OP_REQUIRES(context, prime_ > 2 && prime_ < 128,
                errors::InvalidArgument("prime must lie in (2, 128), got ", prime_));
    // Products modulo the prime, looked up: no division in the inner loop.
    times_.resize(prime_ * prime_);
    for (int64_t a = 0; a < prime_; ++a)
      for (int64_t b = 0; b < prime_; ++b) times_[a * prime_ + b] = static_cast<uint8_t>((a * b) % prime_);
    offset_ = static_cast<int32_t>((kTermBound / prime_ + 1) * prime_);
    magic_ = (uint64_t{1} << 32) / static_cast<uint64_t>(prime_) + 1;
    // Exact over the whole range (checked once here, not argued): the shifted values stay < 2^16.
    for (int32_t value = -kTermBound; value <= kTermBound; ++value) {
      const int32_t expected = ((value % static_cast<int32_t>(prime_)) + static_cast<int32_t>(prime_)) % static_cast<int32_t>(prime_);
      OP_REQUIRES(context, Modulo(value) == expected,
                  errors::Internal("modular reduction is wrong for ", value, " mod ", prime_));
    }
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& bits = context->input(0);
    const Tensor& c = context->input(1);
    const Tensor& beta = context->input(2);
    OP_REQUIRES(context, bits.dims() >= 1 && bits.dim_size(bits.dims() - 1) >= 1 &&
                             bits.dim_size(bits.dims() - 1) <= 64,
                errors::InvalidArgument("bits must have 1 to 64 positions, got shape ",
                                        bits.shape().DebugString()));
    const int64_t length = bits.dim_size(bits.dims() - 1);
    const int64_t rows = bits.NumElements() / length;
    OP_REQUIRES(context, c.NumElements() == rows && beta.NumElements() == rows,
                errors::InvalidArgument("c and beta need one value per row of bits: ", rows,
                                        " rows, got ", c.NumElements(), " and ",
                                        beta.NumElements()));
    for (int seed_input : {3, 4}) {
      const Tensor& seed = context->input(seed_input);
      OP_REQUIRES(context, seed.dims() == 1 && seed.NumElements() == kSeedWords,
                  errors::InvalidArgument("seeds must be int32 vectors of shape [", kSeedWords,
                                          "], got shape ", seed.shape().DebugString()));
    }
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, bits.shape(), &output));

    const uint8_t* bit_shares = bits.flat<uint8_t>().data();
    const int64_t* c_values = c.flat<int64_t>().data();
    const int64_t* beta_values = beta.flat<int64_t>().data();
    uint8_t* out = output->flat<uint8_t>().data();
    SeededBytes mask_source(reinterpret_cast<const unsigned char*>(context->input(3).flat<int32_t>().data()));
    SeededBytes order_source(reinterpret_cast<const unsigned char*>(context->input(4).flat<int32_t>().data()));
    WordReader<SeededBytes> masks(&mask_source);
    WordReader<SeededBytes> orders(&order_source);
    const int32_t p = static_cast<int32_t>(prime_);
    const int32_t public_part = first_ ? 1 : 0;  // public terms go to the first holder's share
    const uint32_t mask_range = static_cast<uint32_t>(p - 1);  // masks are 1 .. p-1
    const uint32_t mask_threshold = 256 % mask_range;
    uint32_t swap_threshold[65];
    for (uint32_t range = 1; range <= 64; ++range) swap_threshold[range] = 256 % range;
    uint8_t terms[64];
    uint32_t mask[64], swap_with[64];

    for (int64_t row = 0; row < rows; ++row, bit_shares += length, out += length) {
      const int32_t beta_bit = static_cast<int32_t>(beta_values[row] & 1);
      // s = c + beta, wrapping in c's 64-bit ring as tf-encrypted's r + 1 does.
      const uint64_t s = static_cast<uint64_t>(c_values[row]) + static_cast<uint64_t>(beta_bit);
      const int32_t sign = 1 - 2 * beta_bit;
      if (beta_bit == 1 && s == 0) {
        // c was 2^64 - 1: the answer is known; the row [0, 1, 1, ...] holds its single zero.
        for (int64_t i = 0; i < length; ++i) terms[i] = static_cast<uint8_t>(public_part * (i == 0 ? 0 : 1));
      } else {
        // w_above: the sum over higher positions of (r_i XOR s_i), on shares, reduced only at the
        // end of each term (|sum| < kTermBound for any input bytes).
        int32_t w_above = 0;
        for (int64_t i = length - 1; i >= 0; --i) {
          const int32_t s_bit = static_cast<int32_t>((s >> i) & 1);
          const int32_t x = bit_shares[i];
          terms[i] = Modulo((public_part * s_bit - x) * sign + public_part + w_above);
          w_above += x + s_bit * (public_part - 2 * x);
        }
      }
      // Times a nonzero mask each (1 .. p-1).
      OP_REQUIRES(context, DrawBytes<false>(&masks, length, [&](uint8_t byte, int64_t, uint32_t* drawn) {
        return BoundedByte(byte, mask_range, mask_threshold, drawn);
      }, mask), Exhausted());
      for (int64_t i = 0; i < length; ++i) terms[i] = times_[terms[i] * prime_ + mask[i] + 1];
      // Fisher-Yates: a uniformly random order of this row's positions. Draw k picks which
      // position at or below length-1-k that one swaps with.
      OP_REQUIRES(context, DrawBytes<true>(&orders, length - 1, [&](uint8_t byte, int64_t k, uint32_t* drawn) {
        const uint32_t range = static_cast<uint32_t>(length - k);
        return BoundedByte(byte, range, swap_threshold[range], drawn);
      }, swap_with), Exhausted());
      for (int64_t k = 0; k + 1 < length; ++k) std::swap(terms[length - 1 - k], terms[swap_with[k]]);
      std::memcpy(out, terms, length);
    }
  }

 private:
  // Bounds every term before reduction, whatever the input bytes: 64 positions adding at most 255
  // each in absolute value, plus the position's own part.
  static constexpr int32_t kTermBound = 65 * 256;

  // value mod p for |value| < kTermBound, by a multiply and a shift (no division in the loop).
  uint8_t Modulo(int32_t value) const {
    const uint32_t shifted = static_cast<uint32_t>(value + offset_);
    const uint32_t quotient = static_cast<uint32_t>((uint64_t{shifted} * magic_) >> 32);
    return static_cast<uint8_t>(shifted - quotient * static_cast<uint32_t>(prime_));
  }

  static Status Exhausted() {
    return errors::ResourceExhausted("a seed expands to at most 256 GiB of random bytes");
  }

  int64_t prime_;
  bool first_;
  std::vector<uint8_t> times_;  // times_[a * prime_ + b] = a * b mod prime_
  int32_t offset_;              // a multiple of prime_ that makes every term nonnegative
  uint64_t magic_;              // floor(2^32 / prime_) + 1
};

// server2's hand-out of its mask's bits in SecureNN's LSB protocol: for each value r, the share
// (bit_i(r) - u_i) mod prime of each of its 64 bits, low bit first, where u is what
// SecureSeededRandomUniform(int8, [0, prime)) expands from `seed`: the other holder's share.
class BitSharesOp : public SodiumOpKernel {
 public:
  explicit BitSharesOp(OpKernelConstruction* context) : SodiumOpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("prime", &prime_));
    OP_REQUIRES(context, prime_ > 2 && prime_ < 128,
                errors::InvalidArgument("prime must lie in (2, 128), got ", prime_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& values = context->input(0);
    const Tensor& seed = context->input(1);
    OP_REQUIRES(context, seed.dims() == 1 && seed.NumElements() == kSeedWords,
                errors::InvalidArgument("seed must be an int32 vector of shape [", kSeedWords,
                                        "], got shape ", seed.shape().DebugString()));
    TensorShape shape = values.shape();
    shape.AddDim(64);
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &output));
    const int64_t* r = values.flat<int64_t>().data();
    uint8_t* out = output->flat<uint8_t>().data();
    SeededBytes source(reinterpret_cast<const unsigned char*>(seed.flat<int32_t>().data()));
    WordReader<SeededBytes> reader(&source);
    const int8_t p = static_cast<int8_t>(prime_);
    // The other halves first, in the output (the same stream as drawing them bit by bit), then
    // each bit minus its other half, in place.
    int8_t* other = reinterpret_cast<int8_t*>(out);
    OP_REQUIRES(context, SampleUniform(&reader, int8_t{0}, p, other, output->NumElements()),
                errors::ResourceExhausted("a seed expands to at most 256 GiB of random bytes"));
    for (int64_t n = 0; n < values.NumElements(); ++n) {
      const uint64_t value = static_cast<uint64_t>(r[n]);
      for (int bit = 0; bit < 64; ++bit, ++out) {
        const int32_t share = static_cast<int32_t>((value >> bit) & 1) - static_cast<int32_t>(other[n * 64 + bit]);
        *out = static_cast<uint8_t>(share < 0 ? share + p : share);
      }
    }
  }

 private:
  int64_t prime_;
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

REGISTER_OP("SecureNNComparisonTerms")
    .Input("bits: uint8")
    .Input("c: int64")
    .Input("beta: int64")
    .Input("mask_seed: int32")
    .Input("order_seed: int32")
    .Output("output: uint8")
    .Attr("prime: int")
    .Attr("first: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return ::tensorflow::OkStatus();
    })
    .Doc("One share holder's masked, permuted PrivateCompare terms (SecureNN, Algorithm 3).");

REGISTER_OP("SecureNNBitShares")
    .Input("values: int64")
    .Input("seed: int32")
    .Output("output: uint8")
    .Attr("prime: int")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle output;
      TF_RETURN_IF_ERROR(c->Concatenate(c->input(0), c->Vector(64), &output));
      c->set_output(0, output);
      return ::tensorflow::OkStatus();
    })
    .Doc("One holder's shares modulo prime of each value's 64 bits; the other's expand from seed.");

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
REGISTER_KERNEL_BUILDER(Name("SecureNNComparisonTerms").Device(DEVICE_CPU), ComparisonTermsOp);
REGISTER_KERNEL_BUILDER(Name("SecureNNBitShares").Device(DEVICE_CPU), BitSharesOp);
