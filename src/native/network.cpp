#include "network.h"

#include "popcount.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace bnn {
namespace {

// Images per tile: a tile's activations (18 KiB for two planes of 1024
// bits) stay in L1 while each block of 32 neurons' weights is reused over it.
constexpr std::size_t kTile = 72;  // a multiple of the AVX-512 kernel's 6-image block
constexpr int kMaxThreads = 256;  // far above any core count this runs on; bounds threads and scratch
constexpr std::size_t kAlignWords = 8;  // 64 bytes
constexpr std::int32_t kNever = 1 << 28;  // beyond any popcount of any layer

int round_up(int v, int m) { return (v + m - 1) / m * m; }

int bit_length(int v) {
    int b = 0;
    for (; v > 0; v >>= 1) ++b;
    return b;
}

// Transposes a 64 x 64 bit matrix in place (bit c of word r <-> bit r of word c) by swapping
// ever smaller off-diagonal blocks.
void transpose64(std::uint64_t* a) {
    std::uint64_t mask = 0x00000000FFFFFFFFULL;
    for (int j = 32; j != 0; j >>= 1, mask ^= mask << j)
        for (int k = 0; k < 64; k = (k + j + 1) & ~j) {
            const std::uint64_t t = ((a[k] >> j) ^ a[k + j]) & mask;
            a[k] ^= t << j;
            a[k + j] ^= t;
        }
}

// Rows [image][planes][K] of a block of 64 * words images <-> sliced planes [planes][64 K][words]:
// each 64 x 64 square (64 images, one word of columns) is transposed on its way.
void transpose_block(const std::uint64_t* from, std::uint64_t* to, int planes, int K, int words, bool to_sliced) {
    std::uint64_t m[64];
    const std::size_t stride = static_cast<std::size_t>(planes) * K;
    for (int p = 0; p < planes; ++p)
        for (int k = 0; k < K; ++k)
            for (int g = 0; g < words; ++g) {
                const auto row = [&](int i) { return (static_cast<std::size_t>(g) * 64 + i) * stride + p * K + k; };
                const auto column = [&](int b) { return ((static_cast<std::size_t>(p) * K + k) * 64 + b) * words + g; };
                for (int i = 0; i < 64; ++i) m[i] = from[to_sliced ? row(i) : column(i)];
                transpose64(m);
                for (int i = 0; i < 64; ++i) to[to_sliced ? column(i) : row(i)] = m[i];
            }
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

}  // namespace

std::vector<Kernel> available_kernels() {
    std::vector<Kernel> out;
#if defined(BNN_HAVE_X86_KERNELS)
    __builtin_cpu_init();
#if defined(BNN_EMULATED_AVX512)
    // tools/check_avx512.sh: the AVX-512 kernels compiled on SIMDe's portable code run on any x86-64.
    const bool avx512 = true;
#else
    // Every feature the AVX-512 kernel's file is compiled with (-mavx512f/bw/vl/vpopcntdq), or an
    // instruction the CPU lacks could be emitted anywhere in it.
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
    if (avx512) {
        out.push_back({"avx512", kernels::layer_avx512, kernels::pack_avx512, kernels::probe_avx512});
        out.push_back({"avx512-bitslice", kernels::layer_avx512, kernels::pack_avx512,
                       kernels::probe_avx512_bitslice, kernels::layer_avx512_bitslice, 8});
    }
    if (__builtin_cpu_supports("avx2")) {
        out.push_back({"avx2-bitslice", kernels::layer_avx2, kernels::pack_avx2, kernels::probe_avx2_bitslice,
                       kernels::layer_avx2_bitslice, 4});
        out.push_back({"avx2", kernels::layer_avx2, kernels::pack_avx2, kernels::probe_avx2});
    }
#endif
#if defined(BNN_HAVE_NEON_KERNELS)
    out.push_back({"neon", kernels::layer_neon, kernels::pack_neon, kernels::probe_neon});  // Advanced SIMD: every aarch64 CPU has it
#endif
    out.push_back({"portable-bitslice", kernels::layer_portable, kernels::pack_portable,
                   kernels::probe_portable_bitslice, kernels::layer_portable_bitslice, 8});
    out.push_back({"portable", kernels::layer_portable, kernels::pack_portable, kernels::probe_portable});
    return out;
}

Kernel select_kernel(const std::string& name) {
    const auto kernels = available_kernels();
    if (name.empty()) return kernels.front();
    std::string known;
    for (const auto& k : kernels) {
        if (name == k.name) return k;
        known += (known.empty() ? "" : ", ") + std::string(k.name);
    }
    throw std::invalid_argument("kernel '" + name + "' cannot run on this CPU or is unknown; available: " + known);
}

Network::Network(const std::vector<LayerInput>& layers, int activation_bits, int n_classes, int pixels,
                 const std::vector<int>& pixel_thresholds, const std::string& kernel)
    : kernel_(select_kernel(kernel)), pixel_thresholds_(pixel_thresholds), n_classes_(n_classes), pixels_(pixels) {
    if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
    if (activation_bits != 1 && activation_bits != 2) throw std::invalid_argument("activation_bits must be 1 or 2");
    if (pixels < 1 || pixels > layers[0].mw)
        throw std::invalid_argument("layer 0 has fewer inputs than the image has pixels");
    const std::size_t n_pixel_thresholds = pixel_thresholds.size();
    if (n_pixel_thresholds < 1 || n_pixel_thresholds > 2 || (n_pixel_thresholds == 2 && activation_bits != 2))
        throw std::invalid_argument("pixels take one threshold, or two (3 levels) in a W1A2 network");
    for (int t : pixel_thresholds)
        if (t < 0 || t > 256) throw std::invalid_argument("pixel thresholds must be in 0..256");
    const int K0 = (layers[0].mw + 63) / 64;
    pixel_columns_.assign(K0, 0);
    layer0_columns_.assign(K0, 0);
    for (int c = 0; c < layers[0].mw; ++c) {
        if (c < pixels) pixel_columns_[c / 64] |= std::uint64_t{1} << (c % 64);
        layer0_columns_[c / 64] |= std::uint64_t{1} << (c % 64);
    }
    int in_planes = static_cast<int>(n_pixel_thresholds);
    for (std::size_t l = 0; l < layers.size(); ++l) {
        const LayerInput& in = layers[l];
        const bool last = l + 1 == layers.size();
        if (in.mh < 1 || in.mw < 1 || in.nt < 1 || in.nt > 2)
            throw std::invalid_argument("layer " + std::to_string(l) + ": bad geometry");
        if (l > 0 && in.mw != layers[l - 1].mh)
            throw std::invalid_argument("layer " + std::to_string(l) + ": inputs do not match the previous layer's outputs");
        if (last && in.nt != 1) throw std::invalid_argument("the last layer takes one threshold per neuron");
        if (activation_bits == 1 && in.nt != 1) throw std::invalid_argument("W1A1 layers take one threshold per neuron");
        Layer L;
        const int K = (in.mw + 63) / 64;
        const int groups = round_up((in.mh + kernels::kLanes - 1) / kernels::kLanes, kernels::kGroupBlock);
        L.mw = in.mw;
        // One plane of bits: W1A1 acc = popcount(xnor) = mw - pc; W1A2 acc = dot = mw - 2 pc.
        // Two planes (3-level input): acc = popcount(m) - 2 pc (src/bnn/bits.py).
        L.scale = (activation_bits == 2 && in_planes == 1) ? 2 : 1;
        L.weights.assign(static_cast<std::size_t>(groups) * K * kernels::kLanes);
        std::uint64_t* w = L.weights.data;
        for (int n = 0; n < in.mh; ++n)
            for (int c = 0; c < in.mw; ++c)
                if (in.weights[static_cast<std::size_t>(n) * in.mw + c])
                    w[(static_cast<std::size_t>(n / kernels::kLanes) * K + c / 64) * kernels::kLanes + n % kernels::kLanes] |=
                        std::uint64_t{1} << (c % 64);
        const int out_planes = last ? 0 : in.nt;
        const int neurons = groups * kernels::kLanes;
        // Padded neurons: bit 0 never set, bit 1 always set, so that one plane gives 0 and two
        // planes give m = s = 0 (kernels.h). "Never" is limit -1 for one input plane (pc <= -1)
        // and kNever for two (2 pc + kNever <= popcount(m)); "always" is the opposite bound.
        const std::int32_t never = in_planes == 1 ? -1 : kNever, always = in_planes == 1 ? kNever : -kNever;
        L.limits.assign(static_cast<std::size_t>(std::max(out_planes, 1)) * neurons, never);
        if (out_planes == 2) std::fill(L.limits.begin() + neurons, L.limits.end(), always);
        for (int q = 0; q < out_planes; ++q)
            for (int n = 0; n < in.mh; ++n) {
                const std::int64_t t = in.thresholds[static_cast<std::size_t>(n) * in.nt + q];
                // One plane: acc > T <=> scale * pc < mw - T <=> pc <= floor((mw - T - 1) / scale).
                // Two planes: popcount(m) - 2 pc > T <=> 2 pc + (T + 1) <= popcount(m).
                const std::int64_t lim = in_planes == 1 ? floor_div(in.mw - t - 1, L.scale) : t + 1;
                L.limits[static_cast<std::size_t>(q) * neurons + n] =
                    static_cast<std::int32_t>(std::clamp<std::int64_t>(lim, -kNever, kNever));
            }
        L.view = {w, L.limits.data(), K, in_planes, groups, out_planes, (in.mh + 63) / 64};
        if (kernel_.sliced && !last) {
            // Each neuron's table entry per input triple: the pattern of its three weights (bitslice.h).
            const int triples = (in.mw + 2) / 3;
            const int per_chunk = kernels::triples_per_chunk(kernel_.slice_words);
            const int chunks = (triples + per_chunk - 1) / per_chunk;
            const std::size_t entry_bytes = 2 * 8 * static_cast<std::size_t>(kernel_.slice_words);
            L.offsets.assign(static_cast<std::size_t>(chunks) * in.mh * per_chunk, 0);
            for (int c = 0; c < chunks; ++c)
                for (int n = 0; n < in.mh; ++n)
                    for (int t = 0; t < per_chunk; ++t) {
                        int pattern = 0;
                        for (int k = 0; k < 3; ++k) {
                            const int j = 3 * (c * per_chunk + t) + k;
                            if (j < in.mw && in.weights[static_cast<std::size_t>(n) * in.mw + j]) pattern |= 1 << k;
                        }
                        L.offsets[(static_cast<std::size_t>(c) * in.mh + n) * per_chunk + t] =
                            static_cast<std::uint16_t>((t * 8 + pattern) * entry_bytes);
                    }
            L.sliced = {L.offsets.data(), L.limits.data(), neurons, in.mw, in.mh, in_planes, out_planes,
                        64 * K, 64 * L.view.out_K, chunks, 5 + bit_length(in.mw >> 5)};
        }
        layers_.push_back(std::move(L));
        if (last) last_thresholds_.assign(in.thresholds, in.thresholds + in.mh);
        in_planes = in.nt;
    }
    // Layers were moved into the vector: re-point the views at their own storage.
    for (auto& L : layers_) {
        L.view.weights = L.weights.data;
        L.view.limits = L.limits.data();
        L.sliced.offsets = L.offsets.data();
        L.sliced.limits = L.limits.data();
    }
    if (n_classes < 1 || n_classes > layers.back().mh)
        throw std::invalid_argument("number of classes must be between 1 and the last layer's outputs");
}

std::size_t Network::stride_words() const {
    std::size_t s = 0;
    for (const auto& L : layers_) {
        s = std::max(s, static_cast<std::size_t>(L.view.in_planes) * L.view.K);
        s = std::max(s, static_cast<std::size_t>(L.view.out_planes) * L.view.out_K);
    }
    return s;
}

void Network::pack_plane(const std::uint8_t* images, std::size_t n, int threshold, std::uint64_t* out) const {
    const std::size_t K = pixel_columns_.size();
    if (threshold >= 1 && threshold <= 255) {
        kernel_.pack(images, n, static_cast<std::size_t>(pixels_), static_cast<std::uint8_t>(threshold), out, K);
        return;
    }
    for (std::size_t i = 0; i < n; ++i)  // every pixel (threshold 0) or none (256) is above it
        for (std::size_t k = 0; k < K; ++k) out[i * K + k] = threshold == 0 ? pixel_columns_[k] : 0;
}

void Network::AlignedWords::assign(std::size_t words) {
    raw.assign(words + kAlignWords, 0);
    const auto addr = reinterpret_cast<std::uintptr_t>(raw.data());
    data = raw.data() + ((64 - addr % 64) % 64) / 8;
}

std::size_t Network::sliced_words() const {
    std::size_t s = 0;
    for (const auto& L : layers_) s = std::max(s, static_cast<std::size_t>(L.view.in_planes) * L.view.K * 64);
    return s * static_cast<std::size_t>(kernel_.slice_words);
}

void Network::pack_input(const std::uint8_t* images, std::size_t n, Scratch& scratch) const {
    const std::size_t K0 = pixel_columns_.size();
    if (pixel_thresholds_.size() == 1) {
        pack_plane(images, n, pixel_thresholds_[0], scratch.a.data());
        return;
    }
    // 3-level pixels as two planes (kernels.h) from b0 = p >= t0 and b1 = p >= t1: m = !(b0 ^ b1),
    // s = b0 & b1, m = 0 past the layer's columns. Padding columns have b0 = b1 = 0: m = 1, s = 0, value -1.
    std::uint64_t *b0 = scratch.b.data(), *b1 = b0 + n * K0, *a = scratch.a.data();
    pack_plane(images, n, pixel_thresholds_[0], b0);
    pack_plane(images, n, pixel_thresholds_[1], b1);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < K0; ++k) {
            const std::uint64_t lo = b0[i * K0 + k], hi = b1[i * K0 + k];
            a[i * 2 * K0 + k] = ~(lo ^ hi) & layer0_columns_[k];
            a[i * 2 * K0 + K0 + k] = lo & hi;
        }
}

