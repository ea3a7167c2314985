// A parameter set packed for the kernels, and the batch driver that runs it
// over tiles of images on a pool of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"

namespace bnn {

// One kernel family, chosen at run time from the CPU's features. A family with a sliced layer
// runs whole blocks of 64 * slice_words images through it and the rest through `layer`.
struct Kernel {
    const char* name;
    kernels::LayerFn layer;
    kernels::PackFn pack;
    kernels::ProbeFn probe;
    kernels::SlicedFn sliced = nullptr;
    int slice_words = 0;
};

// Kernels this CPU and OS can run, fastest first ("portable" always last).
std::vector<Kernel> available_kernels();
// The kernel called `name` ("" = fastest available); throws std::invalid_argument.
Kernel select_kernel(const std::string& name);

struct LayerInput {
    const std::uint8_t* weights;     // (mh, mw) bits as 0/1 bytes, row-major
    const std::int32_t* thresholds;  // (mh, nt) effective thresholds
    int mh, mw, nt;
};

struct Outputs {
    std::int32_t* classes;  // (n,)
    std::int32_t* scores;   // (n, n_classes) or null
    std::uint8_t* bits;     // (n, n_classes) or null
};

class Network {
public:
    // activation_bits: 1 (W1A1) or 2 (W1A2); pixel_thresholds: one (bit p >= t) or two (3 levels,
    // W1A2 only), each in 0..256 (src/bnn/bits.py).
    Network(const std::vector<LayerInput>& layers, int activation_bits, int n_classes, int pixels,
            const std::vector<int>& pixel_thresholds, const std::string& kernel);

    // Classify n images of `pixels` bytes each on up to `threads` threads (clamped to 1..256, and to
    // one per block of images: a sliced block, or a tile of 72).
    void run(const std::uint8_t* images, std::size_t n, int threads, bool argmax, const Outputs& out) const;

    const char* kernel_name() const { return kernel_.name; }
    int n_classes() const { return n_classes_; }
    int pixels() const { return pixels_; }

private:
    // Words from a 64-byte boundary on.
    struct AlignedWords {
        std::vector<std::uint64_t> raw;
        std::uint64_t* data = nullptr;
        void assign(std::size_t words);
    };
    struct Layer {
        AlignedWords weights;  // [groups][K][8]
        std::vector<std::int32_t> limits;
        kernels::LayerView view{};
        int mw = 0, scale = 1;           // one-plane input: acc = mw - scale * popcount
        std::vector<std::uint16_t> offsets;  // the sliced layer's (hidden layers, sliced kernels only)
        kernels::SlicedView sliced{};
    };
    struct Scratch {  // per worker thread
        std::vector<std::uint64_t> a, b;   // activations in and out, a row per image of a tile or block
        std::vector<std::int32_t> counts;  // last layer's popcounts
        std::vector<std::int32_t> active;  // popcount(m) per image, for two-plane inputs
        AlignedWords sliced_a, sliced_b, sliced_work;  // sliced blocks only
    };
    void run_tile(const std::uint8_t* images, std::size_t n, bool argmax, const Outputs& out, std::size_t first,
                  Scratch& scratch) const;
    void run_block(const std::uint8_t* images, bool argmax, const Outputs& out, std::size_t first,
                   Scratch& scratch) const;
    void pack_input(const std::uint8_t* images, std::size_t n, Scratch& scratch) const;
    void run_layers(std::size_t from, std::size_t n, bool argmax, const Outputs& out, std::size_t first,
                    Scratch& scratch) const;
    std::size_t stride_words() const;
    std::size_t sliced_words() const;
    std::size_t block_images() const { return 64 * static_cast<std::size_t>(kernel_.slice_words); }
    void pack_plane(const std::uint8_t* images, std::size_t n, int threshold, std::uint64_t* out) const;

    Kernel kernel_;
    std::vector<Layer> layers_;
    std::vector<std::int32_t> last_thresholds_;
    std::vector<int> pixel_thresholds_;
    std::vector<std::uint64_t> pixel_columns_, layer0_columns_;  // K words: bits of columns < pixels, < mw
    int n_classes_ = 0, pixels_ = 0;
};

}  // namespace bnn
