"""The embedded server a run starts itself, in a child process of its own (the impairment it
applies is configured in `pipeline.config.impairment`)."""
