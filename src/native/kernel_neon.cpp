// ARM NEON kernel (aarch64): bytes counted with VCNT (vcntq_u8), summed per
// 64-bit lane by pairwise widening adds. A group of 8 neurons is four
// 128-bit vectors (two neurons each); 4 images per weight load, as AVX2.
#include <arm_neon.h>

#include "emit.h"
#include "conv8.h"
#include "kernels.h"
#include "probe.h"

namespace bnn::kernels {
namespace {

constexpr int kQuarters = 4;
// Byte counters hold at most 8 per word: flush to 64-bit sums every 31 words.
constexpr int kFlushEvery = 31;

template <int kImages>
void layer_block(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                 std::uint64_t* out, std::int32_t* counts) {
    const int K = L.K;
    const bool masked = L.in_planes == 2;
    const std::size_t in_stride = static_cast<std::size_t>(L.in_planes) * K;
    for (int g = 0; g < L.groups; ++g) {
        const std::uint64_t* wg = L.weights + static_cast<std::size_t>(g) * K * kLanes;
        for (std::size_t i0 = 0; i0 < n; i0 += kImages) {
            uint64x2_t sums[kImages][kQuarters];
            uint8x16_t bytes[kImages][kQuarters];
            for (int i = 0; i < kImages; ++i)
                for (int h = 0; h < kQuarters; ++h) {
                    sums[i][h] = vdupq_n_u64(0);
                    bytes[i][h] = vdupq_n_u8(0);
                }
            for (int k = 0; k < K; ++k) {
                uint64x2_t w[kQuarters];
                for (int h = 0; h < kQuarters; ++h) w[h] = vld1q_u64(wg + k * kLanes + 2 * h);
                for (int i = 0; i < kImages; ++i) {
                    const std::uint64_t* xi = in + (i0 + i) * in_stride;
                    const uint64x2_t x = vdupq_n_u64(xi[k]);
                    const uint64x2_t sg = masked ? vdupq_n_u64(xi[K + k]) : x;
                    for (int h = 0; h < kQuarters; ++h) {
                        // one plane: w ^ x; two planes: m & (w ^ s), x being the mask plane m
                        const uint64x2_t d = masked ? vandq_u64(x, veorq_u64(w[h], sg)) : veorq_u64(w[h], x);
                        bytes[i][h] = vaddq_u8(bytes[i][h], vcntq_u8(vreinterpretq_u8_u64(d)));
                    }
                }
                if ((k + 1) % kFlushEvery == 0 || k + 1 == K) {
                    for (int i = 0; i < kImages; ++i)
                        for (int h = 0; h < kQuarters; ++h) {
                            sums[i][h] = vaddq_u64(sums[i][h], vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(bytes[i][h]))));
                            bytes[i][h] = vdupq_n_u8(0);
                        }
                }
            }
            for (int i = 0; i < kImages; ++i) {
                std::int64_t pc[kLanes];
                for (int h = 0; h < kQuarters; ++h) vst1q_s64(pc + 2 * h, vreinterpretq_s64_u64(sums[i][h]));
                emit_group(L, pc, active, i0 + i, g, out, counts);
            }
        }
    }
}

}  // namespace

void layer_neon(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
               std::uint64_t* out, std::int32_t* counts) {
    in_blocks_of_4<layer_block<4>, layer_block<1>>(L, in, active, n, out, counts);
}

double probe_neon(double seconds) {
    // The kernel's inner step on 8 independent accumulators: eor, VCNT, byte add.
    uint64x2_t w[8], x = vdupq_n_u64(0x0F0F0F0F12345678ULL);
    uint8x16_t acc[8];
    for (int j = 0; j < 8; ++j) {
        w[j] = vdupq_n_u64(0x9E3779B97F4A7C15ULL * (j + 1));
        acc[j] = vdupq_n_u8(0);
    }
    const double rate = time_steps(seconds, 8 * 2, [&] {
        asm volatile("" : "+w"(x));  // opaque to the compiler, no instruction: nothing is hoisted
        for (int j = 0; j < 8; ++j) acc[j] = vaddq_u8(acc[j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(w[j], x))));
    });
    uint8x16_t sum = acc[0];
    for (int j = 1; j < 8; ++j) sum = vaddq_u8(sum, acc[j]);
    volatile unsigned sink = vaddvq_u8(sum);
    (void)sink;
    return rate;
}

void pack_neon(const std::uint8_t* images, std::size_t n, std::size_t pixels, std::uint8_t threshold,
               std::uint64_t* out, std::size_t words) {
    // Bit p of a 64-pixel word: the comparison pixel >= threshold gives 0xFF or 0; its top bit is
    // moved to its place by a shift per lane and the lanes are summed (no MOVEMASK on NEON).
    static const std::int8_t shifts[8] = {-7, -6, -5, -4, -3, -2, -1, 0};
    const int8x8_t shift = vld1_s8(shifts);
    const uint8x8_t t = vdup_n_u8(threshold);
    const std::size_t full = pixels / 64;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* img = images + i * pixels;
        std::uint64_t* row = out + i * words;
        for (std::size_t w = 0; w < full; ++w) {
            std::uint64_t word = 0;
            for (int b = 0; b < 8; ++b) {
                const uint8x8_t v = vld1_u8(img + 64 * w + 8 * b);
                const uint8x8_t bits = vshl_u8(vand_u8(vcge_u8(v, t), vdup_n_u8(0x80)), shift);  // bit j of byte j
                word |= static_cast<std::uint64_t>(vaddv_u8(bits)) << (8 * b);
            }
            row[w] = word;
        }
        for (std::size_t w = full; w < words; ++w) row[w] = 0;
        for (std::size_t p = 64 * full; p < pixels; ++p)
            row[p / 64] |= static_cast<std::uint64_t>(img[p] >= threshold) << (p % 64);
    }
}

void conv8_neon(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    conv8_any(v, image, out, scratch);
}

}  // namespace bnn::kernels
