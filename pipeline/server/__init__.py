"""The embedded server a run starts itself: its child process and the impairment it applies."""
