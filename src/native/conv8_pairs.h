// Layer 0 of a convolutional network on x86 (AVX2 and the AVX-512 file): two columns per
// VPMADDUBSW. A pixel's value v (-128..127) goes in as the unsigned byte u = v + 128, so that one
// instruction multiplies 16 neurons' signed weight bytes by a pair of window bytes and adds the
// two products (at most 2 * 255 * 2: never saturated); sum(u w) = dot + 128 sum(w), which the
// driver folds into the limits (Conv8View::pair_limits). Half the instructions of conv8.h's
// multiply-add per column. Internal linkage.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "conv8.h"
#include "kernels.h"

namespace bnn::kernels {
namespace {

// 32 neurons' comparison lanes (two vectors of 16 int16 lanes, -1 or 0) -> 32 bits, lane n -> bit n.
inline std::uint32_t mask_bits(__m256i lo, __m256i hi) {
    // packs works within 128-bit halves (lo 0-7, hi 0-7 | lo 8-15, hi 8-15): swap the middle quarters.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi16(lo, hi), 0xD8);
    return static_cast<std::uint32_t>(_mm256_movemask_epi8(packed));
}

// Pairs are taken within each window row (kernel * channels bytes, consecutive in the image): a row
// of odd length ends in a pair whose second byte, the next pixel's, has weight 0, so the window is
// read in place. scratch: conv8_scratch_words(v) words (bytes here: the image's u values and one more).
inline void conv8_pairs(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    const int side = v.size - v.kernel + 1, span = v.kernel * v.channels, row_pairs = (span + 1) / 2;
    const std::size_t pixels = static_cast<std::size_t>(v.size) * v.size * v.channels;
    const std::size_t stride = static_cast<std::size_t>(v.out_planes) * v.blocks;
    auto* values = reinterpret_cast<std::uint8_t*>(scratch);
    for (std::size_t p = 0; p < pixels; ++p) values[p] = v.pixel_bytes[image[p]];
    values[pixels] = 0;  // read by the last window's last pair when its row is odd
    for (int oy = 0; oy < side; ++oy)
        for (int ox = 0; ox < side; ++ox) {
            std::uint64_t* row = out + (static_cast<std::size_t>(oy) * side + ox) * stride;
            for (int b = 0; b < v.blocks; ++b) {
                const auto* w = reinterpret_cast<const __m256i*>(v.pair_weights + static_cast<std::size_t>(b) * v.kernel * row_pairs * 128);
                __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
                for (int ky = 0; ky < v.kernel; ++ky) {
                    const std::uint8_t* from = values + (static_cast<std::size_t>(oy + ky) * v.size + ox) * v.channels;
                    for (int p = 0; p < row_pairs; ++p, w += 4) {
                        std::uint16_t two;
                        std::memcpy(&two, from + 2 * p, 2);
                        const __m256i x = _mm256_set1_epi16(static_cast<short>(two));
                        s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(x, _mm256_loadu_si256(w)));
                        s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(x, _mm256_loadu_si256(w + 1)));
                        s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(x, _mm256_loadu_si256(w + 2)));
                        s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(x, _mm256_loadu_si256(w + 3)));
                    }
                }
                std::uint64_t bits[2] = {0, 0};
                for (int q = 0; q < v.out_planes; ++q) {
                    const auto* lim = reinterpret_cast<const __m256i*>(v.pair_limits + (static_cast<std::size_t>(q) * v.blocks + b) * kConv8Block);
                    const std::uint32_t low = mask_bits(_mm256_cmpgt_epi16(s0, _mm256_loadu_si256(lim)),
                                                        _mm256_cmpgt_epi16(s1, _mm256_loadu_si256(lim + 1)));
                    const std::uint32_t high = mask_bits(_mm256_cmpgt_epi16(s2, _mm256_loadu_si256(lim + 2)),
                                                         _mm256_cmpgt_epi16(s3, _mm256_loadu_si256(lim + 3)));
                    bits[q] = low | static_cast<std::uint64_t>(high) << 32;
                }
                store_planes(v, bits, b, row);
            }
        }
}

// Layer 0 by pairs where the driver prepared them (sums that fit int16), else conv8.h's.
inline void conv8_x86(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    if (v.pair_weights)
        conv8_pairs(v, image, out, scratch);
    else
        conv8_any(v, image, out, scratch);
}

}  // namespace
}  // namespace bnn::kernels
