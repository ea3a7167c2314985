// What a kernel does with one image's popcounts for a group of 8 neurons:
// the last layer stores them as counts, a hidden layer compares them with
// its limits and writes the output bits (one plane, or the m and s planes of
// a 3-level activation; see kernels.h). Shared by the kernels that count a
// whole group before deciding; internal linkage in each ISA's file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"

// store_bits writes a word's bytes in order: byte g of a 64-bit word holds its bits 8g..8g+7 only on a
// little-endian machine (x86-64, aarch64 as Linux and macOS run it).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "bnn's bit layout (kernels.h) assumes little-endian words");

namespace bnn::kernels {
namespace {

// A hidden layer's output bits for one image and group: bits[q] holds bit `lane` for
// neuron g*8 + lane past threshold q; written as one plane, or as m and s (kernels.h).
inline void store_bits(const LayerView& L, const unsigned* bits, std::size_t image, int g, std::uint64_t* out) {
    const std::size_t out_stride = static_cast<std::size_t>(L.out_planes) * L.out_K;
    auto* row = reinterpret_cast<std::uint8_t*>(out + image * out_stride);
    if (L.out_planes == 2) {
        row[g] = static_cast<std::uint8_t>(~(bits[0] ^ bits[1]));              // m: value != 0
        row[L.out_K * 8 + g] = static_cast<std::uint8_t>(bits[0] & bits[1]);  // s: value == +1
    } else {
        row[g] = static_cast<std::uint8_t>(bits[0]);
    }
}

template <typename Count>
inline void emit_group(const LayerView& L, const Count* pc, const std::int32_t* active, std::size_t image, int g,
                       std::uint64_t* out, std::int32_t* counts) {
    const int neurons = L.groups * kLanes;
    if (L.out_planes == 0) {
        for (int lane = 0; lane < kLanes; ++lane)
            counts[image * neurons + g * kLanes + lane] = static_cast<std::int32_t>(pc[lane]);
        return;
    }
    const bool masked = L.in_planes == 2;
    unsigned bits[2] = {0, 0};
    for (int q = 0; q < L.out_planes; ++q) {
        const std::int32_t* lim = L.limits + q * neurons + g * kLanes;
        for (int lane = 0; lane < kLanes; ++lane) {
            const bool on = masked ? 2 * pc[lane] + lim[lane] <= active[image] : pc[lane] <= lim[lane];
            bits[q] |= static_cast<unsigned>(on) << lane;
        }
    }
    store_bits(L, bits, image, g, out);
}

using BlockFn = void (*)(const LayerView&, const std::uint64_t*, const std::int32_t*, std::size_t, std::uint64_t*,
                        std::int32_t*);

// A kernel whose inner loop takes 4 images per weight load: the whole blocks of 4, then the rest one by one.
template <BlockFn Block4, BlockFn Block1>
inline void in_blocks_of_4(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                           std::uint64_t* out, std::int32_t* counts) {
    const std::size_t full = n / 4 * 4;
    Block4(L, in, active, full, out, counts);
    const std::size_t in_stride = static_cast<std::size_t>(L.in_planes) * L.K;
    const std::size_t out_stride = static_cast<std::size_t>(L.out_planes) * L.out_K;
    const std::size_t neurons = static_cast<std::size_t>(L.groups) * kLanes;
    Block1(L, in + full * in_stride, active ? active + full : nullptr, n - full,
           out ? out + full * out_stride : nullptr, counts ? counts + full * neurons : nullptr);
}

}  // namespace
}  // namespace bnn::kernels
