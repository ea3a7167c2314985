// Bit-sliced hidden layers: one vector register holds one activation bit of
// a block of images (bit i of the vector = image i), so a vector of logic
// operations updates a neuron's count for all of them at once.
//
// A neuron counts, per image, its inputs whose bit disagrees with the weight
// (kernels.h: popcount(w ^ x), or popcount(m & (w ^ s)) for two planes). Each
// input column j has two "variants", the vector counted when w_j = 0 and the
// one counted when w_j = 1: x and ~x for one plane, m & s and m & ~s for two.
// Columns are taken in triples: for each of the 8 weight patterns of a triple
// the chunk's table holds the two-bit count of its three counted vectors (sum
// and carry of a full adder), so a neuron reads one table entry per three
// inputs: its pattern's. Those entries (weight 1 and 2) go into a carry-save
// (Harley-Seal) tree whose state planes ones..64s are the low seven bits of
// the count, in registers during a chunk; a chunk adds less than 128 to a
// count, so at most one carry of 128 per image goes into the planes above,
// kept in memory.
// A chunk's table (kTriples triples, 8 patterns, 2 vectors: 16 KiB) stays in
// L1 while every neuron of the layer walks it; offsets are the precomputed
// vector offsets of each neuron's entries. The decision is a bit-sliced comparison
// with the neuron's limit, and the output bits are already the next layer's
// input.
//
// Generic over `Ops`: V (one column of a block: 64-bit words), zero(), ones(),
// load(p), store(p, v), and_, or_, xor_, andnot(a, b) = ~a & b, and
// kTernary: true when it has xor3(a, b, c) and majority(a, b, c) (one
// VPTERNLOG each), else the adders are built from two-input operations.
// Internal linkage in each ISA's file (kernels.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "probe.h"

namespace bnn::kernels {
namespace {

template <class Ops>
struct Sliced {
    using V = typename Ops::V;
    static constexpr std::size_t kWords = sizeof(V) / sizeof(std::uint64_t);
    static constexpr int kStatePlanes = kSliceStatePlanes;  // ones, twos, fours, eights, sixteens, 32s, 64s
    static_assert(kStatePlanes == 7, "the layer's walk names the seven planes");
    static constexpr int kMaxCountPlanes = 5 + 26;  // 5 + bits of mw / 32 for any int mw
    static constexpr int kTriples = triples_per_chunk(kWords);
    static_assert(kTriples % 8 == 0 && 3 * kTriples < 128,
                  "a chunk adds less than 128 to a count: at most one carry into the planes above 64s");

    // Carry-save adder: (state, a, b) -> state = low bit, carry = high bit of state + a + b.
    static inline void csa(V& carry, V& state, V a, V b) {
        if constexpr (Ops::kTernary) {
            carry = Ops::majority(state, a, b);
            state = Ops::xor3(state, a, b);
        } else {
            // a ^ b and a & b first, off the state's chain: the state waits one operation per adder,
            // not two (its chain through a step's six twos-adders bounded the AVX2 walk: 1.25x the
            // probe's rate, 1.08x the layer's, on a Zen 5).
            const V x = Ops::xor_(a, b);
            carry = Ops::or_(Ops::and_(a, b), Ops::and_(state, x));
            state = Ops::xor_(state, x);
        }
    }

    static inline void half(V& carry, V& state, V a) {
        carry = Ops::and_(state, a);
        state = Ops::xor_(state, a);
    }

    // 8 triples (24 inputs): entry (sum, carry) at vectors p[0..7]; returns the 32s carry.
    static inline V step(const V* t, const std::uint16_t* p, V& ones, V& twos, V& fours, V& eights, V& sixteens) {
        const auto sum = [&](int k) { return Ops::load(t + p[k]); };
        const auto carry = [&](int k) { return Ops::load(t + p[k] + 1); };
        V t1, t2, f1, f2, f3, e1, e2, e3, x1, x2, y;
        csa(t1, ones, sum(0), sum(1));
        csa(f1, twos, carry(0), carry(1));
        csa(t2, ones, sum(2), sum(3));
        csa(f2, twos, carry(2), carry(3));
        csa(f3, twos, t1, t2);
        csa(e1, fours, f1, f2);
        csa(t1, ones, sum(4), sum(5));
        csa(f1, twos, carry(4), carry(5));
        csa(t2, ones, sum(6), sum(7));
        csa(f2, twos, carry(6), carry(7));
        csa(e2, fours, f3, f1);
        csa(f3, twos, t1, t2);
        csa(e3, fours, f2, f3);
        csa(x1, eights, e1, e2);
        half(x2, eights, e3);  // three eights this step
        csa(y, sixteens, x1, x2);
        return y;
    }

    // Column j's (plane 0) vector.
    static const std::uint64_t* column(const SlicedView& L, const std::uint64_t* in, int j) {
        return in + static_cast<std::size_t>(L.sources ? L.sources[j] : static_cast<std::uint32_t>(j)) * kWords;
    }

