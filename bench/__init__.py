"""Benchmarks: each ``bench_*.py`` module measures one stage and writes bench/results/<name>.json/.md."""