void Network::run_layers(std::size_t from, std::size_t n, bool argmax, const Outputs& out, std::size_t first,
                         Scratch& scratch) const {
    std::uint64_t* in = scratch.a.data();
    std::uint64_t* next = scratch.b.data();
    std::int32_t* active = scratch.active.data();
    for (std::size_t l = from; l < layers_.size(); ++l) {
        const auto& v = layers_[l].view;
        if (v.in_planes == 2) {  // popcount(m) of each image: the number of nonzero activations
            const std::size_t stride = 2 * static_cast<std::size_t>(v.K);
            for (std::size_t i = 0; i < n; ++i) {
                int p = 0;
                for (int k = 0; k < v.K; ++k) p += popcount64(in[i * stride + k]);
                active[i] = p;
            }
        }
        if (l + 1 == layers_.size()) {
            kernel_.layer(v, in, active, n, nullptr, scratch.counts.data());
            break;
        }
        std::fill(next, next + n * v.out_planes * v.out_K, 0);
        kernel_.layer(v, in, active, n, next, nullptr);
        std::swap(in, next);
    }
    const Layer& last = layers_.back();
    const int neurons = last.view.groups * kernels::kLanes;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t* pc = scratch.counts.data() + i * neurons;
        const int base = last.view.in_planes == 2 ? active[i] : last.mw;
        const int scale = last.view.in_planes == 2 ? 2 : last.scale;
        int best = 0, best_score = 0, highest = 0;
        for (int c = 0; c < n_classes_; ++c) {
            const int score = base - scale * pc[c];
            const bool bit = score > last_thresholds_[c];
            if (c == 0 || score > best_score) best = c, best_score = score;
            if (bit) highest = c;
            const std::size_t o = (first + i) * n_classes_ + c;
            if (out.scores) out.scores[o] = score;
            if (out.bits) out.bits[o] = bit;
        }
        out.classes[first + i] = argmax ? best : highest;
    }
}

