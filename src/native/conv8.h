// Layer 0 of a convolutional network (kernels.h, Conv8View): integer dot products of 8-bit
// fixed-point pixels and weights over each window, then thresholds, written as output bits.
// 64 neurons at a time in GCC/Clang vector types (the int16 sums: four vectors of 16, which
// each ISA's file compiles to its own registers: one AVX2 register each, two SSE2 or NEON ones),
// so that the sums stay in registers across a window's columns. Internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace bnn::kernels {
namespace {

// Bits 0..7 of the result = the low bits of bytes 0..7 of `bytes` (each 0 or 1): the multiply
// moves byte i's bit to bit 56 + i, and no two partial products meet.
inline std::uint64_t gather_byte_bits(std::uint64_t bytes) { return (bytes * 0x0102040810204080ULL) >> 56; }

// 16 int16 lanes, and the same type for loads at any alignment (GCC's and Clang's unaligned-vector
// idiom). No function takes or returns one by value: that would change the calling convention
// between ISAs (GCC's -Wpsabi).
typedef std::int16_t Lanes16 __attribute__((vector_size(32)));
typedef std::int16_t UnalignedLanes16 __attribute__((vector_size(32), aligned(2), may_alias));

// 64 output bits from 64 comparison lanes (-1 or 0) of four vectors, lane n -> bit n.
inline std::uint64_t lane_bits(const Lanes16* above) {
    std::int16_t lanes[kConv8Block];
    std::memcpy(lanes, above, sizeof lanes);
    std::uint8_t on[kConv8Block];
    for (int n = 0; n < kConv8Block; ++n) on[n] = static_cast<std::uint8_t>(lanes[n] & 1);
    std::uint64_t bits = 0;
    for (int k = 0; k < kConv8Block / 8; ++k) {
        std::uint64_t bytes;
        std::memcpy(&bytes, on + 8 * k, 8);
        bits |= gather_byte_bits(bytes) << (8 * k);
    }
    return bits;
}

inline void store_planes(const Conv8View& v, const std::uint64_t* bits, int b, std::uint64_t* row) {
    if (v.out_planes == 2) {
        row[b] = ~(bits[0] ^ bits[1]);           // m: value != 0
        row[v.blocks + b] = bits[0] & bits[1];  // s: value == +1
    } else {
        row[b] = bits[0];
    }
}

// The window of output pixel (oy, ox) in column order, from the image's values.
template <typename Sum>
inline void take_window(const Conv8View& v, const Sum* values, int oy, int ox, Sum* window) {
    const int span = v.kernel * v.channels;
    for (int ky = 0; ky < v.kernel; ++ky) {
        const Sum* from = values + (static_cast<std::size_t>(oy + ky) * v.size + ox) * v.channels;
        for (int j = 0; j < span; ++j) window[ky * span + j] = from[j];
    }
}

// Every output pixel's window, then block(window, b, row) for each block b of 64 neurons, writing
// the pixel's output row.
template <typename Sum, typename Block>
inline void for_each_window(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, Sum* values,
                            Sum* window, Block block) {
    const int side = v.size - v.kernel + 1;
    const std::size_t stride = static_cast<std::size_t>(v.out_planes) * v.blocks;
    for (int p = 0; p < v.size * v.size * v.channels; ++p) values[p] = v.pixel_values[image[p]];
    for (int oy = 0; oy < side; ++oy)
        for (int ox = 0; ox < side; ++ox) {
            take_window(v, values, oy, ox, window);
            std::uint64_t* row = out + (static_cast<std::size_t>(oy) * side + ox) * stride;
            for (int b = 0; b < v.blocks; ++b) block(window, b, row);
        }
}

// int16 sums: |dot| <= 256 * columns < 2^15 (not v.wide).
inline void conv8_narrow(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int16_t* values,
                         std::int16_t* window) {
    constexpr int B = kConv8Block;
    for_each_window(v, image, out, values, window, [&v](const std::int16_t* win, int b, std::uint64_t* row) {
        Lanes16 sum[4] = {};
        const std::int16_t* w = v.weights + static_cast<std::size_t>(b) * v.columns * B;
        for (int c = 0; c < v.columns; ++c, w += B) {
            const std::int16_t q = win[c];
            const auto* wc = reinterpret_cast<const UnalignedLanes16*>(w);
            for (int h = 0; h < 4; ++h) sum[h] += wc[h] * q;
        }
        std::uint64_t bits[2] = {0, 0};
        for (int q = 0; q < v.out_planes; ++q) {
            const auto* limit =
                reinterpret_cast<const UnalignedLanes16*>(v.limits16 + (static_cast<std::size_t>(q) * v.blocks + b) * B);
            Lanes16 above[4];
            for (int h = 0; h < 4; ++h) above[h] = sum[h] > limit[h];
            bits[q] = lane_bits(above);
        }
        store_planes(v, bits, b, row);
    });
}

// int32 sums, plain loops: layers too wide for int16 (none of the original's).
inline void conv8_wide(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* values,
                       std::int32_t* window) {
    constexpr int B = kConv8Block;
    for_each_window(v, image, out, values, window, [&v](const std::int32_t* win, int b, std::uint64_t* row) {
        std::int32_t sum[B] = {};
        const std::int16_t* w = v.weights + static_cast<std::size_t>(b) * v.columns * B;
        for (int c = 0; c < v.columns; ++c, w += B)
            for (int n = 0; n < B; ++n) sum[n] += w[n] * win[c];
        std::uint64_t bits[2] = {0, 0};
        for (int q = 0; q < v.out_planes; ++q) {
            const std::int32_t* lim = v.limits + (static_cast<std::size_t>(q) * v.blocks + b) * B;
            for (int n = 0; n < B; ++n) bits[q] |= static_cast<std::uint64_t>(sum[n] > lim[n]) << n;
        }
        store_planes(v, bits, b, row);
    });
}

inline void conv8_any(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    const std::size_t pixels = static_cast<std::size_t>(v.size) * v.size * v.channels;
    if (v.wide) {
        conv8_wide(v, image, out, scratch, scratch + pixels);
    } else {
        auto* values = reinterpret_cast<std::int16_t*>(scratch);
        conv8_narrow(v, image, out, values, values + pixels);
    }
}

}  // namespace
}  // namespace bnn::kernels
