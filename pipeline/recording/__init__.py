"""What a run records: the evidence writers, the host's figures, real-time scheduling while the
speakers talk, and the host freeze a test may inject."""
