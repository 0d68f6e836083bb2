"""Fakes that stand in for outside services in tests and benchmarks."""
