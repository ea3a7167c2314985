// Runs every kernel this CPU (or emulator) has on cases written by tools/check_arm.sh and
// compares classes, scores and output bits with the numpy reference's, which the case holds.
// Case file (tools/kernel_cases.py), little-endian: int32 n_layers, activation_bits, n_classes,
// pixels, n_images, rule (0 highest_bit, 1 argmax, 2 positive_max), score_bits, n_pixel_thresholds,
// then that many int32 pixel thresholds; per layer int32 mh, mw, nt, size, channels, kernel, pool,
// then int8 weights[mh*mw] and int32 thresholds[mh*nt]; uint8 images[n*pixels]; expected int32
// classes[n], int32 scores[n*C], uint8 bits[n*C].
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "../../src/native/network.h"

namespace {

template <typename T>
std::vector<T> take(std::ifstream& f, std::size_t count) {
    std::vector<T> v(count);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
    return v;
}

int check(const char* path) {
    std::ifstream f(path, std::ios::binary);
    const auto head = take<std::int32_t>(f, 7);
    const int n_layers = head[0], bits = head[1], classes = head[2], pixels = head[3], score_bits = head[6];
    const std::size_t n = static_cast<std::size_t>(head[4]);
    const auto rule = static_cast<bnn::Rule>(head[5]);
    const auto n_pixel_thresholds = take<std::int32_t>(f, 1);
    const auto pixel_thresholds = take<std::int32_t>(f, static_cast<std::size_t>(n_pixel_thresholds[0] & 3));
    std::vector<std::vector<std::int8_t>> weights;
    std::vector<std::vector<std::int32_t>> thresholds;
    std::vector<bnn::LayerInput> layers;
    for (int l = 0; l < n_layers; ++l) {
        const auto shape = take<std::int32_t>(f, 7);
        weights.push_back(take<std::int8_t>(f, static_cast<std::size_t>(shape[0]) * shape[1]));
        thresholds.push_back(take<std::int32_t>(f, static_cast<std::size_t>(shape[0]) * shape[2]));
        layers.push_back({weights.back().data(), thresholds.back().data(), shape[0], shape[1], shape[2], shape[3],
                          shape[4], shape[5], shape[6] != 0});
    }
    const auto images = take<std::uint8_t>(f, n * pixels);
    const auto want_classes = take<std::int32_t>(f, n);
    const auto want_scores = take<std::int32_t>(f, n * classes);
    const auto want_bits = take<std::uint8_t>(f, n * classes);
    if (!f) {
        std::printf("%s: truncated case file\n", path);
        return 1;
    }
    int failures = 0;
    for (const auto& kernel : bnn::available_kernels()) {
        bnn::Network net(layers, bits, classes, pixels, {pixel_thresholds.begin(), pixel_thresholds.end()},
                         kernel.name, score_bits);
        std::vector<std::int32_t> got_classes(n), got_scores(n * classes);
        std::vector<std::uint8_t> got_bits(n * classes);
        net.run(images.data(), n, 2, rule, {got_classes.data(), got_scores.data(), got_bits.data()});
        const bool exact = got_classes == want_classes && got_scores == want_scores && got_bits == want_bits;
        std::printf("%s: kernel %s, %zu images: %s\n", path, kernel.name, n, exact ? "exact" : "MISMATCH");
        failures += !exact;
    }
    return failures;
}

}  // namespace

int main(int argc, char** argv) {
    int failures = 0;
    for (int i = 1; i < argc; ++i) failures += check(argv[i]);
    return failures == 0 ? 0 : 1;
}
