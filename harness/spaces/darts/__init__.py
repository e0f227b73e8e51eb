"""The DARTS search space (Liu et al., ICLR 2019): genotypes, evaluation network, supernet."""
