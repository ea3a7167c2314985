// AVX2 kernel: no vector popcount, so bytes are counted with a 4-bit lookup
// table (VPSHUFB) and summed per 64-bit lane with VPSADBW. A group of 8
// neurons is two 256-bit halves; 4 images per weight load. The bit-sliced
// layers (bitslice.h) run on blocks of 256 images, one per ymm register.
#include <immintrin.h>


#include "bitslice.h"
#include "emit.h"
#include "conv8_pairs.h"
#include "kernels.h"
#include "probe.h"

namespace bnn::kernels {
namespace {

constexpr int kHalves = 2;
// Byte counters hold at most 8 per word: flush to 64-bit sums every 31 words.
constexpr int kFlushEvery = 31;

inline __m256i popcount_bytes(__m256i v, __m256i lut, __m256i low4) {
    const __m256i lo = _mm256_and_si256(v, low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// One image's group of 8 neurons, decided in registers: s0 and s1 hold the popcounts of neurons
// 0-3 and 4-7, one per 64-bit lane (each below 2^31).
template <bool kMasked>
inline void emit_avx2(const LayerView& L, __m256i s0, __m256i s1, const std::int32_t* active, std::size_t image,
                      int g, std::uint64_t* out, std::int32_t* counts) {
    const __m256i mixed = _mm256_blend_epi32(s0, _mm256_slli_epi64(s1, 32), 0xAA);  // n0 n4 n1 n5 n2 n6 n3 n7
    const __m256i pc = _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const int neurons = L.groups * kLanes;
    if (L.out_planes == 0) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(counts + image * neurons + g * kLanes), pc);
        return;
    }
    // Bit on when pc <= limit (one plane) or 2 pc + limit <= popcount(m) (two planes): the complement of ">".
    const __m256i lhs = kMasked ? _mm256_add_epi32(pc, pc) : pc;
    unsigned bits[2] = {0, 0};
    for (int q = 0; q < L.out_planes; ++q) {
        const __m256i lim = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.limits + q * neurons + g * kLanes));
        const __m256i above = kMasked ? _mm256_cmpgt_epi32(_mm256_add_epi32(lhs, lim), _mm256_set1_epi32(active[image]))
                                      : _mm256_cmpgt_epi32(lhs, lim);
        bits[q] = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(above))) & 0xFFu;
    }
    store_bits(L, bits, image, g, out);
}

template <int kImages, bool kMasked>
void layer_block(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                 std::uint64_t* out, std::int32_t* counts) {
    const int K = L.K;
    const std::size_t in_stride = static_cast<std::size_t>(L.in_planes) * K;
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                         2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int g = 0; g < L.groups; ++g) {
        const std::uint64_t* wg = L.weights + static_cast<std::size_t>(g) * K * kLanes;
        for (std::size_t i0 = 0; i0 < n; i0 += kImages) {
            __m256i sums[kImages][kHalves];
            for (int i = 0; i < kImages; ++i)
                for (int h = 0; h < kHalves; ++h) sums[i][h] = _mm256_setzero_si256();
            // Spans of at most kFlushEvery words: no test per word (K is 13 or 16 in the LFC: one span).
            for (int k0 = 0; k0 < K; k0 += kFlushEvery) {
                const int k1 = k0 + kFlushEvery < K ? k0 + kFlushEvery : K;  // no std:: template in an ISA file (kernels.h)
                __m256i bytes[kImages][kHalves];
                for (int i = 0; i < kImages; ++i)
                    for (int h = 0; h < kHalves; ++h) bytes[i][h] = _mm256_setzero_si256();
                for (int k = k0; k < k1; ++k) {
                    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wg + k * kLanes));
                    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wg + k * kLanes + 4));
#pragma GCC unroll 4
                    for (int i = 0; i < kImages; ++i) {
                        const std::uint64_t* xi = in + (i0 + i) * in_stride;
                        const __m256i x = _mm256_set1_epi64x(static_cast<long long>(xi[k]));
                        __m256i d0, d1;
                        if constexpr (kMasked) {  // m & (w ^ s): x is the mask plane m, the sign plane follows
                            const __m256i sg = _mm256_set1_epi64x(static_cast<long long>(xi[K + k]));
                            d0 = _mm256_and_si256(x, _mm256_xor_si256(w0, sg));
                            d1 = _mm256_and_si256(x, _mm256_xor_si256(w1, sg));
                        } else {
                            d0 = _mm256_xor_si256(w0, x);
                            d1 = _mm256_xor_si256(w1, x);
                        }
                        bytes[i][0] = _mm256_add_epi8(bytes[i][0], popcount_bytes(d0, lut, low4));
                        bytes[i][1] = _mm256_add_epi8(bytes[i][1], popcount_bytes(d1, lut, low4));
                    }
                }
                for (int i = 0; i < kImages; ++i)
                    for (int h = 0; h < kHalves; ++h)
                        sums[i][h] = _mm256_add_epi64(sums[i][h], _mm256_sad_epu8(bytes[i][h], _mm256_setzero_si256()));
            }
            for (int i = 0; i < kImages; ++i)
                emit_avx2<kMasked>(L, sums[i][0], sums[i][1], active, i0 + i, g, out, counts);
        }
    }
}

