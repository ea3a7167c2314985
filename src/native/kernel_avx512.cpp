// AVX-512 kernel (F + BW + VPOPCNTDQ): per 512-bit step, one XOR (or, for a
// 3-level input, one VPTERNLOGQ computing m & (w ^ s)), one VPOPCNTQ and one
// add, for 8 neurons x 64 columns of one image.
//
// Register blocking: 4 groups (32 neurons) x 6 images = 24 accumulators, so
// each weight load serves 6 images and each broadcast input word 4 groups.
// On the 2-core AMD EPYC (Zen 4) this loop sustains what a register-only
// XOR+POPCNT+ADD loop does (benchmarks/peak_popcount.cpp): it is at its bound.
// The threshold is fused: a compare of 8 popcount sums with 8 limits yields
// 8 output bits as a mask, stored as one byte of the packed output.
// The bit-sliced layers (bitslice.h) run on blocks of 512 images, their
// carry-save adders two VPTERNLOGQ each.
#include <immintrin.h>

#include "bitslice.h"
#include "conv8_pairs.h"
#include "kernels.h"
#include "probe.h"

namespace bnn::kernels {
namespace {

// Images per register block: 24 accumulators, 4 weights, 2 inputs in the 32 zmm registers.
// With two input planes each image needs two broadcasts: 4 images measured fastest.
constexpr int kBlockImages = 6;
constexpr int kBlockImagesTwoPlanes = 4;
// VPTERNLOGQ truth table of m & (w ^ s), operands in the order (m, w, s).
constexpr int kMaskedXor = 0x60;

template <int kPlanes, int kImages>
void layer_block(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                 std::uint64_t* out, std::int32_t* counts) {
    const int K = L.K;
    const std::size_t in_stride = static_cast<std::size_t>(kPlanes) * K;
    const std::size_t out_stride = static_cast<std::size_t>(L.out_planes) * L.out_K;
    const int neurons = L.groups * kLanes;
    for (int g0 = 0; g0 < L.groups; g0 += kGroupBlock) {
        const std::uint64_t* w0 = L.weights + static_cast<std::size_t>(g0) * K * kLanes;
        for (std::size_t i0 = 0; i0 < n; i0 += kImages) {
            __m512i acc[kGroupBlock][kImages];
#pragma GCC unroll 4
            for (int j = 0; j < kGroupBlock; ++j)
#pragma GCC unroll 8
                for (int i = 0; i < kImages; ++i) acc[j][i] = _mm512_setzero_si512();
            const std::uint64_t* x0 = in + i0 * in_stride;
            for (int k = 0; k < K; ++k) {
                __m512i w[kGroupBlock];
#pragma GCC unroll 4
                for (int j = 0; j < kGroupBlock; ++j)
                    w[j] = _mm512_load_si512(w0 + (static_cast<std::size_t>(j) * K + k) * kLanes);
#pragma GCC unroll 8
                for (int i = 0; i < kImages; ++i) {
                    const __m512i x = _mm512_set1_epi64(static_cast<long long>(x0[i * in_stride + k]));
                    if constexpr (kPlanes == 1) {
#pragma GCC unroll 4
                        for (int j = 0; j < kGroupBlock; ++j)
                            acc[j][i] = _mm512_add_epi64(acc[j][i], _mm512_popcnt_epi64(_mm512_xor_si512(w[j], x)));
                    } else {
                        const __m512i s = _mm512_set1_epi64(static_cast<long long>(x0[i * in_stride + K + k]));
#pragma GCC unroll 4
                        for (int j = 0; j < kGroupBlock; ++j)
                            acc[j][i] = _mm512_add_epi64(
                                acc[j][i], _mm512_popcnt_epi64(_mm512_ternarylogic_epi64(x, w[j], s, kMaskedXor)));
                    }
                }
            }
            if (L.out_planes == 0) {
#pragma GCC unroll 8
                for (int i = 0; i < kImages; ++i)
#pragma GCC unroll 4
                    for (int j = 0; j < kGroupBlock; ++j)
                        _mm256_storeu_si256(
                            reinterpret_cast<__m256i*>(counts + (i0 + i) * neurons + (g0 + j) * kLanes),
                            _mm512_cvtepi64_epi32(acc[j][i]));
                continue;
            }
            const bool two = L.out_planes == 2;
#pragma GCC unroll 4
            for (int j = 0; j < kGroupBlock; ++j) {
                const std::int32_t* lim = L.limits + (g0 + j) * kLanes;
                const __m512i lim0 = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lim)));
                const __m512i lim1 = two ? _mm512_cvtepi32_epi64(_mm256_loadu_si256(
                                               reinterpret_cast<const __m256i*>(lim + neurons)))
                                         : lim0;
#pragma GCC unroll 8
                for (int i = 0; i < kImages; ++i) {
                    __mmask8 b0, b1;
                    if constexpr (kPlanes == 1) {
                        b0 = _mm512_cmple_epi64_mask(acc[j][i], lim0);
                        b1 = _mm512_cmple_epi64_mask(acc[j][i], lim1);
                    } else {
                        const __m512i twice = _mm512_add_epi64(acc[j][i], acc[j][i]);
                        const __m512i p = _mm512_set1_epi64(active[i0 + i]);
                        b0 = _mm512_cmple_epi64_mask(_mm512_add_epi64(twice, lim0), p);
                        b1 = _mm512_cmple_epi64_mask(_mm512_add_epi64(twice, lim1), p);
                    }
                    auto* row = reinterpret_cast<std::uint8_t*>(out + (i0 + i) * out_stride);
                    if (two) {
                        row[g0 + j] = static_cast<std::uint8_t>(~(b0 ^ b1));              // m: value != 0
                        row[L.out_K * 8 + g0 + j] = static_cast<std::uint8_t>(b0 & b1);  // s: value == +1
                    } else {
                        row[g0 + j] = static_cast<std::uint8_t>(b0);
                    }
                }
            }
        }
    }
}

