// Python bindings of the native runtime (module bnn._native): argument
// checks and array plumbing only; the work is in network.cpp and the kernels.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "network.h"

namespace nb = nanobind;

namespace {

using Weights2D = nb::ndarray<const std::int8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Thresholds2D = nb::ndarray<const std::int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Images = nb::ndarray<const std::uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

template <typename T, std::size_t N>
nb::ndarray<nb::numpy, T> owned(std::size_t n0, std::size_t n1 = 1) {
    const std::size_t count = std::max<std::size_t>(n0 * n1, 1);
    T* data = new T[count];
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    const std::size_t shape[2] = {n0, n1};
    return nb::ndarray<nb::numpy, T>(data, N, shape, owner);
}

// Layer sizes go to the kernels as int; a dimension that does not fit is refused, not wrapped.
int checked_int(std::size_t v, std::size_t layer, const char* what) {
    if (v > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw nb::value_error(("layer " + std::to_string(layer) + ": " + what + " of " + std::to_string(v) +
                               " is too large").c_str());
    return static_cast<int>(v);
}

// (weights, thresholds, (size, channels, kernel, pool)): bnn::LayerInput's fields.
using LayerTuple = std::tuple<Weights2D, Thresholds2D, std::tuple<int, int, int, bool>>;

bnn::Rule rule_named(const std::string& name) {
    if (name == "argmax") return bnn::Rule::argmax;
    if (name == "positive_max") return bnn::Rule::positive_max;
    if (name == "highest_bit") return bnn::Rule::highest_bit;
    throw nb::value_error(("unknown decision rule '" + name + "'").c_str());
}

class PyNetwork {
public:
    PyNetwork(const std::vector<LayerTuple>& layers, int activation_bits, int n_classes, int pixels,
              const std::string& kernel, const std::vector<int>& pixel_thresholds, int score_bits) {
        std::vector<bnn::LayerInput> inputs;
        for (std::size_t l = 0; l < layers.size(); ++l) {
            const auto& [w, t, geometry] = layers[l];
            if (t.shape(0) != w.shape(0))
                throw nb::value_error(("layer " + std::to_string(l) + ": thresholds rows != weight rows").c_str());
            const auto [size, channels, kernel_size, pool] = geometry;
            inputs.push_back({w.data(), t.data(), checked_int(w.shape(0), l, "rows"),
                              checked_int(w.shape(1), l, "columns"), checked_int(t.shape(1), l, "thresholds per row"),
                              size, channels, kernel_size, pool});
        }
        net_ = std::make_unique<bnn::Network>(inputs, activation_bits, n_classes, pixels, pixel_thresholds, kernel,
                                              score_bits);
    }

    nb::tuple run(Images images, int threads, const std::string& rule_name, bool want_scores) const {
        const bnn::Rule rule = rule_named(rule_name);
        if (images.shape(1) != static_cast<std::size_t>(net_->pixels()))
            throw nb::value_error(("images have " + std::to_string(images.shape(1)) + " pixels, the network takes " +
                                   std::to_string(net_->pixels())).c_str());
        const std::size_t n = images.shape(0), c = static_cast<std::size_t>(net_->n_classes());
        auto classes = owned<std::int32_t, 1>(n);
        auto scores = owned<std::int32_t, 2>(want_scores ? n : 0, c);
        auto bits = owned<std::uint8_t, 2>(want_scores ? n : 0, c);
        bnn::Outputs out{classes.data(), want_scores ? scores.data() : nullptr, want_scores ? bits.data() : nullptr};
        {
            nb::gil_scoped_release release;
            net_->run(images.data(), n, threads, rule, out);
        }
        return nb::make_tuple(classes, scores, bits);
    }

    std::string kernel() const { return net_->kernel_name(); }

private:
    std::unique_ptr<bnn::Network> net_;
};

std::vector<std::string> kernel_names() {
    std::vector<std::string> names;
    for (const auto& k : bnn::available_kernels()) names.emplace_back(k.name);
    return names;
}

}  // namespace

NB_MODULE(_native, m) {
    m.doc() = "Native bit-packed runtime for LFC and CNV networks (see bnn.runtimes.native for the Python API).";
    // Networks still referenced when the interpreter exits (a classifier in a module global, a
    // fixture, a Dask worker's data) are freed with the process: not a leak worth a warning.
    nb::set_leak_warnings(false);
    m.def("available_kernels", &kernel_names, "Kernels this CPU runs, fastest first.");
    m.def(
        "probe",
        [](const std::string& kernel, double seconds) {
            const auto k = bnn::select_kernel(kernel);  // ValueError for a kernel this CPU cannot run
            nb::gil_scoped_release release;
            return k.probe(seconds);
        },
        nb::arg("kernel"), nb::arg("seconds") = 0.3,
        "64-bit words per second of the kernel's inner step (xor, popcount, add) run from registers on one core.");
    nb::class_<PyNetwork>(m, "Network")
        .def(nb::init<const std::vector<LayerTuple>&, int, int, int, const std::string&, const std::vector<int>&, int>(),
             nb::arg("layers"), nb::arg("activation_bits"), nb::arg("n_classes"), nb::arg("pixels"),
             nb::arg("kernel") = "", nb::arg("pixel_thresholds") = std::vector<int>{128}, nb::arg("score_bits") = 0,
             "layers: (int8 weight values (MH, MW), int32 thresholds (MH, NT), (size, channels, kernel, pool)); "
             "no pixel_thresholds: 8-bit fixed-point pixels into a convolution.")
        .def("run", &PyNetwork::run, nb::arg("images").noconvert(), nb::arg("threads"), nb::arg("rule"),
             nb::arg("want_scores"), "-> (classes (n,), scores (n, C) or empty, bits (n, C) or empty)")
        .def_prop_ro("kernel", &PyNetwork::kernel);
}
