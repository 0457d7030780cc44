"""Smoke tests of the benchmarks: each runs end to end on a few events, no figures checked."""
