"""Throughput benchmarks against peer libraries, measured side by side in one process.

Each module (``join``, ``greeks``) exposes ``run(size) -> dict`` and ``main(argv) -> int``;
``./m17 bench NAME [--size small|full] [--json]`` calls ``benchmarks.NAME.main``.
"""
