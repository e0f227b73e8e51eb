"""Real training: the NB201 recipe, candidate proxies (Original / Tr-Net) and backbone pre-training."""
