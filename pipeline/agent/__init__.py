"""The user's agent under test: its worker process, its dispatch into the room, the Customer's
utterances, and the conversation with it (its config block is `pipeline.config.agent`)."""
