"""The user's agent under test: its spec, its worker process, its dispatch into the room, the
Customer's utterances, and the conversation with it."""