template <int kImages>
void layer_block_any(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                     std::uint64_t* out, std::int32_t* counts) {
    if (L.in_planes == 2)
        layer_block<kImages, true>(L, in, active, n, out, counts);
    else
        layer_block<kImages, false>(L, in, active, n, out, counts);
}

struct Avx2Ops {
    using V = __m256i;
    static constexpr bool kTernary = false;
    static V zero() { return _mm256_setzero_si256(); }
    static V ones() { return _mm256_set1_epi64x(-1); }
    static V load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
    static void store(void* p, V v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
    static V and_(V a, V b) { return _mm256_and_si256(a, b); }
    static V or_(V a, V b) { return _mm256_or_si256(a, b); }
    static V xor_(V a, V b) { return _mm256_xor_si256(a, b); }
    static V andnot(V a, V b) { return _mm256_andnot_si256(a, b); }
};

}  // namespace

void layer_avx2_bitslice(const SlicedView& L, const std::uint64_t* in, std::uint64_t* out, std::uint64_t* scratch) {
    Sliced<Avx2Ops>::layer(L, in, out, scratch);
}

double probe_avx2_bitslice(double seconds) { return Sliced<Avx2Ops>::probe(seconds); }

void layer_avx2(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
               std::uint64_t* out, std::int32_t* counts) {
    in_blocks_of_4<layer_block_any<4>, layer_block_any<1>>(L, in, active, n, out, counts);
}

double probe_avx2(double seconds) {
    // The kernel's inner step: one input word against 8 weight words (8 independent accumulators),
    // xor, nibble-lookup popcount, byte add.
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                         2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i w[8], acc[8], x = _mm256_set1_epi64x(0x0F0F0F0F12345678LL);
    for (int j = 0; j < 8; ++j) {
        w[j] = _mm256_set1_epi64x(static_cast<long long>(0x9E3779B97F4A7C15ULL * (j + 1)));
        acc[j] = _mm256_setzero_si256();
    }
    const double rate = time_steps(seconds, 8 * 4, [&] {
        asm volatile("" : "+x"(x));  // opaque to the compiler, no instruction: nothing is hoisted
        for (int j = 0; j < 8; ++j)
            acc[j] = _mm256_add_epi8(acc[j], popcount_bytes(_mm256_xor_si256(w[j], x), lut, low4));
    });
    __m256i sum = acc[0];
    for (int j = 1; j < 8; ++j) sum = _mm256_add_epi8(sum, acc[j]);
    alignas(32) std::uint64_t out[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(out), sum);
    volatile std::uint64_t sink = out[0];
    (void)sink;
    return rate;
}

void pack_avx2(const std::uint8_t* images, std::size_t n, std::size_t pixels, std::uint8_t threshold,
               std::uint64_t* out, std::size_t words) {
    const std::size_t full = pixels / 64;
    const __m256i t = _mm256_set1_epi8(static_cast<char>(threshold));
    // p >= t exactly when max(p, t) == p (unsigned); MOVEMASK gathers the comparison bytes' sign bits.
    const auto ge = [t](const std::uint8_t* p) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(v, t), v)));
    };
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* img = images + i * pixels;
        std::uint64_t* row = out + i * words;
        for (std::size_t w = 0; w < full; ++w)
            row[w] = ge(img + 64 * w) | (static_cast<std::uint64_t>(ge(img + 64 * w + 32)) << 32);
        for (std::size_t w = full; w < words; ++w) row[w] = 0;
        for (std::size_t p = 64 * full; p < pixels; ++p)
            row[p / 64] |= static_cast<std::uint64_t>(img[p] >= threshold) << (p % 64);
    }
}

void conv8_avx2(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    conv8_x86(v, image, out, scratch);
}

}  // namespace bnn::kernels