    // The chunk's table: for triple t and weight pattern p (bit k = weight of column 3t + k),
    // entry t*8 + p = (sum, carry) of the three counted vectors. Columns at or past mw count 0.
    static void build_table(const SlicedView& L, const std::uint64_t* in, int chunk, V* table) {
        const std::size_t plane = static_cast<std::size_t>(L.in_columns) * kWords;
        for (int t = 0; t < kTriples; ++t) {
            V variant[3][2];
            for (int k = 0; k < 3; ++k) {
                const int j = 3 * (chunk * kTriples + t) + k;
                if (j >= L.mw) {
                    variant[k][0] = variant[k][1] = Ops::zero();
                    continue;
                }
                const std::uint64_t* x = column(L, in, j);
                const V a = Ops::load(x);
                if (L.in_planes == 1) {
                    variant[k][0] = a;
                    variant[k][1] = Ops::andnot(a, Ops::ones());
                } else {  // a is m; s follows one plane later
                    const V s = Ops::load(x + plane);
                    variant[k][0] = Ops::and_(a, s);
                    variant[k][1] = Ops::andnot(s, a);
                }
            }
            for (int p = 0; p < 8; ++p) {
                V sum = variant[0][p & 1], carry;
                csa(carry, sum, variant[1][(p >> 1) & 1], variant[2][p >> 2]);
                Ops::store(table + (t * 8 + p) * 2, sum);
                Ops::store(table + (t * 8 + p) * 2 + 1, carry);
            }
        }
    }

    // Bit-sliced value <= limit, for an unsigned value of `planes` planes and a constant limit: the
    // comparison folded from the lowest plane up.
    // Branch-free: the limit's bits differ from neuron to neuron, and a convolution decides every
    // neuron at every output pixel (a mispredicted branch per plane cost 7 % of cnvW1A2's time).
    static V at_most(const V* value, int planes, std::int64_t limit) {
        if (limit < 0) return Ops::zero();
        if (limit >= (std::int64_t{1} << planes) - 1) return Ops::ones();
        const V select[2] = {Ops::zero(), Ops::ones()};
        V above = Ops::zero();  // value > limit, over the planes seen so far
        for (int b = 0; b < planes; ++b) {
            // limit bit 1: value[b] & above; 0: value[b] | above (which holds the former)
            const V both = Ops::and_(value[b], above), either = Ops::or_(value[b], above);
            above = Ops::or_(both, Ops::andnot(select[(limit >> b) & 1], either));
        }
        return Ops::xor_(above, Ops::ones());
    }

    // active - 2 count in two's complement over kDifferencePlanes(planes) bits, its sign bit flipped
    // (so that it compares as unsigned): (active + ~(2 count) + 1) ^ (1 << top).
    static int difference_planes(int planes) { return planes + 2; }  // |active - 2 count| <= 2 mw < 2^(planes+1)
    static void biased_difference(const V* count, const V* active, int planes, V* out) {
        V carry = Ops::ones();  // the + 1
        const int bits = difference_planes(planes);
        for (int b = 0; b < bits; ++b) {
            const V a = b < planes ? active[b] : Ops::zero();
            const V n = b >= 1 && b <= planes ? Ops::xor_(count[b - 1], Ops::ones()) : Ops::ones();
            const V u = Ops::xor_(a, n);
            out[b] = Ops::xor_(u, carry);
            carry = Ops::or_(Ops::and_(a, n), Ops::and_(u, carry));
        }
        out[bits - 1] = Ops::xor_(out[bits - 1], Ops::ones());
    }

    // 2 count + limit <= active, i.e. active - 2 count >= limit, from biased_difference's planes.
    static V at_least(const V* biased, int planes, std::int64_t limit) {
        const int bits = difference_planes(planes);
        const std::int64_t bias = std::int64_t{1} << (bits - 1);
        // Limits beyond the difference's range decide alone; clamping keeps them beyond it.
        const std::int64_t clamped = limit < -bias ? -bias : limit > bias ? bias : limit;  // not std::clamp: see below
        return Ops::xor_(at_most(biased, bits, clamped + bias - 1), Ops::ones());
    }

    // The bit-sliced count (count_planes planes) of the m plane: popcount(m) of every image. Eight
    // columns at a time through carry-save adders (ones, twos, fours in registers), their eights
    // rippled into the planes above.
    static void count_active(const SlicedView& L, const std::uint64_t* in, V* active) {
        for (int b = 0; b < L.count_planes; ++b) active[b] = Ops::zero();
        V ones = Ops::zero(), twos = ones, fours = ones;
        for (int j = 0; j < L.mw; j += 8) {
            V x[8];
            for (int k = 0; k < 8; ++k) x[k] = j + k < L.mw ? Ops::load(column(L, in, j + k)) : Ops::zero();
            V t1, t2, f1, f2, carry;
            csa(t1, ones, x[0], x[1]);
            csa(t2, ones, x[2], x[3]);
            csa(f1, twos, t1, t2);
            csa(t1, ones, x[4], x[5]);
            csa(t2, ones, x[6], x[7]);
            csa(f2, twos, t1, t2);
            csa(carry, fours, f1, f2);
            for (int b = 3; b < L.count_planes; ++b) {
                const V next = Ops::and_(active[b], carry);
                active[b] = Ops::xor_(active[b], carry);
                carry = next;
            }
        }
        active[0] = ones, active[1] = twos, active[2] = fours;  // count_planes >= 5
    }

