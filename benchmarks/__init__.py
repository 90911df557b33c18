"""echoproof's benchmarks: one module per area, each with ``run(quick: bool = False) -> dict``."""
