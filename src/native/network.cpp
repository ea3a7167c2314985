#include "network.h"

#include "popcount.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace bnn {
namespace {

// Images per tile: a tile's activations (18 KiB for two planes of 1024
// bits) stay in L1 while each block of 32 neurons' weights is reused over it.
constexpr std::size_t kTile = 72;  // a multiple of the AVX-512 kernel's 6-image block
constexpr std::size_t kConvRows = 64;
constexpr std::size_t kConvTile = 4;  // images per work item of a convolutional network (~1 ms)
// A convolutional network's last images go into a partial sliced block when they are at least
// 1 / kPartialBlock of a block: a block costs the same whatever its count, about what half as many
// images cost one by one on the popcount kernel (avx2 on Zen 3: 1.8-1.9x slower per image).
constexpr std::size_t kPartialBlock = 2;
// A team's items are dealt one at a time (an image, an output pixel: tens of microseconds), or in
// runs of these (a 64 x 64 transpose, a pooled pixel: well under a microsecond each).
constexpr std::size_t kTransposeGrain = 16;
constexpr std::size_t kPoolGrain = 8;
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

// Squares [first, last) of a block (square (g * planes + p) * K + k: word k of plane p of the images
// of word g): rows [image][planes][K] of 64 * words images <-> sliced planes [planes][64 K][words].
void transpose_squares(const std::uint64_t* from, std::uint64_t* to, int planes, int K, int words, bool to_sliced,
                       std::size_t first, std::size_t last) {
    std::uint64_t m[64];
    const std::size_t stride = static_cast<std::size_t>(planes) * K;  // a row's words
    for (std::size_t square = first; square < last; ++square) {
        const std::size_t g = square / stride, pk = square % stride;  // pk = p * K + k
        const auto row = [&](int i) { return (g * 64 + i) * stride + pk; };
        const auto column = [&](int b) { return (pk * 64 + b) * words + g; };
        for (int i = 0; i < 64; ++i) m[i] = from[to_sliced ? row(i) : column(i)];
        transpose64(m);
        for (int i = 0; i < 64; ++i) to[to_sliced ? column(i) : row(i)] = m[i];
    }
}

std::size_t block_squares(int planes, int K, int words) { return static_cast<std::size_t>(words) * planes * K; }

void transpose_block(const std::uint64_t* from, std::uint64_t* to, int planes, int K, int words, bool to_sliced) {
    transpose_squares(from, to, planes, K, words, to_sliced, 0, block_squares(planes, K, words));
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

}  // namespace

// The team of threads that runs a convolutional block together: a barrier between phases (the last
// to arrive starts the next generation; waiters yield: a core may be shared) and a counter of tickets
// from which each phase's items are dealt.
class Team {
public:
    explicit Team(int members) : members_(members) {}
    int size() const { return members_; }
    void wait() {
        const int generation = generation_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == members_) {
            arrived_.store(0, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
            return;
        }
        while (generation_.load(std::memory_order_acquire) == generation) std::this_thread::yield();
    }
    std::size_t ticket() { return tickets_.fetch_add(1, std::memory_order_relaxed); }

private:
    const int members_;
    std::atomic<int> arrived_{0}, generation_{0};
    std::atomic<std::size_t> tickets_{0};
};

// One member of a team. A phase's items go to members as they ask, in runs of `grain`, so that a
// member slowed down (a virtual CPU shared with another guest, a preempted thread) takes fewer of
// them and the others do not wait for it at the barrier (a fixed share each made them wait 6-12 %
// of the time on a 2-core VM). Every member deals the same phases in the same order, a wait()
// between them, and takes exactly one ticket past each phase's end: so each knows, without
// asking, where the next phase's tickets start.
class TeamMember {
public:
    TeamMember(Team& team, int index) : team_(team), index_(index) {}
    int index() const { return index_; }
    int size() const { return team_.size(); }
    void wait() { team_.wait(); }
    // f(first, last) for this member's runs of items [0, n).
    template <class F>
    void deal(std::size_t n, std::size_t grain, F&& f) {
        const std::size_t runs = (n + grain - 1) / grain;
        for (std::size_t r; (r = team_.ticket() - base_) < runs;) f(r * grain, std::min(n, (r + 1) * grain));
        base_ += runs + static_cast<std::size_t>(team_.size());
    }

private:
    Team& team_;
    const int index_;
    std::size_t base_ = 0;
};

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
        out.push_back({"avx512", kernels::layer_avx512, kernels::pack_avx512, kernels::probe_avx512, kernels::conv8_avx512});
        out.push_back({"avx512-bitslice", kernels::layer_avx512, kernels::pack_avx512,
                       kernels::probe_avx512_bitslice, kernels::conv8_avx512, kernels::layer_avx512_bitslice, 8});
    }
    if (__builtin_cpu_supports("avx2")) {
        out.push_back({"avx2-bitslice", kernels::layer_avx2, kernels::pack_avx2, kernels::probe_avx2_bitslice,
                       kernels::conv8_avx2, kernels::layer_avx2_bitslice, 4});
        out.push_back({"avx2", kernels::layer_avx2, kernels::pack_avx2, kernels::probe_avx2, kernels::conv8_avx2});
    }
