"""The test harness: the pipeline's processes described once, for the tests and the benchmarks."""
