// Stands in for <immintrin.h> when tools/check_avx512.sh compiles src/native/kernel_avx512.cpp on a
// CPU without AVX-512: the intrinsics' own names mapped to SIMDe's portable code (SIMD Everywhere,
// Debian's libsimde-dev), plus the few that SIMDe 0.7.4 lacks, written here from Intel's definitions.
// Compiled only by that check; the package's build uses the compiler's real <immintrin.h>.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

typedef simde__mmask8 __mmask8;
typedef simde__mmask64 __mmask64;

// SIMDe 0.7.4's alias of the masked unsigned byte compare takes an extra argument.
#undef _mm512_mask_cmpge_epu8_mask
#define _mm512_mask_cmpge_epu8_mask(k, a, b) simde_mm512_mask_cmpge_epu8_mask((k), (a), (b))

// VPMOVSXDQ: eight int32 sign-extended to int64.
static inline __m512i _mm512_cvtepi32_epi64(__m256i a) {
    std::int32_t in[8];
    std::int64_t out[8];
    std::memcpy(in, &a, sizeof in);
    for (int i = 0; i < 8; ++i) out[i] = in[i];
    __m512i r;
    std::memcpy(&r, out, sizeof r);
    return r;
}

// The sum of the eight int64 lanes (wrapping, as the instruction sequence does).
static inline long long _mm512_reduce_add_epi64(__m512i a) {
    std::uint64_t lanes[8], sum = 0;
    std::memcpy(lanes, &a, sizeof lanes);
    for (std::uint64_t v : lanes) sum += v;
    return static_cast<long long>(sum);
}

// VMOVDQU8 with zero masking: bytes whose mask bit is 0 are neither read (no fault past the end) nor kept.
static inline __m512i _mm512_maskz_loadu_epi8(__mmask64 k, const void* p) {
    std::uint8_t bytes[64] = {};
    for (int i = 0; i < 64; ++i)
        if ((k >> i) & 1) bytes[i] = static_cast<const std::uint8_t*>(p)[i];
    __m512i r;
    std::memcpy(&r, bytes, sizeof r);
    return r;
}
