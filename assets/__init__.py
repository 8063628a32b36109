"""Software-defined assets, one module per layer, their checks beside them."""
