"""paykit_async benchmarks: ``python -m benchmarks`` (see benchmarks/README.md).

Not part of the test suite and never timed in tests; the figures depend on the machine.
"""
