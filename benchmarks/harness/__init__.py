"""The benchmark harness: suites of task families x methods x shots x seeds."""
