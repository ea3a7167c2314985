// A parameter set packed for the kernels, and the batch driver that runs it
// over tiles of images on a pool of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace bnn {

class TeamMember;  // network.cpp

// One kernel family, chosen at run time from the CPU's features. A family with a sliced layer
// runs whole blocks of 64 * slice_words images through it and the rest through `layer`.
struct Kernel {
    const char* name;
    kernels::LayerFn layer;
    kernels::PackFn pack;
    kernels::ProbeFn probe;
    kernels::Conv8Fn conv8;
    kernels::SlicedFn sliced = nullptr;
    int slice_words = 0;
};

// Kernels this CPU and OS can run, fastest first ("portable" always last).
std::vector<Kernel> available_kernels();
// The kernel called `name` ("" = fastest available); throws std::invalid_argument.
Kernel select_kernel(const std::string& name);

struct LayerInput {
    const std::int8_t* weights;      // (mh, mw) weight values, row-major: +-1, or -2..1 (2-bit weights)
    const std::int32_t* thresholds;  // (mh, nt) effective thresholds
    int mh, mw, nt;
    // The input: a size x size map of `channels` channels, read through kernel x kernel windows (stride
    // 1, no padding; column (ky * kernel + kx) * channels + ch), then a 2x2 max pool when `pool`. A
    // fully connected layer is the one window that covers its map: size = kernel (an LFC's: 1, mw).
    int size = 1, channels = 0, kernel = 1;
    bool pool = false;
};

// How the last layer's scores become a class (src/bnn/bits.py decide).
enum class Rule { highest_bit, argmax, positive_max };

struct Outputs {
    std::int32_t* classes;  // (n,)
    std::int32_t* scores;   // (n, n_classes) or null
    std::uint8_t* bits;     // (n, n_classes) or null
};

class Network {
public:
    // activation_bits: 1 (W1A1) or 2 (W1A2, W2A2); pixel_thresholds: one (bit p >= t) or two (3 levels,
    // 2-bit activations only), each in 0..256, or none: 8-bit fixed-point pixels into a convolution
    // (src/bnn/bits.py). score_bits: the width the last layer's sums wrap to (0: none).
    Network(const std::vector<LayerInput>& layers, int activation_bits, int n_classes, int pixels,
            const std::vector<int>& pixel_thresholds, const std::string& kernel, int score_bits = 0);

    // Classify n images of `pixels` bytes each on up to `threads` threads (clamped to 1..256, and to
    // one per block of images: a sliced block, a tile of 72, or a convolutional network's tile of 4).
    void run(const std::uint8_t* images, std::size_t n, int threads, Rule rule, const Outputs& out) const;

    const char* kernel_name() const { return kernel_.name; }
    int n_classes() const { return n_classes_; }
    int pixels() const { return pixels_; }

private:
    // Words from a 64-byte boundary on: zeroed, or (scratch that is written before it is read) left
    // untouched, so that its pages are first touched by the worker thread that uses them.
    struct AlignedWords {
        std::unique_ptr<std::uint64_t[]> raw;
        std::uint64_t* data = nullptr;
        void assign(std::size_t words, bool zeroed = true);
    };
    struct Layer {
        AlignedWords weights;  // [groups][K][8]
        std::vector<std::int32_t> limits;
        kernels::LayerView view{};
        int mw = 0, scale = 1;           // one-plane input: acc = mw - scale * popcount
        int half = 1;                    // 2 when 2-bit weights run as copies: acc = (...) / 2
        // The window gather that builds the layer's rows from the previous output map (none: its
        // rows are that map's rows): input side, window, words per pixel and plane, weight copies.
        int size = 1, window = 1, slot = 0, copies = 1, out_side = 1;
        bool pool = false, gather = false;
        std::vector<std::uint16_t> offsets;  // the sliced layer's (hidden layers, sliced kernels only)
        std::vector<std::uint32_t> sources;  // its window's columns in the sliced map (none: in order)
        kernels::SlicedView sliced{};
    };
    struct Scratch {  // per worker thread
        std::vector<std::uint64_t> a, b;   // activations in and out, a row per image of a tile or block
        std::vector<std::int32_t> counts;  // last layer's popcounts
        std::vector<std::int32_t> active;  // popcount(m) per image, for two-plane inputs
        AlignedWords sliced_a, sliced_b, sliced_work;  // sliced blocks only
        AlignedWords block_rows;           // a convolutional block's maps as rows, an image each
        std::vector<std::uint64_t> rows;   // a convolution's gathered windows, a row per output pixel
        std::vector<std::int32_t> conv8;   // layer 0's pixel values and window (8-bit pixels only)
    };
    void run_tile(const std::uint8_t* images, std::size_t n, Rule rule, const Outputs& out, std::size_t first,
                  Scratch& scratch) const;
    void run_block(const std::uint8_t* images, Rule rule, const Outputs& out, std::size_t first,
                   Scratch& scratch) const;
    void run_image(const std::uint8_t* image, Rule rule, const Outputs& out, std::size_t index,
                   Scratch& scratch) const;
    void run_map(std::uint64_t* map, std::size_t from, Rule rule, const Outputs& out, std::size_t index,
                 Scratch& scratch) const;
    void run_conv_block(const std::uint8_t* images, std::size_t count, Rule rule, const Outputs& out,
                        std::size_t first, Scratch& scratch, Scratch& shared, TeamMember& member) const;
    std::size_t image_map_words(std::size_t layer) const;
    void pack_input(const std::uint8_t* images, std::size_t n, Scratch& scratch) const;
    void run_layers(std::size_t from, std::size_t n, Rule rule, const Outputs& out, std::size_t first,
                    Scratch& scratch) const;
    void count_active(const kernels::LayerView& v, const std::uint64_t* in, std::size_t n, std::int32_t* active) const;
    void finish(const std::int32_t* counts, int active, Rule rule, const Outputs& out, std::size_t index) const;
    std::size_t map_words() const;
    std::size_t row_words() const;
    std::size_t stride_words() const;
    std::size_t sliced_words() const;
    std::size_t block_images() const { return 64 * static_cast<std::size_t>(kernel_.slice_words); }
    void pack_plane(const std::uint8_t* images, std::size_t n, int threshold, std::uint64_t* out) const;

    Kernel kernel_;
    std::vector<Layer> layers_;
    std::vector<std::int32_t> last_thresholds_;
    std::vector<int> pixel_thresholds_;
    std::vector<std::uint64_t> pixel_columns_, layer0_columns_;  // K words: bits of columns < pixels, < mw
    // A convolutional network's layer 0 on 8-bit pixels (layers_[0] is then unused by the kernels).
    bool fixed_point_ = false;
    std::vector<std::int16_t> conv8_weights_, conv8_limits16_, pixel_values_;
    std::vector<std::int32_t> conv8_limits_;
    std::vector<std::int8_t> conv8_pair_weights_;
    std::vector<std::int16_t> conv8_pair_limits_;
    std::vector<std::uint8_t> pixel_bytes_;
    kernels::Conv8View conv8_{};
    int n_classes_ = 0, pixels_ = 0, score_bits_ = 0;
};

}  // namespace bnn