void Network::run_tile(const std::uint8_t* images, std::size_t n, bool argmax, const Outputs& out,
                       std::size_t first, Scratch& scratch) const {
    pack_input(images, n, scratch);
    run_layers(0, n, argmax, out, first, scratch);
}

void Network::run_block(const std::uint8_t* images, bool argmax, const Outputs& out, std::size_t first,
                        Scratch& scratch) const {
    // The hidden layers sliced, the last one (a few neurons, counts wanted per image) on rows.
    const std::size_t n = block_images();
    const int words = kernel_.slice_words;
    pack_input(images, n, scratch);
    std::uint64_t* in = scratch.sliced_a.data;
    std::uint64_t* next = scratch.sliced_b.data;
    const auto& first_view = layers_.front().view;
    transpose_block(scratch.a.data(), in, first_view.in_planes, first_view.K, words, true);
    const std::size_t hidden = layers_.size() - 1;
    for (std::size_t l = 0; l < hidden; ++l) {
        const auto& v = layers_[l].sliced;
        // The next layer reads whole words of columns: those past mh are zero, as on rows.
        const std::size_t plane = static_cast<std::size_t>(v.out_columns) * words;
        for (int q = 0; q < v.out_planes; ++q)
            std::fill(next + q * plane + static_cast<std::size_t>(v.mh) * words, next + (q + 1) * plane, 0);
        kernel_.sliced(v, in, next, scratch.sliced_work.data);
        std::swap(in, next);
    }
    const auto& last_view = layers_.back().view;
    transpose_block(in, scratch.a.data(), last_view.in_planes, last_view.K, words, false);
    run_layers(hidden, n, argmax, out, first, scratch);
}

