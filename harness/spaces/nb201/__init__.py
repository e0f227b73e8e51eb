"""NAS-Bench-201 (Dong & Yang, ICLR 2020): encodings, ops, the benchmark network, the supernet, and the space."""
