// Kernel interface of the native runtime: one layer of bit-packed
// multiply-accumulates and the packing of input pixels, for each ISA.
//
// Bit conventions (value +1 = bit 1, padding, 3-level activations as two
// bit planes, accumulator formulas) are documented once in src/bnn/bits.py.
//
// Each ISA's file is compiled with its own instruction flags. Everything it
// defines besides its kernel entry points (layer_ISA, pack_ISA, probe_ISA...)
// has internal linkage (an anonymous namespace), and it instantiates no std::
// template: such code would be a weak symbol, and the linker may keep the
// AVX-512 copy for the callers in generic files, which then fault on CPUs
// without AVX-512. tests/test_native_linkage.py checks the object files.
//
// Layouts, all little-endian 64-bit words:
//   activations  [image][plane][K]       K words per plane, bit c of word c/64
//   weights      [group][K][8]           8 neurons per group, lane = neuron % 8,
//                                        so one 512-bit load holds word k of 8 neurons
//   limits       [out_plane][group*8]    see below
//   counts       [image][group*8]        int32 popcount sums (last layer)
//
// Inputs come as one plane of bits x (values +-1) or, for 3-level
// activations, two planes: m (value != 0) and s (value == +1). The kernels
// count, per image and neuron,
//   one plane:   pc = popcount(w ^ x)          and set bit q when pc <= limits[q]
//   two planes:  pc = popcount(m & (w ^ s))    and set bit q when 2 pc + limits[q] <= active[image]
// where active[image] = popcount(m) (then limits[q] = T + 1, from sum(w * a)
// = popcount(m) - 2 pc > T). With two thresholds, the two bits b0, b1 are
// written as the next layer's planes m = !(b0 ^ b1) and s = b0 & b1 (the
// activation b0 + b1 - 1 is 0 exactly when one of the two bits is set).
// Padded neurons have limits that give b0 = 0, b1 = 1: m = s = 0.
// The driver pads groups to a multiple of kGroupBlock (padded neurons have
// zero weights and limit -1), so kernels need no remainder loop over neurons.
//
// Bit-sliced hidden layers (bitslice.h) take a block of 64 * words images at
// once (words per vector register: 4 for AVX2, 8 for AVX-512 and for the
// portable one). Their activations are column-major: a plane of c columns is
// c vectors of `words` words, bit i of a column's vector = image i of the
// block. The same bits and planes as above, transposed; limits are the
// LayerView's. A convolution runs one sliced layer per output pixel: its
// input is the sliced feature map [pixel][plane][64 * slot columns][words],
// the window's column j being vector sources[j] from the window's first pixel
// (the plane-1 vector in_columns vectors later).
//
// A convolutional network's layer 0 (conv8.h) takes the image's 8-bit pixels
// (HWC, the values of src/bnn/bits.py cnv_pixel_values) and writes, per
// output pixel, its output planes of ceil(mh / 64) words each: the feature map
// [pixel][plane][words] that the driver's window gather turns into the next
// layer's rows (a window's pixels one after another, each in whole words).
//
// Each ISA lives in its own translation unit compiled with its own flags;
// these TUs keep everything else in anonymous namespaces so that no inline
// function compiled for a wider ISA can be picked by the linker for another.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bnn::kernels {

constexpr int kGroupBlock = 4;
constexpr int kLanes = 8;

struct LayerView {
    const std::uint64_t* weights;  // [groups][K][8]
    const std::int32_t* limits;    // [out_planes][groups * 8]; unused for the last layer
    int K;                         // words per input plane
    int in_planes;                 // 1 or 2
    int groups;                    // neuron groups of 8, a multiple of kGroupBlock
    int out_planes;                // 1 or 2 for a hidden layer; 0: write counts instead of bits
    int out_K;                     // words per output plane
};

// A sliced layer's table of input triples is 16 KiB, so that it stays in L1 while every neuron
// reads it: 32 triples of AVX2 vectors, 16 of 512-bit ones (a multiple of 8, at most 56).
constexpr int kSliceTableBytes = 16384;
constexpr int triples_per_chunk(int words) { return kSliceTableBytes / (8 * 2 * 8 * words); }
// A neuron's count keeps its low planes (ones..64s) in registers during a chunk (bitslice.h), so a
// sliced layer's count has at least these.
constexpr int kSliceStatePlanes = 7;

struct SlicedView {
    const std::uint16_t* offsets;  // [chunks][mh][triples per chunk]: each neuron's entry, in vectors
    const std::uint32_t* sources;  // [mw]: column j's vector in `in`, or null: vector j
    const std::int32_t* limits;    // [out_planes][limit_stride], as LayerView's
    int limit_stride;
    int mw, mh;                    // inputs and neurons
    int in_planes, out_planes;     // 1 or 2 each
    int in_columns, out_columns;   // vectors from a column's plane 0 to its plane 1, in and out
    int chunks;                    // ceil(ceil(mw / 3) / triples_per_chunk(words))
    int count_planes;              // bits of a count up to mw, at least kSliceStatePlanes
    int from, to;                  // the neurons a call computes: [from, to) of mh
};

// Words of scratch a sliced layer needs with vectors of `words` words: its table, the state of
// every neuron's count, and popcount(m) per image.
inline std::size_t sliced_scratch_words(const SlicedView& L, int words) {
    return static_cast<std::size_t>(words) *
           (static_cast<std::size_t>(triples_per_chunk(words)) * 16 + static_cast<std::size_t>(L.mh + 1) * L.count_planes);
}

