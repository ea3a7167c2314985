// Layer 0 of a convolutional network (kernels.h, Conv8View): integer dot products of 8-bit
// fixed-point pixels and weights over each window, then thresholds, written as output bits.
// Plain loops over 64 neurons at a time, which each ISA's file compiles with its own flags: the
// compiler vectorises them across neurons (16 int16 sums per AVX2 register). Internal linkage.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace bnn::kernels {
namespace {

// Bits 0..7 of the result = the low bits of bytes 0..7 of `bytes` (each 0 or 1): the multiply
// moves byte i's bit to bit 56 + i, and no two partial products meet.
inline std::uint64_t gather_byte_bits(std::uint64_t bytes) { return (bytes * 0x0102040810204080ULL) >> 56; }

template <typename Sum>
inline void conv8_pixel(const Conv8View& v, const std::uint8_t* image, int oy, int ox, std::uint64_t* row) {
    constexpr int B = kConv8Block;
    for (int b = 0; b < v.blocks; ++b) {
        Sum sum[B] = {};
        const std::int16_t* w = v.weights + static_cast<std::size_t>(b) * v.columns * B;
        for (int ky = 0; ky < v.kernel; ++ky)
            for (int kx = 0; kx < v.kernel; ++kx) {
                const std::uint8_t* px = image + (static_cast<std::size_t>(oy + ky) * v.size + ox + kx) * v.channels;
                for (int ch = 0; ch < v.channels; ++ch, w += B) {
                    const Sum q = v.pixel_values[px[ch]];
                    for (int n = 0; n < B; ++n) sum[n] = static_cast<Sum>(sum[n] + w[n] * q);
                }
            }
        std::uint64_t bits[2] = {0, 0};
        for (int q = 0; q < v.out_planes; ++q) {
            const std::int32_t* lim = v.limits + (static_cast<std::size_t>(q) * v.blocks + b) * B;
            std::uint8_t on[B];
            for (int n = 0; n < B; ++n) on[n] = sum[n] > lim[n];
            for (int k = 0; k < B / 8; ++k) {
                std::uint64_t bytes;
                std::memcpy(&bytes, on + 8 * k, 8);
                bits[q] |= gather_byte_bits(bytes) << (8 * k);
            }
        }
        if (v.out_planes == 2) {
            row[b] = ~(bits[0] ^ bits[1]);           // m: value != 0
            row[v.blocks + b] = bits[0] & bits[1];  // s: value == +1
        } else {
            row[b] = bits[0];
        }
    }
}

template <typename Sum>
inline void conv8_image(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out) {
    const int side = v.size - v.kernel + 1;
    const std::size_t stride = static_cast<std::size_t>(v.out_planes) * v.blocks;
    for (int oy = 0; oy < side; ++oy)
        for (int ox = 0; ox < side; ++ox)
            conv8_pixel<Sum>(v, image, oy, ox, out + (static_cast<std::size_t>(oy) * side + ox) * stride);
}

inline void conv8_any(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out) {
    if (v.wide)
        conv8_image<std::int32_t>(v, image, out);
    else
        conv8_image<std::int16_t>(v, image, out);
}

}  // namespace
}  // namespace bnn::kernels
