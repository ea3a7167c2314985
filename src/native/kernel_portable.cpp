// Portable C++ kernels: plain loops, any architecture, the fallback; and the
// bit-sliced layers (bitslice.h) on blocks of 512 images, a "vector" being 8
// words that the compiler may vectorise with whatever the baseline ISA has.
#include <chrono>
#include <cstring>

#include "bitslice.h"
#include "conv8.h"
#include "kernels.h"
#include "popcount.h"
#include "probe.h"

namespace bnn::kernels {
namespace {

struct Words {
    std::uint64_t w[8];
};

struct PortableOps {
    using V = Words;
    static constexpr bool kTernary = false;
    template <typename F>
    static V map(V a, V b, F f) {
        for (int k = 0; k < 8; ++k) a.w[k] = f(a.w[k], b.w[k]);
        return a;
    }
    static V zero() { return V{}; }
    static V ones() {
        V v;
        for (auto& x : v.w) x = ~std::uint64_t{0};
        return v;
    }
    static V load(const void* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(void* p, V v) { std::memcpy(p, &v, sizeof v); }
    static V and_(V a, V b) { return map(a, b, [](std::uint64_t x, std::uint64_t y) { return x & y; }); }
    static V or_(V a, V b) { return map(a, b, [](std::uint64_t x, std::uint64_t y) { return x | y; }); }
    static V xor_(V a, V b) { return map(a, b, [](std::uint64_t x, std::uint64_t y) { return x ^ y; }); }
    static V andnot(V a, V b) { return map(a, b, [](std::uint64_t x, std::uint64_t y) { return ~x & y; }); }
};

}  // namespace

void layer_portable_bitslice(const SlicedView& L, const std::uint64_t* in, std::uint64_t* out,
                             std::uint64_t* scratch) {
    Sliced<PortableOps>::layer(L, in, out, scratch);
}

double probe_portable_bitslice(double seconds) { return Sliced<PortableOps>::probe(seconds); }

void layer_portable(const LayerView& L, const std::uint64_t* in, const std::int32_t* active, std::size_t n,
                    std::uint64_t* out, std::int32_t* counts) {
    const std::size_t in_stride = static_cast<std::size_t>(L.in_planes) * L.K;
    const std::size_t out_stride = static_cast<std::size_t>(L.out_planes) * L.out_K;
    const int neurons = L.groups * kLanes;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t* x = in + i * in_stride;
        for (int g = 0; g < L.groups; ++g) {
            const std::uint64_t* w = L.weights + static_cast<std::size_t>(g) * L.K * kLanes;
            for (int lane = 0; lane < kLanes; ++lane) {
                int pc = 0;
                for (int k = 0; k < L.K; ++k) {
                    const std::uint64_t wk = w[k * kLanes + lane];
                    pc += popcount64(L.in_planes == 1 ? wk ^ x[k] : x[k] & (wk ^ x[L.K + k]));
                }
                const int neuron = g * kLanes + lane;
                if (L.out_planes == 0) {
                    counts[i * neurons + neuron] = pc;
                    continue;
                }
                bool bits[2];
                for (int q = 0; q < L.out_planes; ++q) {
                    const std::int32_t lim = L.limits[q * neurons + neuron];
                    bits[q] = L.in_planes == 1 ? pc <= lim : 2 * pc + lim <= active[i];
                }
                const std::uint64_t bit = std::uint64_t{1} << (neuron % 64);
                std::uint64_t* row = out + i * out_stride + neuron / 64;
                if (L.out_planes == 1) {
                    if (bits[0]) row[0] |= bit;
                } else {
                    if (bits[0] == bits[1]) row[0] |= bit;          // m: value != 0
                    if (bits[0] && bits[1]) row[L.out_K] |= bit;    // s: value == +1
                }
            }
        }
    }
}

void pack_portable(const std::uint8_t* images, std::size_t n, std::size_t pixels, std::uint8_t threshold,
                   std::uint64_t* out, std::size_t words) {
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t* img = images + i * pixels;
        std::uint64_t* row = out + i * words;
        for (std::size_t w = 0; w < words; ++w) row[w] = 0;
        for (std::size_t p = 0; p < pixels; ++p)
            row[p / 64] |= static_cast<std::uint64_t>(img[p] >= threshold) << (p % 64);
    }
}

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double probe_portable(double seconds) {
    std::uint64_t w[8], acc[8] = {}, x = 0x0F0F0F0F12345678ULL;
    for (int j = 0; j < 8; ++j) w[j] = 0x9E3779B97F4A7C15ULL * (j + 1);
    const double rate = time_steps(seconds, 8, [&] {
        asm volatile("" : "+r"(x));  // opaque to the compiler, no instruction: nothing is hoisted
        for (int j = 0; j < 8; ++j) acc[j] += static_cast<std::uint64_t>(popcount64(w[j] ^ x));
    });
    volatile std::uint64_t sink = 0;
    for (int j = 0; j < 8; ++j) sink = sink + acc[j];
    return rate;
}

void conv8_portable(const Conv8View& v, const std::uint8_t* image, std::uint64_t* out, std::int32_t* scratch) {
    conv8_any(v, image, out, scratch);
}

}  // namespace bnn::kernels