void Network::run(const std::uint8_t* images, std::size_t n, int threads, bool argmax, const Outputs& out) const {
    if (n == 0) return;
    // Whole blocks go to the sliced layers (when the kernel has them and there is a hidden layer),
    // the rest in tiles: a small batch never waits for a block.
    const std::size_t block = kernel_.sliced && layers_.size() > 1 ? block_images() : 0;
    const std::size_t blocks = block ? n / block : 0;
    const std::size_t sliced_images = blocks * block, rest = n - sliced_images;
    const std::size_t tiles = (rest + kTile - 1) / kTile, items = blocks + tiles;
    // One worker per block or tile at most, and never more than kMaxThreads (each costs a thread and its
    // scratch); the Python layer caps `threads` to the cores the process may use before it gets here.
    const std::size_t asked = static_cast<std::size_t>(std::clamp(threads, 1, kMaxThreads));
    const std::size_t workers = std::min(asked, items);
    const std::size_t stride = stride_words();
    const std::size_t neurons = static_cast<std::size_t>(layers_.back().view.groups) * kernels::kLanes;
    // Scratch is allocated here, before any thread starts, so that an
    // allocation failure is an exception in the caller, never in a worker.
    // Small batches get small buffers: batch-1 latency should not pay for a whole tile.
    const std::size_t rows = std::max(std::min(kTile, rest), blocks ? block : 0);
    std::size_t work_words = 0;
    for (const auto& L : layers_)
        if (!L.offsets.empty()) work_words = std::max(work_words, kernels::sliced_scratch_words(L.sliced, kernel_.slice_words));
    std::vector<Scratch> scratch(workers);
    for (auto& s : scratch) {
        s.a.assign(rows * stride, 0);
        s.b.assign(rows * stride, 0);
        s.counts.assign(rows * neurons, 0);
        s.active.assign(rows, 0);
        if (blocks) {
            s.sliced_a.assign(sliced_words());
            s.sliced_b.assign(sliced_words());
            s.sliced_work.assign(work_words);
        }
    }
    std::atomic<std::size_t> next_item{0};
    auto work = [&](Scratch& s) {
        for (std::size_t t; (t = next_item.fetch_add(1)) < items;) {
            if (t < blocks) {
                run_block(images + t * block * pixels_, argmax, out, t * block, s);
                continue;
            }
            const std::size_t first = sliced_images + (t - blocks) * kTile, count = std::min(kTile, n - first);
            run_tile(images + first * pixels_, count, argmax, out, first, s);
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (std::size_t w = 1; w < workers; ++w) {
        try {
            pool.emplace_back(work, std::ref(scratch[w]));
        } catch (const std::system_error&) {
            break;  // fewer threads than asked: the others take the remaining tiles
        }
    }
    work(scratch[0]);
    for (auto& t : pool) t.join();
}

}  // namespace bnn