template <int kPlanes>
void layer_planes(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                  std::uint64_t* out, std::int32_t* counts) {
    // Full blocks, then single images (batch-1 latency pays for one image, not a block).
    constexpr int block = kPlanes == 1 ? kBlockImages : kBlockImagesTwoPlanes;
    const std::size_t full = n / block * block;
    layer_block<kPlanes, block>(L, in, active, full, out, counts);
    const std::size_t in_stride = static_cast<std::size_t>(kPlanes) * L.K;
    const std::size_t out_stride = static_cast<std::size_t>(L.out_planes) * L.out_K;
    const std::size_t neurons = static_cast<std::size_t>(L.groups) * kLanes;
    layer_block<kPlanes, 1>(L, in + full * in_stride, active ? active + full : nullptr, n - full,
                            out ? out + full * out_stride : nullptr, counts ? counts + full * neurons : nullptr);
}

struct Avx512Ops {
    using V = __m512i;
    static constexpr bool kTernary = true;
    // VPTERNLOGQ truth tables of symmetric functions, so operand order is free.
    static constexpr int kXor3 = 0x96, kMajority = 0xE8;
    static V zero() { return _mm512_setzero_si512(); }
    static V ones() { return _mm512_set1_epi64(-1); }
    static V load(const void* p) { return _mm512_loadu_si512(p); }
    static void store(void* p, V v) { _mm512_storeu_si512(p, v); }
    static V and_(V a, V b) { return _mm512_and_si512(a, b); }
    static V or_(V a, V b) { return _mm512_or_si512(a, b); }
    static V xor_(V a, V b) { return _mm512_xor_si512(a, b); }
    static V andnot(V a, V b) { return _mm512_andnot_si512(a, b); }
    static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi64(a, b, c, kXor3); }
    static V majority(V a, V b, V c) { return _mm512_ternarylogic_epi64(a, b, c, kMajority); }
};

}  // namespace

void layer_avx512(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                  std::uint64_t* out, std::int32_t* counts) {
    if (L.in_planes == 2)
        layer_planes<2>(L, in, active, n, out, counts);
    else
        layer_planes<1>(L, in, active, n, out, counts);
}

void layer_avx512_bitslice(const SlicedView& L, const std::uint64_t* in, std::uint64_t* out,
                           std::uint64_t* scratch) {
    Sliced<Avx512Ops>::layer(L, in, out, scratch);
}

double probe_avx512_bitslice(double seconds) { return Sliced<Avx512Ops>::probe(seconds); }

double probe_avx512(double seconds) {
    // The kernel's inner step on 8 independent accumulators: xor, VPOPCNTQ, add.
    __m512i w[8], acc[8], x = _mm512_set1_epi64(0x0F0F0F0F12345678LL);
    for (int j = 0; j < 8; ++j) {
        w[j] = _mm512_set1_epi64(static_cast<long long>(0x9E3779B97F4A7C15ULL * (j + 1)));
        acc[j] = _mm512_setzero_si512();
    }
    const double rate = time_steps(seconds, 8 * 8, [&] {
#if defined(SIMDE_ENABLE_NATIVE_ALIASES)  // tools/check_avx512.sh: built on SIMDe, x is no zmm register
        asm volatile("" : "+m"(x));
#else
        asm volatile("" : "+v"(x));  // opaque to the compiler, no instruction: nothing is hoisted
#endif
        for (int j = 0; j < 8; ++j) acc[j] = _mm512_add_epi64(acc[j], _mm512_popcnt_epi64(_mm512_xor_si512(w[j], x)));
    });
    __m512i sum = acc[0];
    for (int j = 1; j < 8; ++j) sum = _mm512_add_epi64(sum, acc[j]);
    volatile long long sink = _mm512_reduce_add_epi64(sum);
    (void)sink;
    return rate;
}

void pack_avx512(const std::uint8_t* images, std::size_t n, std::size_t pixels, std::uint8_t threshold,
                 std::uint64_t* out, std::size_t words) {
    const std::size_t full = pixels / 64, rest = pixels % 64;
    const __m512i t = _mm512_set1_epi8(static_cast<char>(threshold));
    const __mmask64 tail = rest ? (~0ULL >> (64 - rest)) : 0;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* img = images + i * pixels;
        std::uint64_t* row = out + i * words;
        // One unsigned comparison per 64 pixels, straight into a mask register.
        for (std::size_t w = 0; w < full; ++w) row[w] = _mm512_cmpge_epu8_mask(_mm512_loadu_si512(img + 64 * w), t);
        std::size_t w = full;
        if (rest) row[w++] = _mm512_mask_cmpge_epu8_mask(tail, _mm512_maskz_loadu_epi8(tail, img + 64 * full), t);
        for (; w < words; ++w) row[w] = 0;
    }
}

void conv8_avx512(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    conv8_x86(v, image, out, scratch);
}

}  // namespace bnn::kernels