// Layer 0 of a convolutional network: k x k windows, stride 1, no padding, over a size x size image
// of `channels` 8-bit fixed-point pixels; bit q of neuron n where dot > limits[q][n] (integer dot
// of the pixel values and the weights; the driver turns the hardware's thresholds into these limits).
constexpr int kConv8Block = 64;  // neurons per block: one output word
struct Conv8View {
    const std::int16_t* weights;       // [blocks][columns][64]: one column's weights of a block together
    const std::int32_t* limits;        // [out_planes][blocks * 64]; padded neurons: never, then always
    const std::int16_t* limits16;      // the same, clamped to int16 (sums in int16: not `wide`)
    const std::int16_t* pixel_values;  // [256]: a pixel byte's fixed-point value (times 128)
    int size, channels, kernel;        // the input map and the window
    int columns;                       // kernel * kernel * channels
    int blocks;                        // ceil(mh / 64): output words per plane
    int out_planes;                    // 1 or 2 (m and s, kernels.h)
    bool wide;                         // int32 sums: the largest |dot| may not fit in int16
    // For x86's pairs of columns (conv8_pairs.h), or null: weights [blocks][kernel][pairs][64][2]
    // int8 (pairs = ceil(kernel * channels / 2) per window row), limits + 128 sum(w) as int16 [out_planes][blocks * 64], pixel bytes u = value + 128 [256].
    const std::int8_t* pair_weights = nullptr;
    const std::int16_t* pair_limits = nullptr;
    const std::uint8_t* pixel_bytes = nullptr;
};
// image: size * size * channels bytes; out: one row of out_planes * blocks words per output pixel;
// scratch: conv8_scratch_words(layer) int32s.
using Conv8Fn = void (*)(const Conv8View& layer, const std::uint8_t* image, std::uint64_t* out,
                         std::int32_t* scratch);
inline std::size_t conv8_scratch_words(const Conv8View& v) {
    return static_cast<std::size_t>(v.size) * v.size * v.channels + static_cast<std::size_t>(v.columns);
}

// in: n images of in_planes*K words each; active: n popcount(m) (two planes only).
// out: n rows of out_planes*out_K words, whose bytes past groups are left
// alone (caller zeroes them); counts: n rows of groups*8 int32 (last layer).
using LayerFn = void (*)(const LayerView& layer, const std::uint64_t* in, const std::int32_t* active,
                         std::size_t n, std::uint64_t* out, std::int32_t* counts);
// n images of `pixels` uint8 each -> n rows of `words` words, bit = pixel >= threshold (1..255);
// bits past `pixels` are 0.
using PackFn = void (*)(const std::uint8_t* images, std::size_t n, std::size_t pixels, std::uint8_t threshold,
                        std::uint64_t* out, std::size_t words);
// The bound of a kernel's approach on this core: the rate (64-bit words per second) of its inner step,
// xor (or the W1A2 planes' equivalent) + popcount + accumulate, run from registers for `seconds`.
using ProbeFn = double (*)(double seconds);
// One hidden layer over a block of images, sliced (in: in_planes planes, out: out_planes planes, whose
// columns past mh are left alone); scratch: sliced_scratch_words, aligned to 64 bytes.
using SlicedFn = void (*)(const SlicedView& layer, const std::uint64_t* in, std::uint64_t* out,
                          std::uint64_t* scratch);

void conv8_portable(const Conv8View&, const std::uint8_t*, std::uint64_t*, std::int32_t*);
void layer_portable(const LayerView&, const std::uint64_t*, const std::int32_t*, std::size_t, std::uint64_t*,
                    std::int32_t*);
void pack_portable(const std::uint8_t*, std::size_t, std::size_t, std::uint8_t, std::uint64_t*, std::size_t);
double probe_portable(double seconds);
void layer_portable_bitslice(const SlicedView&, const std::uint64_t*, std::uint64_t*, std::uint64_t*);
double probe_portable_bitslice(double seconds);
#if defined(BNN_HAVE_X86_KERNELS)
void conv8_avx2(const Conv8View&, const std::uint8_t*, std::uint64_t*, std::int32_t*);
void conv8_avx512(const Conv8View&, const std::uint8_t*, std::uint64_t*, std::int32_t*);
void layer_avx2(const LayerView&, const std::uint64_t*, const std::int32_t*, std::size_t, std::uint64_t*,
                std::int32_t*);
void pack_avx2(const std::uint8_t*, std::size_t, std::size_t, std::uint8_t, std::uint64_t*, std::size_t);
double probe_avx2(double seconds);
void layer_avx2_bitslice(const SlicedView&, const std::uint64_t*, std::uint64_t*, std::uint64_t*);
double probe_avx2_bitslice(double seconds);
void layer_avx512_bitslice(const SlicedView&, const std::uint64_t*, std::uint64_t*, std::uint64_t*);
double probe_avx512_bitslice(double seconds);
void layer_avx512(const LayerView&, const std::uint64_t*, const std::int32_t*, std::size_t, std::uint64_t*,
                  std::int32_t*);
void pack_avx512(const std::uint8_t*, std::size_t, std::size_t, std::uint8_t, std::uint64_t*, std::size_t);
double probe_avx512(double seconds);
#endif
#if defined(BNN_HAVE_NEON_KERNELS)
void conv8_neon(const Conv8View&, const std::uint8_t*, std::uint64_t*, std::int32_t*);
void layer_neon(const LayerView&, const std::uint64_t*, const std::int32_t*, std::size_t, std::uint64_t*,
                std::int32_t*);
void pack_neon(const std::uint8_t*, std::size_t, std::size_t, std::uint8_t, std::uint64_t*, std::size_t);
double probe_neon(double seconds);
#endif

}  // namespace bnn::kernels
