// The timing loop of the kernels' bound probes: run `step` (which advances 8 independent register
// chains by one word-step each) in batches until `seconds` have passed; words per second.
#pragma once

#include <cstdint>

namespace bnn::kernels {

// Seconds on a steady clock. Defined in kernel_portable.cpp, compiled for the baseline ISA: a
// std::chrono template instantiated here would be a weak symbol in the ISA's object file, and the
// linker may keep that copy for every caller (kernels.h: no std:: templates in ISA files).
double steady_seconds();

namespace {

template <typename Step>
inline double time_steps(double seconds, std::uint64_t words_per_step, Step step) {
    const double start = steady_seconds();
    std::uint64_t steps = 0;
    double elapsed = 0;
    do {
        for (int i = 0; i < 1 << 16; ++i) step();
        steps += 1 << 16;
        elapsed = steady_seconds() - start;
    } while (elapsed < seconds);
    return static_cast<double>(steps * words_per_step) / elapsed;
}

}  // namespace
}  // namespace bnn::kernels
