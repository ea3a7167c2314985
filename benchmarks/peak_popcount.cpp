// The bound for the AVX-512 kernel: how many independent XOR + VPOPCNTQ + ADD
// triples on 512-bit registers this machine sustains per second, per core and
// on all cores. 16 accumulators as in the kernel, operands in registers.
// Build: g++ -O2 -std=c++17 -mavx512f -mavx512vpopcntdq -pthread peak_popcount.cpp
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

static double run(long iterations) {
    // 8 weight registers x 2 input registers: 16 distinct XORs per iteration
    // (distinct, so that the compiler cannot merge any of them).
    __m512i acc[16], w[8];
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_epi64(i);
    for (int j = 0; j < 8; ++j) w[j] = _mm512_set1_epi64(0x5555 * (j + 1));
    __m512i x0 = _mm512_set1_epi64(0x1234567), x1 = _mm512_set1_epi64(0x7654321);
    const __m512i step = _mm512_set1_epi64(1);
    for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            acc[2 * j] = _mm512_add_epi64(acc[2 * j], _mm512_popcnt_epi64(_mm512_xor_si512(w[j], x0)));
            acc[2 * j + 1] = _mm512_add_epi64(acc[2 * j + 1], _mm512_popcnt_epi64(_mm512_xor_si512(w[j], x1)));
        }
        x0 = _mm512_add_epi64(x0, step);
        x1 = _mm512_sub_epi64(x1, step);
    }
    __m512i s = acc[0];
    for (int i = 1; i < 16; ++i) s = _mm512_add_epi64(s, acc[i]);
    return static_cast<double>(_mm512_reduce_add_epi64(s));
}

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    const long iterations = 20'000'000;
    std::vector<std::thread> pool;
    std::vector<double> sink(threads);
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = run(iterations); });
    for (auto& t : pool) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double triples = 16.0 * iterations * threads / seconds;
    std::printf("%d thread(s): %.3e triples/s (sink %.0f)\n", threads, triples, sink[0]);
    return 0;
}
