"""Search spaces: encodings and the operations they name."""
