"""Benchmarks (``make bench``, ``python -m bench``): translation cost, cold start, local throughput.

Not tests: nothing here asserts or fails a build. Each part prints a table and the run ends with
the targets of issue 7 met or missed. pytest never collects this folder (``testpaths = tests``).
"""
