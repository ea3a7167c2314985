"""bnn: binarized neural networks (BNN-PYNQ LFC) on any CPU, bit-exact with the FPGA."""
