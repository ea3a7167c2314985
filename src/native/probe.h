// The timing loop of the kernels' bound probes: run `step` (which advances 8 independent register
// chains by one word-step each) in batches until `seconds` have passed; words per second.
#pragma once

#include <chrono>
#include <cstdint>

namespace bnn::kernels {
namespace {

template <typename Step>
inline double time_steps(double seconds, std::uint64_t words_per_step, Step step) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    std::uint64_t steps = 0;
    double elapsed = 0;
    do {
        for (int i = 0; i < 1 << 16; ++i) step();
        steps += 1 << 16;
        elapsed = std::chrono::duration<double>(clock::now() - start).count();
    } while (elapsed < seconds);
    return static_cast<double>(steps * words_per_step) / elapsed;
}

}  // namespace
}  // namespace bnn::kernels
