"""Running benchmark definitions: the runner, and one module per kind (``kinds/``)."""
