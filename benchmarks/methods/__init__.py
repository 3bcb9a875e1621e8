"""The methods the benchmark compares, one module each, behind one call signature
(:mod:`benchmarks.methods.base`): baselines and the library's ``adapt`` under its policies."""