#endif
#if defined(BNN_HAVE_NEON_KERNELS)
    out.push_back({"neon", kernels::layer_neon, kernels::pack_neon, kernels::probe_neon, kernels::conv8_neon});  // Advanced SIMD: every aarch64 CPU has it
#endif
    out.push_back({"portable-bitslice", kernels::layer_portable, kernels::pack_portable,
                   kernels::probe_portable_bitslice, kernels::conv8_portable, kernels::layer_portable_bitslice, 8});
    out.push_back({"portable", kernels::layer_portable, kernels::pack_portable, kernels::probe_portable,
                   kernels::conv8_portable});
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

namespace {

// The bit of weight value w in copy r of a layer whose 2-bit weights run as `copies` binary rows:
// with u, v = +-1, w = (u + v) / 2 covers -1, 0, 1 (copy 0 = u, 1 = v), and w = a + b with a in
// {-1, 0, 1}, b in {-1, 0} covers -2 (copies 2, 3 are b's u and v). A bit is +1.
bool copy_bit(int w, int r, int copies) {
    if (copies == 1) return w > 0;
    const int a = w >= 1 ? 1 : w == 0 ? 0 : -1, b = w == -2 ? -1 : 0;
    const int v = r < 2 ? a : b;
    return r % 2 == 0 ? v >= 0 : v > 0;
}

void check_layer(bool ok, std::size_t l, const std::string& what) {
    if (!ok) throw std::invalid_argument("layer " + std::to_string(l) + ": " + what);
}

}  // namespace

