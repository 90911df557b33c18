"""What a person sees: the live view, the closing tables and the log's format."""