    // The bound of this approach: the layer's inner step over a table in L1 (8 triples, one entry each:
    // 24 inputs of a block), its offsets read from memory as the layer reads them; making the tables
    // and deciding are left out. 64-bit words of bit-MACs per second, as the other probes.
    static double probe(double seconds) {
        alignas(64) V table[16 * 8];
        for (int e = 0; e < 16 * 8; ++e) {
            std::uint64_t words[kWords];
            for (std::size_t k = 0; k < kWords; ++k) words[k] = 0x9E3779B97F4A7C15ULL * (e * kWords + k + 1);
            table[e] = Ops::load(words);
        }
        std::uint16_t offsets[8];
        for (int t = 0; t < 8; ++t) offsets[t] = static_cast<std::uint16_t>((t * 8 + (t * 5 + 3) % 8) * 2);
        V ones = Ops::zero(), twos = ones, fours = ones, eights = ones, sixteens = ones, sink = ones;
        const double rate = time_steps(seconds, 24 * kWords, [&] {
            asm volatile("" ::: "memory");  // the table and offsets are read every step, as in the layer
            sink = Ops::xor_(sink, step(table, offsets, ones, twos, fours, eights, sixteens));
        });
        std::uint64_t out[kWords];
        Ops::store(out, Ops::xor_(sink, Ops::xor_(ones, eights)));
        volatile std::uint64_t keep = out[0];
        (void)keep;
        return rate;
    }

    // One hidden layer over a block of images; see kernels.h for the layouts.
    static void layer(const SlicedView& L, const std::uint64_t* in, std::uint64_t* out, std::uint64_t* scratch) {
        const int planes = L.count_planes;  // the count's planes: ones..64s, then the planes above
        V* table = reinterpret_cast<V*>(scratch);
        V* state = table + kTriples * 16;
        V* active = state + static_cast<std::size_t>(L.mh) * planes;
        if (L.in_planes == 2) count_active(L, in, active);
        for (int c = 0; c < L.chunks; ++c) {
            build_table(L, in, c, table);
            const std::uint16_t* offsets = L.offsets + static_cast<std::size_t>(c) * L.mh * kTriples;
            for (int n = L.from; n < L.to; ++n) {
                V* st = state + static_cast<std::size_t>(n) * planes;
                if (c == 0)
                    for (int b = 0; b < planes; ++b) st[b] = Ops::zero();
                V ones = st[0], twos = st[1], fours = st[2], eights = st[3], sixteens = st[4], s32 = st[5], s64 = st[6];
                V carry = Ops::zero();  // this chunk's carry of 128
                const std::uint16_t* p = offsets + static_cast<std::size_t>(n) * kTriples;
                for (int s = 0; s < kTriples; s += 8) {
                    V z, w;
                    half(z, s32, step(table, p + s, ones, twos, fours, eights, sixteens));
                    half(w, s64, z);
                    carry = Ops::or_(carry, w);
                }
                st[0] = ones, st[1] = twos, st[2] = fours, st[3] = eights, st[4] = sixteens, st[5] = s32, st[6] = s64;
                for (int b = kStatePlanes; b < planes; ++b) half(carry, st[b], carry);
            }
        }
        // The decisions after every count: neurons' comparisons are independent chains of a few
        // dozen logic operations that the core overlaps (within the walk they would not be).
        for (int n = L.from; n < L.to; ++n) {
            const V* st = state + static_cast<std::size_t>(n) * planes;  // the count's planes, lowest first
            V difference[kMaxCountPlanes + 2];
            if (L.in_planes == 2) biased_difference(st, active, planes, difference);
            V bits[2];
            for (int q = 0; q < L.out_planes; ++q) {
                const std::int64_t limit = L.limits[static_cast<std::size_t>(q) * L.limit_stride + n];
                bits[q] = L.in_planes == 1 ? at_most(st, planes, limit) : at_least(difference, planes, limit);
            }
            const std::size_t column = static_cast<std::size_t>(n) * kWords;
            const std::size_t out_plane = static_cast<std::size_t>(L.out_columns) * kWords;
            if (L.out_planes == 2) {
                Ops::store(out + column, Ops::xor_(Ops::xor_(bits[0], bits[1]), Ops::ones()));  // m
                Ops::store(out + out_plane + column, Ops::and_(bits[0], bits[1]));               // s
            } else {
                Ops::store(out + column, bits[0]);
            }
        }
    }
};

}  // namespace
}  // namespace bnn::kernels
