"""The tone conversation: our own two speakers (Customer and Support) in one room, the bursts
they send and the speech-like probe between them."""
