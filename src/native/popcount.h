// Portable 64-bit popcount (SWAR), for translation units compiled without
// ISA flags: the portable kernel and the driver.
#pragma once

#include <cstdint>

namespace bnn {

inline int popcount64(std::uint64_t v) {
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
}

}  // namespace bnn