Network::Network(const std::vector<LayerInput>& layers, int activation_bits, int n_classes, int pixels,
                 const std::vector<int>& pixel_thresholds, const std::string& kernel, int score_bits)
    : kernel_(select_kernel(kernel)),
      pixel_thresholds_(pixel_thresholds),
      fixed_point_(pixel_thresholds.empty()),
      n_classes_(n_classes),
      pixels_(pixels),
      score_bits_(score_bits) {
    if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
    if (activation_bits != 1 && activation_bits != 2) throw std::invalid_argument("activation_bits must be 1 or 2");
    if (score_bits != 0 && (score_bits < 2 || score_bits > 31)) throw std::invalid_argument("score_bits must be 0 or 2..31");
    const std::size_t n_pixel_thresholds = pixel_thresholds.size();
    if (n_pixel_thresholds > 2 || (n_pixel_thresholds == 2 && activation_bits != 2))
        throw std::invalid_argument("pixels take one threshold, or two (3 levels) with 2-bit activations");
    for (int t : pixel_thresholds)
        if (t < 0 || t > 256) throw std::invalid_argument("pixel thresholds must be in 0..256");
    const LayerInput& first = layers[0];
    if (fixed_point_) {
        if (layers.size() < 2) throw std::invalid_argument("a network on 8-bit pixels needs a layer after its first");
        if (pixels != first.size * first.size * first.channels)
            throw std::invalid_argument("8-bit pixels go into a convolution over the whole image");
    } else if (pixels < 1 || pixels > first.mw || first.size != 1) {
        throw std::invalid_argument("layer 0 has fewer inputs than the image has pixels");
    }
    const int K0 = (first.mw + 63) / 64;
    pixel_columns_.assign(K0, 0);
    layer0_columns_.assign(K0, 0);
    for (int c = 0; c < first.mw; ++c) {
        if (c < pixels) pixel_columns_[c / 64] |= std::uint64_t{1} << (c % 64);
        layer0_columns_[c / 64] |= std::uint64_t{1} << (c % 64);
    }
    int in_planes = static_cast<int>(n_pixel_thresholds);
    int side = first.size;  // of the map the next layer reads
    for (std::size_t l = 0; l < layers.size(); ++l) {
        const LayerInput& in = layers[l];
        const bool last = l + 1 == layers.size();
        check_layer(in.mh >= 1 && in.mw >= 1 && in.nt >= 1 && in.nt <= 2, l, "bad geometry");
        check_layer(in.size >= 1 && in.kernel >= 1 && in.kernel <= in.size && in.channels >= 1 &&
                        static_cast<std::int64_t>(in.kernel) * in.kernel * in.channels == in.mw,
                    l, "its columns are not kernel * kernel * channels");
        if (l > 0) {
            check_layer(in.channels == layers[l - 1].mh, l, "inputs do not match the previous layer's outputs");
            check_layer(in.size == side, l, "its input map is not the previous layer's output map");
        }
        const int out_side = in.size - in.kernel + 1;
        check_layer(!in.pool || out_side % 2 == 0, l, "a 2x2 pool needs an even map");
        check_layer(!last || out_side == 1, l, "the last layer must give one output per neuron");
        check_layer(!last || in.nt == 1, l, "the last layer takes one threshold per neuron");
        check_layer(activation_bits == 2 || in.nt == 1, l, "1-bit activations take one threshold per neuron");
        bool minus_two = false, two_bit = false;
        for (std::size_t i = 0; i < static_cast<std::size_t>(in.mh) * in.mw; ++i) {
            const int w = in.weights[i];
            check_layer(w >= -2 && w <= 1 && (w == 1 || w == -1 || activation_bits == 2), l,
                        "weights must be +-1, or -2..1 with 2-bit activations");
            two_bit |= w != 1 && w != -1;
            minus_two |= w == -2;
        }
        Layer L;
        L.mw = in.mw;
        L.size = in.size;
        L.window = in.kernel;
        L.pool = in.pool;
        L.out_side = in.pool ? out_side / 2 : out_side;
        L.slot = (in.channels + 63) / 64;
        const bool conv8 = fixed_point_ && l == 0;
        L.copies = conv8 || !two_bit ? 1 : minus_two ? 4 : 2;
        check_layer(L.copies == 1 || in_planes == 2, l, "2-bit weights need 3-level inputs");
        L.half = L.copies > 1 ? 2 : 1;
        // Rows are the previous map itself when the layer reads one pixel of it, whole, once.
        L.gather = !conv8 && (in.size > 1 || L.copies > 1);
        const int K = L.copies * in.kernel * in.kernel * L.slot;
        const int groups = round_up((in.mh + kernels::kLanes - 1) / kernels::kLanes, kernels::kGroupBlock);
        // One plane of bits: W1A1 acc = popcount(xnor) = mw - pc; W1A2 acc = dot = mw - 2 pc.
        // Two planes (3-level input): acc = (popcount(m) - 2 pc) / half (src/bnn/bits.py).
        L.scale = (activation_bits == 2 && in_planes == 1) ? 2 : 1;
        L.weights.assign(static_cast<std::size_t>(groups) * K * kernels::kLanes);
        std::uint64_t* w = L.weights.data;
        // Column c = window position j, channel ch sits at bit j * 64 * slot + ch of each copy's K / copies words.
        const int copy_words = K / L.copies;
        for (int n = 0; n < in.mh && !conv8; ++n)
            for (int c = 0; c < in.mw; ++c)
                for (int r = 0; r < L.copies; ++r) {
                    if (!copy_bit(in.weights[static_cast<std::size_t>(n) * in.mw + c], r, L.copies)) continue;
                    const int col = (r * copy_words + c / in.channels * L.slot) * 64 + c % in.channels;
                    w[(static_cast<std::size_t>(n / kernels::kLanes) * K + col / 64) * kernels::kLanes + n % kernels::kLanes] |=
                        std::uint64_t{1} << (col % 64);
                }
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
                // Two planes: (popcount(m) - 2 pc) / half > T <=> 2 pc + (half T + 1) <= popcount(m)
                // (popcount(m) - 2 pc is a multiple of half).
                const std::int64_t lim = in_planes == 1 ? floor_div(in.mw - t - 1, L.scale) : L.half * t + 1;
                L.limits[static_cast<std::size_t>(q) * neurons + n] =
                    static_cast<std::int32_t>(std::clamp<std::int64_t>(lim, -kNever, kNever));
            }
        L.view = {w, L.limits.data(), K, in_planes, groups, out_planes, (in.mh + 63) / 64};
        if (conv8) {
            // 2 dot > T (the sum in 1/256 units, as the hardware's fixed point holds it) <=> dot > floor(T / 2).
            const int blocks = (in.mh + kernels::kConv8Block - 1) / kernels::kConv8Block, B = kernels::kConv8Block;
            conv8_weights_.assign(static_cast<std::size_t>(blocks) * in.mw * B, 0);
            for (int n = 0; n < in.mh; ++n)
                for (int c = 0; c < in.mw; ++c)
                    conv8_weights_[(static_cast<std::size_t>(n / B) * in.mw + c) * B + n % B] =
                        in.weights[static_cast<std::size_t>(n) * in.mw + c];
            conv8_limits_.assign(static_cast<std::size_t>(in.nt) * blocks * B, std::numeric_limits<std::int32_t>::max());
            if (in.nt == 2) std::fill(conv8_limits_.begin() + blocks * B, conv8_limits_.end(), std::numeric_limits<std::int32_t>::min());
            for (int q = 0; q < in.nt; ++q)
                for (int n = 0; n < in.mh; ++n)
                    conv8_limits_[static_cast<std::size_t>(q) * blocks * B + n] =
                        static_cast<std::int32_t>(floor_div(in.thresholds[static_cast<std::size_t>(n) * in.nt + q], 2));
            conv8_limits16_.resize(conv8_limits_.size());
            for (std::size_t i = 0; i < conv8_limits_.size(); ++i)  // |dot| < 2^15 - 1 when int16 sums are used
                conv8_limits16_[i] = static_cast<std::int16_t>(std::clamp<std::int32_t>(conv8_limits_[i], -32768, 32767));
            pixel_values_.resize(256);
            for (int p = 0; p < 256; ++p) pixel_values_[p] = static_cast<std::int16_t>(std::min((512 * p + 255) / 510 - 128, 127));
            // |dot| <= 128 * 2 * mw: int16 sums while that stays below 2^15.
            conv8_ = {conv8_weights_.data(), conv8_limits_.data(), conv8_limits16_.data(), pixel_values_.data(), in.size, in.channels, in.kernel,
                      in.mw, blocks, in.nt, 256 * in.mw >= 32768};
            // x86's pairs of columns (conv8_pairs.h) sum u = value + 128 times w: |u w| <= 510 per column.
            if (510 * in.mw < 32768) {
                const int span = in.kernel * in.channels, row_pairs = (span + 1) / 2, pairs = in.kernel * row_pairs;
                conv8_pair_weights_.assign(static_cast<std::size_t>(blocks) * pairs * 2 * B, 0);
                std::vector<std::int64_t> sum_w(static_cast<std::size_t>(blocks) * B, 0);
                for (int n = 0; n < in.mh; ++n)
                    for (int c = 0; c < in.mw; ++c) {
                        const int w = in.weights[static_cast<std::size_t>(n) * in.mw + c];
                        const int pair = c / span * row_pairs + c % span / 2;
                        conv8_pair_weights_[((static_cast<std::size_t>(n / B) * pairs + pair) * B + n % B) * 2 + c % span % 2] = static_cast<std::int8_t>(w);
                        sum_w[n] += w;
                    }
                conv8_pair_limits_.resize(conv8_limits_.size());
                for (std::size_t i = 0; i < conv8_limits_.size(); ++i)
                    conv8_pair_limits_[i] = static_cast<std::int16_t>(
                        std::clamp<std::int64_t>(conv8_limits_[i] + 128 * sum_w[i % sum_w.size()], -32768, 32767));
                pixel_bytes_.resize(256);
                for (int p = 0; p < 256; ++p) pixel_bytes_[p] = static_cast<std::uint8_t>(pixel_values_[p] + 128);
                conv8_.pair_weights = conv8_pair_weights_.data();
                conv8_.pair_limits = conv8_pair_limits_.data();
                conv8_.pixel_bytes = pixel_bytes_.data();
            }
            L.view.out_K = blocks;
        }
        if (kernel_.sliced && !last && !conv8) {
            // The sliced layer's binary columns: copy r of column j is column r * mw + j (copy_bit).
            const int columns = L.copies * in.mw;
            const auto bit = [&](int n, int j) {
                return copy_bit(in.weights[static_cast<std::size_t>(n) * in.mw + j % in.mw], j / in.mw, L.copies);
            };
            // Each neuron's table entry per input triple: the pattern of its three weights (bitslice.h).
            const int triples = (columns + 2) / 3;
            const int per_chunk = kernels::triples_per_chunk(kernel_.slice_words);
            const int chunks = (triples + per_chunk - 1) / per_chunk;
            L.offsets.assign(static_cast<std::size_t>(chunks) * in.mh * per_chunk, 0);
            for (int c = 0; c < chunks; ++c)
                for (int n = 0; n < in.mh; ++n)
                    for (int t = 0; t < per_chunk; ++t) {
                        int pattern = 0;
                        for (int k = 0; k < 3; ++k) {
                            const int j = 3 * (c * per_chunk + t) + k;
                            if (j < columns && bit(n, j)) pattern |= 1 << k;
                        }
                        L.offsets[(static_cast<std::size_t>(c) * in.mh + n) * per_chunk + t] =
                            static_cast<std::uint16_t>((t * 8 + pattern) * 2);
                    }
            // A window's column (ky, kx, ch) in the sliced map [pixel][plane][64 slot][words] (kernels.h).
            if (L.gather)
                for (int j = 0; j < columns; ++j) {
                    const int c = j % in.mw, pixel = c / in.channels, ch = c % in.channels;
                    const int ky = pixel / in.kernel, kx = pixel % in.kernel;
                    L.sources.push_back(static_cast<std::uint32_t>((ky * in.size + kx) * in_planes * 64 * L.slot + ch));
                }
            L.sliced = {L.offsets.data(), nullptr, L.limits.data(), neurons, columns, in.mh, in_planes, out_planes,
                        64 * L.slot, 64 * L.view.out_K, chunks, std::max(kernels::kSliceStatePlanes, 5 + bit_length(columns >> 5)), 0, in.mh};
        }
        layers_.push_back(std::move(L));
        if (last) last_thresholds_.assign(in.thresholds, in.thresholds + in.mh);
        in_planes = in.nt;
        side = layers_.back().out_side;
    }
    // Layers were moved into the vector: re-point the views at their own storage.
    for (auto& L : layers_) {
        L.view.weights = L.weights.data;
        L.view.limits = L.limits.data();
        L.sliced.offsets = L.offsets.data();
        L.sliced.sources = L.sources.empty() ? nullptr : L.sources.data();
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

void Network::AlignedWords::assign(std::size_t words, bool zeroed) {
    raw.reset(zeroed ? new std::uint64_t[words + kAlignWords]() : new std::uint64_t[words + kAlignWords]);
    const auto addr = reinterpret_cast<std::uintptr_t>(raw.get());
    data = raw.get() + ((64 - addr % 64) % 64) / 8;
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

void Network::count_active(const kernels::LayerView& v, const std::uint64_t* in, std::size_t n,
                           std::int32_t* active) const {
    // popcount(m) of each row: the number of nonzero activations (two planes only)
    const std::size_t stride = 2 * static_cast<std::size_t>(v.K);
    for (std::size_t i = 0; i < n; ++i) {
        int p = 0;
        for (int k = 0; k < v.K; ++k) p += popcount64(in[i * stride + k]);
        active[i] = p;
    }
}

void Network::finish(const std::int32_t* pc, int active, Rule rule, const Outputs& out, std::size_t index) const {
    const Layer& last = layers_.back();
    const int base = last.view.in_planes == 2 ? active : last.mw;
    const int scale = last.view.in_planes == 2 ? 2 : last.scale;
    int best = 0, best_score = 0, highest = 0;
    for (int c = 0; c < n_classes_; ++c) {
        int score = (base - scale * pc[c]) / last.half;
        if (score_bits_) {  // the hardware's accumulator register: two's complement of score_bits bits
            const std::uint32_t span = std::uint32_t{1} << score_bits_;
            score = static_cast<int>((static_cast<std::uint32_t>(score) + span / 2) % span) - static_cast<int>(span / 2);
        }
        const bool bit = score > last_thresholds_[c];
        if (c == 0 || score > best_score) best = c, best_score = score;
        if (bit) highest = c;
        const std::size_t o = index * n_classes_ + c;
        if (out.scores) out.scores[o] = score;
        if (out.bits) out.bits[o] = bit;
    }
    out.classes[index] = rule == Rule::argmax ? best : rule == Rule::positive_max ? (best_score > 0 ? best : 0) : highest;
}

void Network::run_layers(std::size_t from, std::size_t n, Rule rule, const Outputs& out, std::size_t first,
                         Scratch& scratch) const {
    std::uint64_t* in = scratch.a.data();
    std::uint64_t* next = scratch.b.data();
    std::int32_t* active = scratch.active.data();
    for (std::size_t l = from; l < layers_.size(); ++l) {
        const auto& v = layers_[l].view;
        if (v.in_planes == 2) count_active(v, in, n, active);
        if (l + 1 == layers_.size()) {
            kernel_.layer(v, in, active, n, nullptr, scratch.counts.data());
            break;
        }
        std::fill(next, next + n * v.out_planes * v.out_K, 0);
        kernel_.layer(v, in, active, n, next, nullptr);
        std::swap(in, next);
    }
    const int neurons = layers_.back().view.groups * kernels::kLanes;
    for (std::size_t i = 0; i < n; ++i) finish(scratch.counts.data() + i * neurons, active[i], rule, out, first + i);
}

void Network::run_tile(const std::uint8_t* images, std::size_t n, Rule rule, const Outputs& out,
                       std::size_t first, Scratch& scratch) const {
    pack_input(images, n, scratch);
    run_layers(0, n, rule, out, first, scratch);
}

namespace {

// A layer's rows from its input map [pixel][plane][slot words]: for each output pixel and plane,
// `copies` times the window's pixels in order (ky, kx), each `slot` words. The first copy is
// gathered, the others copied from it: with CNV W2A2's four copies, gathering each one word by word
// took 38 % of an image's time on the per-image path.
void gather_windows(const std::uint64_t* map, int size, int window, int slot, int planes, int copies,
                    std::uint64_t* rows) {
    const int side = size - window + 1;
    const std::size_t pixel = static_cast<std::size_t>(planes) * slot;
    const std::size_t copy_words = static_cast<std::size_t>(window) * window * slot;
    // With one plane a window row's pixels are adjacent: one run of window * slot words.
    const int runs = planes == 1 ? 1 : window, run = planes == 1 ? window * slot : slot;
    for (int oy = 0; oy < side; ++oy)
        for (int ox = 0; ox < side; ++ox)
            for (int p = 0; p < planes; ++p) {
                std::uint64_t* first = rows;
                for (int ky = 0; ky < window; ++ky) {
                    const std::uint64_t* from = map + (static_cast<std::size_t>(oy + ky) * size + ox) * pixel + p * slot;
                    for (int kx = 0; kx < runs; ++kx)
                        for (int k = 0; k < run; ++k) *rows++ = from[kx * pixel + k];  // a few words: no memcpy call
                }
                for (int r = 1; r < copies; ++r, rows += copy_words) std::memcpy(rows, first, copy_words * sizeof *rows);
            }
}

// 2x2, stride 2 max pool of a map [pixel][plane][words]: OR of bits (one plane); the max of 3-level
// values as planes m (value != 0), s (value == +1): +1 if any is, else 0 if any is, else -1, so
// s = OR(s) and m = s | AND(m). Output pixels [first, last) of `to`, which may be `from` when one
// thread pools in order (output pixel o is at or before every input it reads and after every one it
// wrote).
void pool_pixels(const std::uint64_t* from, std::uint64_t* to, int size, int planes, std::size_t words, int first,
                 int last) {
    const int half = size / 2;
    const std::size_t pixel = planes * words;
    for (int o = first; o < last; ++o) {
        const int y = o / half, x = o % half;
        const std::uint64_t* a = from + (static_cast<std::size_t>(2 * y) * size + 2 * x) * pixel;
        const std::uint64_t* b = a + static_cast<std::size_t>(size) * pixel;
        std::uint64_t* t = to + static_cast<std::size_t>(o) * pixel;
        for (std::size_t k = 0; k < words; ++k) {
            if (planes == 1) {
                t[k] = a[k] | a[pixel + k] | b[k] | b[pixel + k];
                continue;
            }
            const std::size_t j = words + k;  // the s plane
            const std::uint64_t s = a[j] | a[pixel + j] | b[j] | b[pixel + j];
            t[k] = s | (a[k] & a[pixel + k] & b[k] & b[pixel + k]);
            t[j] = s;
        }
    }
}

void pool(const std::uint64_t* from, std::uint64_t* to, int size, int planes, std::size_t words) {
    pool_pixels(from, to, size, planes, words, 0, size / 2 * (size / 2));
}

}  // namespace

std::size_t Network::map_words() const {
    std::size_t s = static_cast<std::size_t>(conv8_.size - conv8_.kernel + 1) * (conv8_.size - conv8_.kernel + 1) *
                    conv8_.out_planes * conv8_.blocks;
    for (const auto& L : layers_) {
        const std::size_t side = static_cast<std::size_t>(L.size - L.window + 1);
        s = std::max(s, side * side * std::max(L.view.out_planes, 1) * L.view.out_K);
    }
    return s;
}

std::size_t Network::row_words() const {
    std::size_t s = 0;
    for (const auto& L : layers_) {
        const std::size_t side = static_cast<std::size_t>(L.size - L.window + 1);
        s = std::max(s, side * side * L.view.in_planes * L.view.K);
    }
    return s;
}

void Network::run_image(const std::uint8_t* image, Rule rule, const Outputs& out, std::size_t index,
                        Scratch& scratch) const {
    std::uint64_t* map = scratch.a.data();
    kernel_.conv8(conv8_, image, map, scratch.conv8.data());
    if (layers_[0].pool) pool(map, map, conv8_.size - conv8_.kernel + 1, conv8_.out_planes, conv8_.blocks);
    run_map(map, 1, rule, out, index, scratch);
}

void Network::run_map(std::uint64_t* map, std::size_t from, Rule rule, const Outputs& out, std::size_t index,
                      Scratch& scratch) const {
    // Each layer runs over the rows of one image's output pixels (784 for CNV's layer 1): the
    // same kernels as fully connected layers, a row being a window of bit-packed pixels.
    std::uint64_t* next = map == scratch.a.data() ? scratch.b.data() : scratch.a.data();
    for (std::size_t l = from; l < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        const auto& v = L.view;
        const std::size_t n = static_cast<std::size_t>(L.size - L.window + 1) * (L.size - L.window + 1);
        const std::uint64_t* rows = map;
        if (L.gather) {
            gather_windows(map, L.size, L.window, L.slot, v.in_planes, L.copies, scratch.rows.data());
            rows = scratch.rows.data();
        }
        if (v.in_planes == 2) count_active(v, rows, n, scratch.active.data());
        if (l + 1 == layers_.size()) {
            kernel_.layer(v, rows, scratch.active.data(), 1, nullptr, scratch.counts.data());
            finish(scratch.counts.data(), scratch.active[0], rule, out, index);
            return;
        }
        std::fill(next, next + n * v.out_planes * v.out_K, 0);
        // In runs of kConvRows rows: their words (4.5 KiB for CNV's layer 1) stay in L1 while every
        // group of neurons reads them, as the layer's weights do.
        const std::size_t in_stride = static_cast<std::size_t>(v.in_planes) * v.K, out_stride = static_cast<std::size_t>(v.out_planes) * v.out_K;
        for (std::size_t r = 0; r < n; r += kConvRows)
            kernel_.layer(v, rows + r * in_stride, scratch.active.data() + r, std::min(kConvRows, n - r),
                          next + r * out_stride, nullptr);
        if (L.pool) pool(next, next, L.size - L.window + 1, v.out_planes, v.out_K);
        std::swap(map, next);
    }
}

std::size_t Network::image_map_words(std::size_t l) const {
    const Layer& L = layers_[l];
    return static_cast<std::size_t>(L.size) * L.size * L.view.in_planes * L.slot;
}

std::size_t Network::sliced_words() const {
    // The largest map a sliced block holds: each sliced layer's input and its output before a pool
    // (layer 0 of a convolutional network writes rows, not a sliced map).
    std::size_t s = 0;
    for (std::size_t l = fixed_point_ ? 1 : 0; l < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        const std::size_t side = static_cast<std::size_t>(L.size - L.window + 1);
        s = std::max(s, image_map_words(l));
        s = std::max(s, side * side * L.view.out_planes * L.view.out_K);
    }
    return s * 64 * static_cast<std::size_t>(kernel_.slice_words);
}

void Network::run_conv_block(const std::uint8_t* images, std::size_t count, Rule rule, const Outputs& out,
                             std::size_t first, Scratch& scratch, Scratch& shared, TeamMember& member) const {
    // A block of images (count of them, the rest zero) through the convolutional network, by a team
    // of threads: layer 0 per image on its 8-bit pixels, every hidden layer sliced over the block, one
    // sliced layer per output pixel reading the window's columns in place; the last layer per image
    // on rows. Images, pixels and transposed squares are dealt to the team, which meets between
    // layers (shared: the maps): a batch of a few blocks keeps every core busy.
    const std::size_t n = block_images();
    const int words = kernel_.slice_words;
    const std::size_t K0 = image_map_words(1), Kf = image_map_words(layers_.size() - 1);
    std::uint64_t* rows = shared.block_rows.data;
    member.deal(n, 1, [&](std::size_t i, std::size_t) {
        if (i >= count) {
            std::fill(rows + i * K0, rows + (i + 1) * K0, 0);
            return;
        }
        kernel_.conv8(conv8_, images + i * pixels_, scratch.a.data(), scratch.conv8.data());
        if (layers_[0].pool) pool(scratch.a.data(), scratch.a.data(), conv8_.size - conv8_.kernel + 1, conv8_.out_planes, conv8_.blocks);
        std::copy(scratch.a.data(), scratch.a.data() + K0, rows + i * K0);
    });
    member.wait();
    std::uint64_t* map = shared.sliced_a.data;
    std::uint64_t* next = shared.sliced_b.data;
    const auto transpose = [&](const std::uint64_t* from, std::uint64_t* to, std::size_t K, bool to_sliced) {
        member.deal(block_squares(1, static_cast<int>(K), words), kTransposeGrain, [&](std::size_t a, std::size_t b) {
            transpose_squares(from, to, 1, static_cast<int>(K), words, to_sliced, a, b);
        });
        member.wait();
    };
    transpose(rows, map, K0, true);  // [pixel][plane][slot] -> sliced
    for (std::size_t l = 1; l + 1 < layers_.size(); ++l) {
        const Layer& L = layers_[l];
        const auto& v = L.sliced;
        const int side = L.size - L.window + 1;
        const std::size_t in_pixel = static_cast<std::size_t>(v.in_planes) * v.in_columns * words;
        const std::size_t plane = static_cast<std::size_t>(v.out_columns) * words, out_pixel = v.out_planes * plane;
        // The next layer's rows read whole words: columns past mh are zero, as on rows.
        const auto zero_padding = [&](std::uint64_t* to) {
            for (int q = 0; q < v.out_planes; ++q)
                std::fill(to + q * plane + static_cast<std::size_t>(v.mh) * words, to + (q + 1) * plane, 0);
        };
        const auto input = [&](int p) { return map + (static_cast<std::size_t>(p / side) * L.size + p % side) * in_pixel; };
        if (side * side >= member.size()) {  // output pixels dealt to the team
            member.deal(static_cast<std::size_t>(side) * side, 1, [&](std::size_t p, std::size_t) {
                std::uint64_t* to = next + p * out_pixel;
                kernel_.sliced(v, input(static_cast<int>(p)), to, scratch.sliced_work.data);
                zero_padding(to);
            });
        } else {  // fewer pixels than members (a fully connected layer: one pixel): a share of the neurons each
            kernels::SlicedView part = v;
            part.from = v.mh * member.index() / member.size(), part.to = v.mh * (member.index() + 1) / member.size();
            for (int p = 0; p < side * side; ++p) {
                std::uint64_t* to = next + static_cast<std::size_t>(p) * out_pixel;
                if (part.from < part.to) kernel_.sliced(part, input(p), to, scratch.sliced_work.data);
                if (member.index() == 0) zero_padding(to);
            }
        }
        member.wait();
        if (L.pool) {  // back into map: the next layer's input
            member.deal(static_cast<std::size_t>(side / 2) * (side / 2), kPoolGrain, [&](std::size_t a, std::size_t b) {
                pool_pixels(next, map, side, v.out_planes, plane, static_cast<int>(a), static_cast<int>(b));
            });
            member.wait();
        } else {
            std::swap(map, next);
        }
    }
    transpose(map, rows, Kf, false);
    member.deal(count, 1, [&](std::size_t i, std::size_t) {
        std::copy(rows + i * Kf, rows + (i + 1) * Kf, scratch.a.data());
        run_map(scratch.a.data(), layers_.size() - 1, rule, out, first + i, scratch);
    });
    member.wait();  // the rows and maps are the next block's
}

void Network::run_block(const std::uint8_t* images, Rule rule, const Outputs& out, std::size_t first,
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
    run_layers(hidden, n, rule, out, first, scratch);
}

void Network::run(const std::uint8_t* images, std::size_t n, int threads, Rule rule, const Outputs& out) const {
    if (n == 0) return;
    // Whole blocks go to the sliced layers (when the kernel has them and there is a hidden layer),
    // the rest in tiles: a small batch never waits for a block. A convolutional network's tiles are
    // a few images, each run alone through every layer; its rest goes into one more, partial block
    // when that is faster than running the images alone.
    const std::size_t hidden = fixed_point_ ? 2 : 1;  // layers before the first sliced one, + 1
    const std::size_t block = kernel_.sliced && layers_.size() > hidden ? block_images() : 0;
    const std::size_t tile = fixed_point_ ? kConvTile : kTile;
    std::size_t blocks = block ? n / block : 0;
    std::size_t sliced_images = blocks * block;
    if (block && fixed_point_ && (n - sliced_images) * kPartialBlock >= block) ++blocks, sliced_images = n;
    const std::size_t rest = n - sliced_images;
    const std::size_t tiles = (rest + tile - 1) / tile, items = blocks + tiles;
    // One worker per block or tile at most, and never more than kMaxThreads (each costs a thread and its
    // scratch); the Python layer caps `threads` to the cores the process may use before it gets here.
    const std::size_t asked = static_cast<std::size_t>(std::clamp(threads, 1, kMaxThreads));
    // A convolutional network's blocks are run by every worker together (run_conv_block).
    const bool team_blocks = fixed_point_ && blocks > 0;
    const std::size_t workers = team_blocks ? asked : std::min(asked, items);
    const std::size_t neurons = static_cast<std::size_t>(layers_.back().view.groups) * kernels::kLanes;
    // Scratch is allocated here, before any thread starts, so that an
    // allocation failure is an exception in the caller, never in a worker.
    // Small batches get small buffers: batch-1 latency should not pay for a whole tile.
    const std::size_t rows = fixed_point_ ? 1 : std::max(std::min(kTile, rest), blocks ? block : 0);
    const std::size_t stride = fixed_point_ ? map_words() : stride_words();
    std::size_t work_words = 0;
    for (const auto& L : layers_)
        if (!L.offsets.empty()) work_words = std::max(work_words, kernels::sliced_scratch_words(L.sliced, kernel_.slice_words));
    std::vector<Scratch> scratch(workers);
    for (auto& s : scratch) {
        s.a.assign(rows * stride, 0);
        s.b.assign(rows * stride, 0);
        s.counts.assign(rows * neurons, 0);
        s.active.assign(fixed_point_ ? row_words() : rows, 0);
        if (fixed_point_) s.rows.assign(row_words(), 0), s.conv8.assign(kernels::conv8_scratch_words(conv8_), 0);
        if (blocks) {
            // Every word of these is written before it is read (transposes, layers, zeroed padding).
            s.sliced_work.assign(work_words, false);
            if (team_blocks && &s != &scratch[0]) continue;  // the team shares worker 0's maps
            s.sliced_a.assign(sliced_words(), false);
            s.sliced_b.assign(sliced_words(), false);
            if (fixed_point_)
                s.block_rows.assign(block * std::max(image_map_words(1), image_map_words(layers_.size() - 1)), false);
        }
    }
    // The team's size is known once its threads are started (one may fail to start): they wait for it.
    std::atomic<Team*> team{nullptr};
    std::atomic<std::size_t> next_item{team_blocks ? blocks : 0};
    auto work = [&](Scratch& s, int member) {
        if (team_blocks) {
            Team* joined;
            while ((joined = team.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
            TeamMember self(*joined, member);
            for (std::size_t t = 0; t < blocks; ++t)
                run_conv_block(images + t * block * pixels_, std::min(block, n - t * block), rule, out, t * block, s,
                               scratch[0], self);
        }
        for (std::size_t t; (t = next_item.fetch_add(1)) < items;) {
            if (t < blocks) {
                run_block(images + t * block * pixels_, rule, out, t * block, s);
                continue;
            }
            const std::size_t first = sliced_images + (t - blocks) * tile, count = std::min(tile, n - first);
            if (!fixed_point_) {
                run_tile(images + first * pixels_, count, rule, out, first, s);
                continue;
            }
            for (std::size_t i = first; i < first + count; ++i) run_image(images + i * pixels_, rule, out, i, s);
        }
    };
    std::vector<std::thread> helpers;
    helpers.reserve(workers - 1);
    for (std::size_t w = 1; w < workers; ++w) {
        try {
            helpers.emplace_back(work, std::ref(scratch[w]), static_cast<int>(w));
        } catch (const std::system_error&) {
            break;  // fewer threads than asked: the others take the remaining work
        }
    }
    Team started(static_cast<int>(helpers.size()) + 1);
    team.store(&started, std::memory_order_release);
    work(scratch[0], 0);
    for (auto& t : helpers) t.join();
}

}  // namespace bnn
